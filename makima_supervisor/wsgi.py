"""WSGI entry point: ``makima_supervisor.wsgi:application`` (granian, the Procfile's web server; gunicorn).

The application is Django's, behind one wrapper: only the request's own keys
reach it. granian starts every request's environ from a copy of the whole
process environment (its wsgi.py: ``dict(os.environ) | scope``), so without the
wrapper ``request.META`` would carry SECRET_KEY, DATABASE_URL and every other
variable, and Django's error reports (the DEBUG page, the admins' mail) hide
SECRET_KEY but print DATABASE_URL with its password. Worse, a variable named
like a header (HTTP_PROXY) would read as one the client sent (httpoxy). Kept:
the CGI variables of PEP 3333, ``HTTP_*`` (the headers) and ``wsgi.*`` (and
any server extension such as gunicorn's RAW_URI): every other name the process
environment has is dropped, and an ``HTTP_*`` key equal to the process
environment's variable of that name too, as no client sent it
(a client that sends a ``Proxy`` header equal to the server's HTTP_PROXY loses
that header: no view reads it). Under gunicorn, which does not copy the
environment, the wrapper drops nothing and costs a few microseconds.
"""

import os

from makima_supervisor.handler import get_wsgi_application  # Django's, with daemons' calls lean

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

#: The process environment's variable names that are not request keys, taken at the first request (after
#: granian took its copy; the development .env is read into the environment before, at import).
_process_only: frozenset[str] | None = None
_header_like: tuple[str, ...] = ()


def request_only(environ: dict) -> dict:
    """The environ without the process environment's variables (see the module's docstring).

    A new dict of the request's keys: cheaper than deleting each of the environment's keys.
    """
    global _process_only, _header_like
    if _process_only is None:
        _process_only = frozenset(
            key for key in os.environ if key not in _REQUEST_KEYS and not key.startswith(("wsgi.", "gunicorn."))
        )
        _header_like = tuple(key for key in _process_only if key.startswith("HTTP_"))
    if _process_only.isdisjoint(environ):  # gunicorn, runserver: nothing to drop
        return environ
    request = {key: value for key, value in environ.items() if key not in _process_only}
    for key in _header_like:
        # Also the name of a header: kept when a client sent it (a value other than the process's).
        if key in environ and environ[key] != os.environ.get(key):
            request[key] = environ[key]
    return request


_django = get_wsgi_application()


def application(environ, start_response):
    return _django(request_only(environ), start_response)


from supervisors.checks import log_startup_warnings  # noqa: E402  (needs the apps loaded)

log_startup_warnings()
