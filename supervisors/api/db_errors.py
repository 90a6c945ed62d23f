"""503 in the API's error shape when the database is unreachable, instead of a 500 page.

A killed connection or a stopped server is not a bug in the request: the
client should retry later, and a load balancer should see ``/readyz`` fail
meanwhile. DRF re-raises exceptions its handler does not map, so this
middleware sees them in ``process_exception``. Django closes a connection that
raised an error at the end of the request, so the next request reconnects by
itself once the server is back: nothing to restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DatabaseError, IntegrityError
from django.db import InterfaceError as DjangoInterfaceError
from django.db import OperationalError as DjangoOperationalError
from django.http import HttpRequest, HttpResponse

from .errors import error_response

logger = logging.getLogger(__name__)

#: Seconds a client should wait before retrying.
RETRY_AFTER_SECONDS = 2


def is_unavailable(exc: BaseException) -> bool:
    """Connection-level failures: the database went away, not a query the service got wrong."""
    if isinstance(exc, (DjangoOperationalError, DjangoInterfaceError)):
        return True
    if isinstance(exc, DatabaseError) and not isinstance(exc, IntegrityError):
        # psycopg's own connection errors, raised outside Django's error wrapper (e.g. by a pool).
        try:
            import psycopg
        except ImportError:  # pragma: no cover - SQLite-only installs
            return False
        cause = exc.__cause__ or exc
        return isinstance(cause, (psycopg.OperationalError, psycopg.InterfaceError))
    return False


class DatabaseUnavailableMiddleware:
    """Maps database connection failures on /api/ to ``503 {code: "database_unavailable", ...}``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/") or not is_unavailable(exception):
            return None
        logger.warning("Database unavailable for %s %s: %s", request.method, request.path, exception)
        response = error_response(
            503, "database_unavailable", "The database is unavailable; nothing was written. Retry later."
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
