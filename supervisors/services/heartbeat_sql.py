"""The heartbeats' UPDATE statements, written once per database vendor.

Heartbeats are most of the service's traffic. Building their UPDATE with the
ORM costs more Python time than PostgreSQL spends running it (about 0.5 ms for
a single heartbeat, tens of ms for a CASE over a 50-supervisor batch), so the
SQL text is composed here once per vendor from the models' table and column
names and then only executed with parameters. Both statements assign exactly
``HEARTBEAT_COLUMNS`` and nothing else, and read nothing first.

The batch statement has the same text whatever the batch size: the items
travel as one JSON array parameter, read with ``jsonb_array_elements`` on
PostgreSQL and ``json_each`` on SQLite. (Five PostgreSQL arrays, one per
column, cost the client more: psycopg writes array text in Python, a sixth of
a 50-supervisor batch's CPU, where ``json.dumps`` is C.)

A daemon's single heartbeat can also count the request for the API's throttle
(:class:`~supervisors.services.world.PendingCount`). On PostgreSQL the counter's
UPSERT is a data-modifying CTE of the UPDATE, whose WHERE clause reads the new
count, so one round trip counts the request and writes the heartbeat only if
the count is within the limit. On SQLite (no writes inside a CTE) the counter
is a statement of its own, in the same process, before the UPDATE.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from supervisors.models import HEARTBEAT_COLUMNS, Daemon, SupervisorState, Task

from .hot_cursor import hot_cursor
from .world import RATE_UPSERT_ONE, PendingCount

#: One heartbeat of a batch: (contract id, state, current activity, progress, epoch or None).
Row = tuple[uuid.UUID, str, str | None, int, int | None]


@dataclass(frozen=True)
class HeartbeatStatements:
    """The SQL of one vendor: single and batch, each unscoped and scoped to a daemon."""

    single: str
    single_on_daemon: str
    batch: str
    batch_on_daemon: str
    native_uuid: bool
    #: PostgreSQL only: the daemon's own row and its supervisors' batch in one statement.
    daemon_and_batch: str | None = None
    #: PostgreSQL only: the rate counter's UPSERT and single_on_daemon in one statement.
    single_counted: str | None = None


_statements: dict[str, HeartbeatStatements] = {}


def _compose(vendor: str) -> HeartbeatStatements:
    """The statements, with the fence written into each (see :mod:`supervisors.services.ownership`).

    Ownership: the row's task is its contract's supervisor task on the
    daemon. Epoch: ``restoration_count`` equals the epoch the daemon sent, or,
    without one, the value this statement's snapshot saw. PostgreSQL re-checks
    the WHERE clause on the newest row version when the row was locked by a
    restoration that committed meanwhile; the snapshot subquery still gives the
    old epoch then, so a heartbeat that raced a takeover or a resume is not
    written (a join on ``tasks`` alone would still see the old owner).
    """
    q = connection.ops.quote_name
    table = q(SupervisorState._meta.db_table)
    col = {
        name: q(SupervisorState._meta.get_field(name).column)
        for name in (*HEARTBEAT_COLUMNS, "contract", "task", "restoration_count", "id")
    }
    tasks = q(Task._meta.db_table)
    task_col = {name: q(Task._meta.get_field(name).column) for name in ("id", "daemon", "is_supervisor", "contract")}

    def owned_by(daemon: str) -> str:
        return (
            f" AND EXISTS (SELECT 1 FROM {tasks} t WHERE t.{task_col['id']} = {table}.{col['task']}"
            f" AND t.{task_col['daemon']} {daemon} AND t.{task_col['is_supervisor']}"
            f" AND t.{task_col['contract']} = {table}.{col['contract']})"
        )

    def epoch_is(epoch: str) -> str:
        return (
            f" AND {table}.{col['restoration_count']} = COALESCE({epoch}, (SELECT e.{col['restoration_count']} "
            f"FROM {table} e WHERE e.{col['id']} = {table}.{col['id']}))"
        )

    state, activity, progress = col["state"], col["current_activity"], col["progress"]
    stamps = f"{col['last_activity']} = %s, {col['updated_at']} = %s"
    single = (
        f"UPDATE {table} SET {state} = %s, {activity} = %s, {progress} = %s, {stamps} "
        f"WHERE {table}.{col['contract']} = %s" + epoch_is("CAST(%s AS integer)")
    )
    if vendor == "postgresql":
        items = (
            "(SELECT (e ->> 0)::uuid AS contract_id, e ->> 1 AS state, e ->> 2 AS current_activity, "
            "(e ->> 3)::int AS progress, (e ->> 4)::int AS epoch FROM jsonb_array_elements(%s::jsonb) AS e) AS v"
        )
    else:  # SQLite (3.38+: UPDATE ... FROM and json_each built in); one JSON parameter
        items = (
            "(SELECT json_extract(value, '$[0]') AS contract_id, json_extract(value, '$[1]') AS state, "
            "json_extract(value, '$[2]') AS current_activity, json_extract(value, '$[3]') AS progress, "
            "json_extract(value, '$[4]') AS epoch FROM json_each(%s)) AS v"
        )
    batch = (
        f"UPDATE {table} SET {state} = v.state, {activity} = v.current_activity, {progress} = v.progress, {stamps} "
        f"FROM {items} WHERE {table}.{col['contract']} = v.contract_id" + epoch_is("v.epoch")
    )
    returning = f" RETURNING {table}.{col['contract']}"
    daemon_and_batch = single_counted = None
    if vendor == "postgresql":
        single_counted = (
            f"WITH c AS ({RATE_UPSERT_ONE}), u AS ({single}{owned_by('= %s')} AND (SELECT count FROM c) <= %s "
            "RETURNING 1) SELECT (SELECT count FROM c), (SELECT count(*) FROM u)"
        )
        daemons = q(Daemon._meta.db_table)
        daemon_pk = q(Daemon._meta.pk.column)
        daemon_row = (
            f"UPDATE {daemons} SET {q(Daemon._meta.get_field('status').column)} = %s, "
            f"{q(Daemon._meta.get_field('last_heartbeat_at').column)} = %s WHERE {daemon_pk} = %s RETURNING {daemon_pk}"
        )
        daemon_and_batch = (
            f"WITH d AS ({daemon_row}), s AS ({batch}{owned_by(f'IN (SELECT {daemon_pk} FROM d)')}{returning}) "
            "SELECT (SELECT count(*) FROM d), ARRAY(SELECT * FROM s)"
        )
    return HeartbeatStatements(
        daemon_and_batch=daemon_and_batch,
        single_counted=single_counted,
        single=single,
        single_on_daemon=single + owned_by("= %s"),
        batch=batch + returning,
        batch_on_daemon=batch + owned_by("= %s") + returning,
        native_uuid=connection.features.has_native_uuid_field,
    )


def statements() -> HeartbeatStatements:
    vendor = connection.vendor
    found = _statements.get(vendor)
    if found is None:
        found = _statements[vendor] = _compose(vendor)
    return found


def _db_uuid(value: uuid.UUID, native: bool) -> uuid.UUID | str:
    return value if native else value.hex


def update_one(
    contract_id: uuid.UUID,
    daemon_id: uuid.UUID | None,
    state: str,
    current_activity: str | None,
    progress: int,
    now: datetime,
    count: PendingCount | None = None,
    epoch: int | None = None,
) -> int:
    """Run the single heartbeat UPDATE; returns the number of rows it changed (0 or 1).

    With ``count`` (and a daemon), the request is counted first and nothing is
    written if that puts it over ``count.limit`` (0 is returned; ``count.counted``
    tells why). ``epoch``: write only at that epoch (else at the epoch the
    statement started with).
    """
    sql = statements()
    stamp = connection.ops.adapt_datetimefield_value(now)
    params: list = [state, current_activity, progress, stamp, stamp, _db_uuid(contract_id, sql.native_uuid), epoch]
    if daemon_id is not None:
        params.append(_db_uuid(daemon_id, sql.native_uuid))
    with hot_cursor() as cursor:
        if count is not None and daemon_id is not None:
            if sql.single_counted is not None:
                cursor.execute(sql.single_counted, [count.key, count.window_start, *params, count.limit])
                counted, updated = cursor.fetchone()
                count.record(counted)
                return updated
            cursor.execute(RATE_UPSERT_ONE, [count.key, count.window_start])
            if not count.record(cursor.fetchone()[0]):
                return 0
        cursor.execute(sql.single if daemon_id is None else sql.single_on_daemon, params)
        return cursor.rowcount


def _item_params(items: Sequence[Row]) -> list:
    return [json.dumps([[item[0].hex, item[1], item[2], item[3], item[4]] for item in items])]


def _contract_ids(values: Sequence[Any]) -> set[uuid.UUID]:
    return {v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)) for v in values}


def update_daemon_and_many(
    daemon_id: uuid.UUID, status: str, items: Sequence[Row], now: datetime
) -> tuple[bool, set[uuid.UUID]]:
    """PostgreSQL: mark the daemon alive and write its supervisors' heartbeats in ONE statement.

    Returns (whether the daemon row exists, the contracts whose supervisor was
    written); both writes commit together. Only supervisors the daemon owns,
    at the epoch each item names (or the current one), are written.
    """
    sql = statements()
    assert sql.daemon_and_batch is not None, "PostgreSQL only"
    with hot_cursor() as cursor:
        cursor.execute(sql.daemon_and_batch, [status, now, daemon_id, now, now, *_item_params(items)])
        found, written = cursor.fetchone()
    return bool(found), _contract_ids(written or [])


def update_many(items: Sequence[Row], daemon_id: uuid.UUID | None, now: datetime) -> set[uuid.UUID]:
    """Run the batch UPDATE over :data:`Row` items; returns the contracts whose supervisor was written."""
    sql = statements()
    stamp = connection.ops.adapt_datetimefield_value(now)
    params = _item_params(items)
    ordered = [stamp, stamp, *params]  # the SET clause's placeholders come first
    if daemon_id is not None:
        ordered.append(_db_uuid(daemon_id, sql.native_uuid))
    with hot_cursor() as cursor:
        cursor.execute(sql.batch if daemon_id is None else sql.batch_on_daemon, ordered)
        return _contract_ids([row[0] for row in cursor.fetchall()])
