"""503 in the API's error shape when the database is unreachable; 500 (logged as a bug) for protocol errors.

A killed connection or a stopped server is not a bug in the request: the
client should retry later, and a load balancer should see ``/readyz`` fail
meanwhile. DRF re-raises exceptions its handler does not map, so this
middleware sees them in ``process_exception``. Django closes a connection that
raised an error at the end of the request, so the next request reconnects by
itself once the server is back: nothing to restart.

An error the server reports on a connection that is still up is not an
outage, even where psycopg files it under OperationalError: a prepared
statement or cursor that does not exist, a bind message with the wrong number
of parameters (what a transaction-mode pooler does to session state; see
DATABASE_POOLER). Retrying would fail the same way, so it is a 500 in the
error shape, logged with its traceback as a bug, never "retry later".
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db import InterfaceError as DjangoInterfaceError
from django.db import OperationalError as DjangoOperationalError
from django.http import HttpRequest, HttpResponse

from .errors import error_response

logger = logging.getLogger(__name__)

#: Seconds a client should wait before retrying.
RETRY_AFTER_SECONDS = 2


#: Errors a transaction-mode pooler causes when session state leaks between clients: a prepared
#: statement or cursor that does not exist, a bind message for another client's statement.
POOLER_STATES = frozenset({"26000", "34000", "08P01"})
PROTOCOL_VIOLATION = "08P01"


def _driver_error(exc: BaseException) -> BaseException:
    """psycopg's own exception behind Django's wrapper (or the exception itself)."""
    return exc.__cause__ if isinstance(exc, DatabaseError) and exc.__cause__ is not None else exc


def _connection_is_down() -> bool:
    raw = connections[DEFAULT_DB_ALIAS].connection
    return raw is None or bool(getattr(raw, "closed", False)) or bool(getattr(raw, "broken", False))


def is_unavailable(exc: BaseException) -> bool:
    """Connection-level failures: the database went away, not a query or protocol the service got wrong.

    Every OperationalError or InterfaceError counts (refused, closed, killed, shut down, timed out, pool
    exhausted, a conflict a retry gets past) except a protocol violation on a connection that is still
    up: PostgreSQL reports that and carries on (PgBouncer's own errors close the connection).
    """
    try:
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only installs
        return isinstance(exc, (DjangoOperationalError, DjangoInterfaceError))
    cause = _driver_error(exc)
    connection_level = (DjangoOperationalError, DjangoInterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
    if not isinstance(exc, connection_level) and not isinstance(cause, connection_level):
        return False
    return getattr(cause, "sqlstate", None) != PROTOCOL_VIOLATION or _connection_is_down()


def is_pooler_error(exc: BaseException) -> bool:
    """Session state lost between statements: the sign of a transaction-mode pooler without DATABASE_POOLER."""
    return getattr(_driver_error(exc), "sqlstate", None) in POOLER_STATES


class DatabaseUnavailableMiddleware:
    """On /api/: database connection failures are ``503 database_unavailable`` (retry), other database
    errors ``500 internal_error`` (a bug, logged); both in the error shape."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/") or not isinstance(exception, DatabaseError):
            return None
        if not is_unavailable(exception):
            hint = (
                " Behind PgBouncer in transaction mode set DATABASE_POOLER=pgbouncer."
                if is_pooler_error(exception)
                else ""
            )
            logger.error(
                "Database error on a live connection (a bug, not an outage) for %s %s: %s.%s",
                request.method,
                request.path,
                exception,
                hint,
                exc_info=exception,
            )
            return error_response(
                500,
                "internal_error",
                "The service hit an unexpected database error (logged as a bug); retrying will not help.",
            )
        logger.warning("Database unavailable for %s %s: %s", request.method, request.path, exception)
        response = error_response(
            503, "database_unavailable", "The database is unavailable; nothing was written. Retry later."
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
