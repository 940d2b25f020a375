"""Starts the Django test site on 127.0.0.1 on a free port, the way `manage.py runserver` serves
(Django's threaded WSGI server, static files through the staticfiles handler), and prints
`listening on PORT` once it accepts connections.

Before serving it creates the database (`migrate`) in DJANGO_DB (default: a fresh temporary
file) and the superuser admin / admin-password-1.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testsite.settings")
if "DJANGO_DB" not in os.environ:
    os.environ["DJANGO_DB"] = os.path.join(tempfile.mkdtemp(prefix="django-app-"), "db.sqlite3")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.staticfiles.handlers import StaticFilesHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402


def main():
    call_command("migrate", verbosity=0, interactive=False)
    User = get_user_model()
    if not User.objects.filter(username="admin").exists():
        User.objects.create_superuser("admin", "admin@example.com", "admin-password-1")
    server = ThreadedWSGIServer(("127.0.0.1", 0), WSGIRequestHandler)
    server.set_app(StaticFilesHandler(get_wsgi_application()))
    print(f"listening on {server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
