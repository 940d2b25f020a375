"""A small Starlette site (the ASGI toolkit under FastAPI) whose state lives in the signed cookie
of Starlette's SessionMiddleware, named `session` by default: the login, a cart, a CSRF token
(Synchroniser Token Pattern, kept in the session) and flash messages.

It follows Starlette's documentation:
- SessionMiddleware: https://www.starlette.io/middleware/#sessionmiddleware
- Requests (forms need python-multipart): https://www.starlette.io/requests/
- Responses: https://www.starlette.io/responses/
- uvicorn, "Running programmatically": https://www.uvicorn.org/deployment/

Run: `python3 app.py` serves on 127.0.0.1 on a free port and prints `listening on PORT` once it
accepts connections. The one user is alice / wonderland.
"""

import html
import os
import secrets
import socket
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import Route

USERS = {"alice": "wonderland"}


def flash(request, message):
    request.session.setdefault("_flashes", []).append(message)


def csrf_token(request):
    if "csrf_token" not in request.session:
        request.session["csrf_token"] = secrets.token_hex(32)
    return request.session["csrf_token"]


def page(request, title, body, status_code=200):
    flashes = "".join(f"<li>{html.escape(m)}</li>" for m in request.session.pop("_flashes", []))
    user = request.session.get("user")
    who = f"logged in as {html.escape(user)}" if user else "anonymous"
    return HTMLResponse(
        f"""<!doctype html>
<html><head><title>{html.escape(title)}</title></head>
<body>
<ul id="flashes">{flashes}</ul>
<p id="who">{who}</p>
<h1>{html.escape(title)}</h1>
{body}
</body></html>""",
        status_code=status_code,
    )


async def checked_form(request):
    """The submitted form, or None when its CSRF token is not the session's."""
    form = await request.form()
    sent = form.get("csrf_token", "")
    kept = request.session.get("csrf_token", "")
    if not kept or not secrets.compare_digest(str(sent), kept):
        return None
    return form


def csrf_error():
    return HTMLResponse(
        '<!doctype html><title>CSRF error</title><h1>CSRF error</h1>'
        '<p id="errors">The CSRF token is missing or does not match the session.</p>',
        status_code=403,
    )


async def home(request):
    return page(request, "Home", '<p><a href="/login" id="login">Log in</a></p>')


async def login(request):
    if request.method == "POST":
        form = await checked_form(request)
        if form is None:
            return csrf_error()
        name = form.get("username", "")
        if USERS.get(name) != form.get("password"):
            flash(request, "Wrong user name or password.")
            return RedirectResponse("/login", status_code=303)
        request.session["user"] = name
        request.session["cart"] = 0
        flash(request, f"Welcome back, {name}!")
        return RedirectResponse("/account", status_code=303)
    token = csrf_token(request)
    return page(
        request,
        "Log in",
        f"""<form method="post" id="form">
  <input type="hidden" name="csrf_token" value="{token}">
  <p><label for="username">Username</label> <input id="username" name="username"></p>
  <p><label for="password">Password</label> <input id="password" name="password" type="password"></p>
  <button type="submit" id="submit">Log in</button>
</form>""",
    )


async def account(request):
    user = request.session.get("user")
    if not user:
        flash(request, "Please log in to see this page.")
        return RedirectResponse("/login", status_code=303)
    if request.method == "POST":
        if await checked_form(request) is None:
            return csrf_error()
        request.session["cart"] = request.session.get("cart", 0) + 1
        flash(request, "Added to cart.")
        return RedirectResponse("/account", status_code=303)
    token = csrf_token(request)
    n = request.session.get("cart", 0)
    return page(
        request,
        f"Account of {user}",
        f"""<p id="cart">Cart: {n} item{"" if n == 1 else "s"}</p>
<form method="post" id="cart-form">
  <input type="hidden" name="csrf_token" value="{token}">
  <button type="submit" id="add">Add to cart</button>
</form>
<form method="post" action="/logout" id="logout-form">
  <input type="hidden" name="csrf_token" value="{token}">
  <button type="submit" id="logout">Log out</button>
</form>""",
    )


async def logout(request):
    if await checked_form(request) is None:
        return csrf_error()
    request.session.pop("user", None)
    flash(request, "You are logged out.")
    return RedirectResponse("/", status_code=303)


app = Starlette(
    routes=[
        Route("/", home),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/account", account, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
    ],
    middleware=[
        Middleware(
            SessionMiddleware,
            secret_key=os.environ.get("SECRET_KEY", secrets.token_hex(24)),
        )
    ],
)


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(f"listening on {sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
