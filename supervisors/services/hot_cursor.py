"""A cursor for the hot path's fixed statements (heartbeats, the rate counter, the key lookup).

Django's ORM binds parameters on the client (psycopg's ClientCursor) and never
prepares statements, so PostgreSQL parses and plans every heartbeat's UPDATE
again. The few statements of the hot path have constant text, so on
PostgreSQL they run on a server-binding cursor and are prepared once per
connection (psycopg prepares a statement after ``DB_PREPARE_THRESHOLD``
executions; ClientCursors, hence the ORM, are unaffected). Queries still go
through Django's cursor wrapper, so they are logged and counted like any other.

The psycopg cursor is made once per database connection and reused: making
and closing one per statement cost about 8 us of CPU, a tenth of the
statement's own Python time. ``with hot_cursor() as cursor`` therefore does not close it on
PostgreSQL (it goes when its connection does); on other databases it is an
ordinary Django cursor, closed on exit.

Behind a transaction-mode pooler (PgBouncer) prepared statements break:
``DATABASE_POOLER=pgbouncer`` (docs/pgbouncer.env) turns them off, these
included (the statements then run unprepared, with server-side binding).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorWrapper


def hot_cursor() -> AbstractContextManager[CursorWrapper]:
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        return db.cursor()
    raw = db.connection
    if raw is None:
        db.ensure_connection()
        raw = db.connection
    cursor = getattr(db, "_hot_cursor", None)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        from django.db.backends.postgresql.base import ServerBindingCursor

        if settings.DB_PREPARE_HOT_STATEMENTS and raw.prepare_threshold is None:
            raw.prepare_threshold = settings.DB_PREPARE_THRESHOLD
        cursor = db._hot_cursor = ServerBindingCursor(raw)
    return nullcontext(db._prepare_cursor(cursor))
