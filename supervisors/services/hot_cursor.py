"""A cursor for the hot path's fixed statements (heartbeats, the rate counter, the key lookup).

Django's ORM binds parameters on the client (psycopg's ClientCursor) and never
prepares statements, so PostgreSQL parses and plans every heartbeat's UPDATE
again. The few statements of the hot path have constant text, so on
PostgreSQL they run on a server-binding cursor and are prepared once per
connection (psycopg prepares a statement after ``DB_PREPARE_THRESHOLD``
executions; ClientCursors, hence the ORM, are unaffected). Queries still go
through Django's cursor wrapper, so they are logged and counted like any other.

Behind PgBouncer older than 1.21 in transaction mode prepared statements break:
set ``DB_PREPARE_HOT_STATEMENTS=false`` there (the statements then run
unprepared, with server-side binding).
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.db.backends.utils import CursorWrapper


def hot_cursor() -> CursorWrapper:
    if connection.vendor != "postgresql":
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    raw = connection.connection
    if settings.DB_PREPARE_HOT_STATEMENTS and raw.prepare_threshold is None:
        raw.prepare_threshold = settings.DB_PREPARE_THRESHOLD
    return connection._prepare_cursor(ServerBindingCursor(raw))
