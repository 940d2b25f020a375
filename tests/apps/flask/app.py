"""A small Flask site with the cookies a real one sets: Flask's signed `session` cookie (which
holds flask-login's user id, Flask-WTF's CSRF token and the flashed messages) and flask-login's
`remember_token`.

It follows the frameworks' own documentation:
- Flask, "Sessions" and "Message Flashing": https://flask.palletsprojects.com/en/stable/quickstart/#sessions
  and https://flask.palletsprojects.com/en/stable/patterns/flashing/
- Flask-Login, "How it Works", "Login Example" and "Remember Me":
  https://flask-login.readthedocs.io/en/latest/
- Flask-WTF, "Creating Forms" and "CSRF Protection":
  https://flask-wtf.readthedocs.io/en/stable/form/ and https://flask-wtf.readthedocs.io/en/stable/csrf/

Run: `python3 app.py` serves on 127.0.0.1 on a free port and prints `listening on PORT` once it
accepts connections. The one user is alice / wonderland.
"""

import os
import sys

from flask import Flask, flash, redirect, render_template_string, request, session, url_for
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.serving import make_server
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY", os.urandom(24).hex())
csrf = CSRFProtect(app)  # every POST needs the token, forms or not
login_manager = LoginManager(app)
login_manager.login_view = "login"
login_manager.login_message = "Please log in to see this page."


class User(UserMixin):
    def __init__(self, user_id, name, password):
        self.id = user_id
        self.name = name
        self.password = password


USERS = {"1": User("1", "alice", "wonderland")}


@login_manager.user_loader
def load_user(user_id):
    return USERS.get(user_id)


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Remember me")
    submit = SubmitField("Log in")


class NoteForm(FlaskForm):
    note = StringField("Note", validators=[DataRequired()])
    submit = SubmitField("Save")


PAGE = """<!doctype html>
<html><head><title>{{ title }}</title></head>
<body>
<ul id="flashes">{% for m in get_flashed_messages() %}<li>{{ m }}</li>{% endfor %}</ul>
<p id="who">{% if current_user.is_authenticated %}logged in as {{ current_user.name }}{% else %}anonymous{% endif %}</p>
<h1>{{ title }}</h1>
{% if form %}
<ul id="errors">{% for field, errors in form.errors.items() %}{% for e in errors %}<li>{{ e }}</li>{% endfor %}{% endfor %}</ul>
<form method="post" id="form">
  {{ form.hidden_tag() }}
  {% for field in form if field.widget.input_type not in ("hidden", "submit") %}
    <p>{{ field.label }} {{ field(id=field.name) }}</p>
  {% endfor %}
  {{ form.submit(id="submit") }}
</form>
{% endif %}
{% if current_user.is_authenticated %}
<form method="post" action="{{ url_for('logout') }}" id="logout-form">
  <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
  <button type="submit" id="logout">Log out</button>
</form>
{% endif %}
{% if notes is not none %}<ol id="notes">{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ol>{% endif %}
</body></html>
"""

@app.route("/")
def home():
    return render_template_string(PAGE, title="Home", form=None, notes=None)


@app.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = next(
            (u for u in USERS.values() if u.name == form.username.data),
            None,
        )
        if user is None or user.password != form.password.data:
            form.password.errors.append("Wrong user name or password.")
        else:
            login_user(user, remember=form.remember.data)
            flash(f"Welcome back, {user.name}!")
            return redirect(request.args.get("next") or url_for("private"))
    return render_template_string(PAGE, title="Log in", form=form, notes=None)


@app.route("/private", methods=["GET", "POST"])
@login_required
def private():
    form = NoteForm()
    if form.validate_on_submit():
        session["notes"] = session.get("notes", []) + [form.note.data]
        flash("Note saved.")
        return redirect(url_for("private"))
    return render_template_string(
        PAGE, title=f"Private page of {current_user.name}", form=form, notes=session.get("notes", [])
    )


@app.route("/logout", methods=["POST"])
def logout():
    logout_user()
    flash("You are logged out.")
    return redirect(url_for("home"))


@app.errorhandler(CSRFError)
def csrf_error(e):
    # Flask-WTF's own words, e.g. "The CSRF session token is missing."
    return (
        f'<!doctype html><title>CSRF error</title><h1>CSRF error</h1><p id="errors">{e.description}</p>',
        400,
    )


def main():
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"listening on {server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
