"""WSGI entry point: ``makima_supervisor.wsgi:application`` (granian, the Procfile's web server; gunicorn).

The application is Django's, behind one wrapper: only the request's own keys
reach it. granian starts every request's environ from a copy of the whole
process environment (its wsgi.py: ``dict(os.environ) | scope``), so without the
wrapper ``request.META`` would carry SECRET_KEY, DATABASE_URL and every other
variable, and Django's error reports (the DEBUG page, the admins' mail) hide
SECRET_KEY but print DATABASE_URL with its password. Worse, a variable named
like a header (HTTP_PROXY) would read as one the client sent (httpoxy). Kept:
the CGI variables of PEP 3333, ``HTTP_*`` (the headers) and ``wsgi.*`` (and
any server extension such as gunicorn's RAW_URI); an ``HTTP_*`` key equal to the
process environment's variable of that name is dropped, as no client sent it
(a client that sends a ``Proxy`` header equal to the server's HTTP_PROXY loses
that header: no view reads it). Under gunicorn, which does not copy the
environment, the wrapper drops nothing and costs a few microseconds.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makima_supervisor.settings")

#: PEP 3333's CGI variables, plus what servers add that Django or the service reads.
_REQUEST_KEYS = frozenset(
    {
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "SERVER_SOFTWARE",
        "GATEWAY_INTERFACE",
        "REMOTE_ADDR",
        "REMOTE_HOST",
        "REMOTE_PORT",
        "REMOTE_USER",
        "AUTH_TYPE",
        "HTTPS",
        "RAW_URI",
        "REQUEST_URI",
    }
)
_REQUEST_PREFIXES = ("HTTP_", "wsgi.", "gunicorn.")


def request_only(environ: dict) -> dict:
    """The environ without the process environment's variables (see the module's docstring)."""
    foreign = [key for key in environ if key not in _REQUEST_KEYS and not key.startswith(_REQUEST_PREFIXES)]
    for key in foreign:
        del environ[key]
    for key in _header_like_variables():
        if key in environ and environ[key] == os.environ.get(key):
            del environ[key]
    return environ


def _header_like_variables() -> list[str]:
    """Process environment variables named like a request header (HTTP_PROXY): usually none."""
    global _header_like
    if _header_like is None:
        _header_like = [key for key in os.environ if key.startswith("HTTP_")]
    return _header_like


_header_like: list[str] | None = None

_django = get_wsgi_application()


def application(environ, start_response):
    return _django(request_only(environ), start_response)


from supervisors.checks import log_startup_warnings  # noqa: E402  (needs the apps loaded)

log_startup_warnings()
