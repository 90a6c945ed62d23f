"""Recording what happens to a supervisor (``SupervisorEvent``), in the transaction of the change.

Rules, in one place:

* Only service functions record events, inside the transaction that makes the
  change and after the change is written (:func:`record_event`,
  :func:`record_events` refuse to run outside a transaction): a change that
  rolls back leaves no event, and an event always describes a committed change.
* Every writer holds the supervisor's row lock when it records, so the
  per-supervisor ``sequence`` (the newest + 1, read in the INSERT itself) is
  gap-free and in commit order. Heartbeats write no event.
* Each call is ONE statement whatever the number of events: the rows travel as
  one JSON parameter, the supervisor's ``contract_id`` and a daemon actor's
  name are read by the INSERT itself. The watchdog's interruptions and stale
  episodes are ``INSERT ... SELECT`` statements (:func:`record_interruptions`,
  :func:`record_stale_episodes`), so a run costs the same queries for one
  supervisor or a hundred thousand.
* ``details`` holds a few small facts (ids, phases, outcome, a reason cut to
  :data:`MAX_DETAIL_TEXT` characters): never conversation content or keys.
* Retention: :func:`prune_supervisor_events` keeps the newest
  ``SUPERVISOR_EVENTS_KEEP`` events per supervisor, one DELETE, run as a
  periodic job (``supervisors.jobs.prune_supervisor_events``).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from supervisors.enums import ActorKind, EventKind
from supervisors.models import Daemon, DaemonEvent, SupervisorEvent, SupervisorState, Task

from .actors import Actor
from .ownership import UNFENCED, Fence

#: Free text in ``details`` (a question, a reason) is cut to this many characters.
MAX_DETAIL_TEXT = 200

#: Who the service's own writes are recorded as when no caller is known (a shell, a script).
SERVICE_ACTOR = Actor.system("service")


def keep_per_supervisor() -> int:
    """How many events retention keeps per supervisor (``SUPERVISOR_EVENTS_KEEP``, at least 10)."""
    return max(10, int(getattr(settings, "SUPERVISOR_EVENTS_KEEP", 1000)))


def short(text: Any) -> str:
    """Free text as details keep it: a string, at most :data:`MAX_DETAIL_TEXT` characters."""
    text = "" if text is None else str(text)
    return text if len(text) <= MAX_DETAIL_TEXT else text[: MAX_DETAIL_TEXT - 1] + "…"


def actor_of(actor: Actor | None, fence: Fence = UNFENCED) -> Actor:
    """Who made a change: the caller's actor, else the daemon of the fence, else the service itself."""
    if actor is not None:
        return actor
    if fence.daemon_id is not None:
        return Actor.for_daemon_id(fence.daemon_id)
    return SERVICE_ACTOR


@dataclass(frozen=True)
class NewEvent:
    """An event to record: the supervisor, its kind, who, and details."""

    supervisor_id: uuid.UUID
    kind: EventKind | str
    actor: Actor
    details: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None
    dedupe_key: str | None = None


def _in_transaction() -> None:
    if connection.get_autocommit():
        raise RuntimeError("Events are recorded inside the transaction of the change they describe.")


def record_event(
    supervisor_id: uuid.UUID, kind: EventKind | str, *, actor: Actor, details: dict[str, Any] | None = None
) -> None:
    """Record one event (one INSERT); call it inside the change's transaction, holding the row lock."""
    record_events([NewEvent(supervisor_id, kind, actor, details or {})])


def record_events(events: Iterable[NewEvent]) -> int:
    """Record events in ONE INSERT, whatever their number; returns how many were written.

    Call inside the change's transaction with the supervisors' rows locked.
    Events of a supervisor that does not exist are dropped, a daemon actor that
    no longer exists is recorded by its label only; an event whose
    ``dedupe_key`` that supervisor already has is not written again.
    """
    events = list(events)
    if not events:
        return 0
    _in_transaction()
    now = timezone.now()
    seen: Counter[uuid.UUID] = Counter()
    rows = []
    for event in events:
        seen[event.supervisor_id] += 1
        actor = event.actor
        user = actor.user if actor.kind == ActorKind.STAFF else None
        daemon_id = actor.daemon_id or (actor.daemon.id if actor.daemon is not None else None)
        rows.append(
            {
                "id": uuid.uuid4(),
                "supervisor_id": event.supervisor_id,
                # Two events of one supervisor in one statement: the second is newest + 2.
                "offset": seen[event.supervisor_id],
                "kind": str(event.kind),
                "occurred_at": event.occurred_at or now,
                "actor_kind": str(actor.kind),
                "actor_label": actor.label or None,
                "actor_user_id": user.pk if user is not None else None,
                "actor_daemon_id": daemon_id,
                "details": event.details,
                "dedupe_key": event.dedupe_key,
            }
        )
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(), [_payload(rows)])
        return cursor.rowcount


_COLUMNS = (
    "id, supervisor_id, contract_id, sequence, kind, occurred_at, actor_kind, actor_label, "
    "actor_user_id, actor_daemon_id, details, dedupe_key"
)


def _tables() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "events": quote(SupervisorEvent._meta.db_table),
        "states": quote(SupervisorState._meta.db_table),
        "daemons": quote(Daemon._meta.db_table),
        "tasks": quote(Task._meta.db_table),
    }


def _next_sequence(alias: str = "s") -> str:
    t = _tables()
    return f"COALESCE((SELECT MAX(e.sequence) FROM {t['events']} e WHERE e.supervisor_id = {alias}.id), 0)"


def _insert_sql() -> str:
    t = _tables()
    if connection.vendor == "postgresql":
        return (
            f"INSERT INTO {t['events']} ({_COLUMNS}) "
            f"SELECT (j.v->>'id')::uuid, s.id, s.contract_id, {_next_sequence()} + (j.v->>'offset')::integer, "
            "j.v->>'kind', (j.v->>'occurred_at')::timestamptz, j.v->>'actor_kind', "
            "COALESCE(j.v->>'actor_label', 'daemon:' || d.name, 'daemon:' || (j.v->>'actor_daemon_id'), ''), "
            "(j.v->>'actor_user_id')::bigint, "
            "d.id, j.v->'details', j.v->>'dedupe_key' "
            "FROM jsonb_array_elements(%s::jsonb) AS j(v) "
            f"JOIN {t['states']} s ON s.id = (j.v->>'supervisor_id')::uuid "
            f"LEFT JOIN {t['daemons']} d ON d.id = (j.v->>'actor_daemon_id')::uuid "
            "ON CONFLICT (supervisor_id, dedupe_key) DO NOTHING"
        )

    def get(key: str) -> str:
        return f"json_extract(j.value, '$.{key}')"

    return (
        f"INSERT INTO {t['events']} ({_COLUMNS}) "
        f"SELECT {get('id')}, s.id, s.contract_id, {_next_sequence()} + {get('offset')}, {get('kind')}, "
        f"{get('occurred_at')}, {get('actor_kind')}, "
        f"COALESCE({get('actor_label')}, 'daemon:' || d.name, 'daemon:' || {get('actor_daemon_id')}, ''), "
        f"{get('actor_user_id')}, d.id, json(json_extract(j.value, '$.details')), "
        f"{get('dedupe_key')} "
        f"FROM json_each(%s) AS j JOIN {t['states']} s ON s.id = {get('supervisor_id')} "
        f"LEFT JOIN {t['daemons']} d ON d.id = {get('actor_daemon_id')} "
        # "WHERE true": SQLite's parser needs it between a join and an upsert clause.
        "WHERE true ON CONFLICT (supervisor_id, dedupe_key) DO NOTHING"
    )


def _payload(rows: list[dict[str, Any]]) -> str:
    if connection.vendor != "postgresql":
        uuid_field = SupervisorEvent._meta.pk
        when = SupervisorEvent._meta.get_field("occurred_at")
        for row in rows:
            for key in ("id", "supervisor_id", "actor_daemon_id"):
                if row[key] is not None:
                    row[key] = uuid_field.get_db_prep_value(row[key], connection)
            row["occurred_at"] = when.get_db_prep_value(row["occurred_at"], connection)
    return json.dumps(rows, cls=DjangoJSONEncoder)


# --- the watchdog's events: set-based -----------------------------------------------------------------


def _new_id_sql() -> str:
    if connection.vendor == "postgresql":
        return "gen_random_uuid()"
    return "lower(hex(randomblob(16)))"  # Django stores a UUID on SQLite as 32 hex digits


def _ids_param(ids: Sequence[uuid.UUID]) -> tuple[str, Any]:
    """``s.id`` is one of ``ids``: one parameter whatever their number."""
    if connection.vendor == "postgresql":
        return "s.id = ANY(%s::uuid[])", [str(i) for i in ids]
    pk = SupervisorState._meta.pk
    return "s.id IN (SELECT value FROM json_each(%s))", json.dumps([pk.get_db_prep_value(i, connection) for i in ids])


def record_interruptions(supervisor_ids: Sequence[uuid.UUID], *, actor: Actor, at: datetime) -> int:
    """One ``interrupted`` event per supervisor, with the reason (its daemon, silent since when): ONE INSERT.

    For the watchdog, inside its transaction, right after its UPDATE (which
    holds the rows' locks) returned ``supervisor_ids``.
    """
    if not supervisor_ids:
        return 0
    _in_transaction()
    t = _tables()
    where, param = _ids_param(supervisor_ids)
    when = SupervisorEvent._meta.get_field("occurred_at").get_db_prep_value(at, connection)
    since = "COALESCE(d.last_heartbeat_at, d.created_at)"
    if connection.vendor == "postgresql":
        reason = (
            "CASE WHEN d.id IS NULL THEN 'its supervisor task has no daemon' "
            f"ELSE 'daemon ' || d.name || ' gone since ' || to_char({since} AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS"Z"\') END'
        )
        details = (
            f"jsonb_build_object('reason', {reason}, 'daemon', d.name, 'daemonId', d.id, 'daemonLastSeen', {since})"
        )
        when_sql = "%s::timestamptz"
    else:
        reason = (
            "CASE WHEN d.id IS NULL THEN 'its supervisor task has no daemon' "
            f"ELSE 'daemon ' || d.name || ' gone since ' || strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ', {since}) END"
        )
        details = f"json_object('reason', {reason}, 'daemon', d.name, 'daemonId', d.id, 'daemonLastSeen', {since})"
        when_sql = "%s"
    sql = (
        f"INSERT INTO {t['events']} ({_COLUMNS}) "
        f"SELECT {_new_id_sql()}, s.id, s.contract_id, {_next_sequence()} + 1, %s, {when_sql}, %s, %s, NULL, NULL, "
        f"{details}, NULL "
        f"FROM {t['states']} s LEFT JOIN {t['tasks']} tk ON tk.id = s.task_id "
        f"LEFT JOIN {t['daemons']} d ON d.id = tk.daemon_id WHERE {where}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [EventKind.INTERRUPTED.value, when, str(actor.kind), actor.label, param])
        return cursor.rowcount


def record_stale_episodes(*, now: datetime, actor: Actor) -> int:
    """One ``stale`` event per stale episode (ONE INSERT): a supervisor silent past the stale threshold.

    The rule is the selectors' (``stale_supervisors``). An episode is
    identified by the supervisor's ``last_activity``, which is the event's
    ``dedupe_key``: later runs (and a concurrent watchdog) never record the
    same silence twice; a heartbeat ends the episode, and the next silence
    is a new one. The candidates are locked with SKIP LOCKED (PostgreSQL),
    since the event's sequence needs the row's lock: one that a writer holds
    right now is recorded by the next run.
    """
    from supervisors.selectors import stale_supervisors

    _in_transaction()
    t = _tables()
    threshold = int(settings.SUPERVISOR_STALE_AFTER_SECONDS)
    when = SupervisorEvent._meta.get_field("occurred_at").get_db_prep_value(now, connection)
    if connection.vendor == "postgresql":
        details = (
            f"jsonb_build_object('lastActivity', s.last_activity, 'state', s.state, 'staleAfterSeconds', {threshold})"
        )
        when_sql = "%s::timestamptz"
    else:
        details = f"json_object('lastActivity', s.last_activity, 'state', s.state, 'staleAfterSeconds', {threshold})"
        when_sql = "%s"
    # Only silences not yet recorded are candidates (and locked): the supervisors that stay silent
    # for hours cost an index probe per run, not a row lock.
    unrecorded = RawSQL(
        f"NOT EXISTS (SELECT 1 FROM {t['events']} x WHERE x.supervisor_id = {t['states']}.id "
        f"AND x.dedupe_key = {_stale_key(t['states'])})",
        [],
        output_field=BooleanField(),
    )
    stale = stale_supervisors(now).order_by().filter(unrecorded)
    if connection.features.has_select_for_update_skip_locked:
        stale = stale.select_for_update(skip_locked=True, of=("self",))
    stale_sql, stale_params = stale.values("id").query.sql_with_params()
    sql = (
        f"INSERT INTO {t['events']} ({_COLUMNS}) "
        f"SELECT {_new_id_sql()}, s.id, s.contract_id, {_next_sequence()} + 1, %s, {when_sql}, %s, %s, NULL, NULL, "
        f"{details}, {_stale_key('s')} "
        f"FROM {t['states']} s WHERE s.id IN ({stale_sql}) "
        "ON CONFLICT (supervisor_id, dedupe_key) DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [EventKind.STALE.value, when, str(actor.kind), actor.label, *stale_params])
        return cursor.rowcount


def _stale_key(alias: str) -> str:
    """SQL for a stale episode's ``dedupe_key``: ``stale:`` and the silent supervisor's ``last_activity``."""
    if connection.vendor == "postgresql":
        return f"'stale:' || to_char({alias}.last_activity AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
    return f"'stale:' || {alias}.last_activity"


def record_daemons_gone(rows: Sequence[tuple[Any, str, datetime | None]], *, at: datetime) -> int:
    """One ``daemon_gone`` event per (id, name, last heartbeat) the watchdog just marked disconnected: ONE INSERT.

    For the watchdog, inside its transaction (the daemon's own outbox row: a
    daemon is not a supervisor, its event is a :class:`DaemonEvent`).
    """
    if not rows:
        return 0
    _in_transaction()
    events = [
        DaemonEvent(
            daemon_id=pk,
            daemon_name=name,
            occurred_at=at,
            details={"lastSeen": last_seen.isoformat() if last_seen else None,
                     "goneAfterSeconds": int(settings.DAEMON_GONE_AFTER_SECONDS)},
        )
        for pk, name, last_seen in rows
    ]  # fmt: skip
    # One statement on PostgreSQL; SQLite's 999 parameters make it one per ~140 daemons gone in one run.
    return len(DaemonEvent.objects.bulk_create(events))


def prune_daemon_events(*, keep_days: int = 30) -> int:
    """Delete the daemon events dispatched more than ``keep_days`` ago (the supervisors' have their own rule)."""
    cutoff = timezone.now() - timedelta(days=keep_days)
    return DaemonEvent.objects.filter(dispatched_at__lt=cutoff).delete()[0]


# --- retention -----------------------------------------------------------------------------------------


def prune_supervisor_events(*, keep: int | None = None) -> int:
    """Keep the newest ``keep`` (default ``SUPERVISOR_EVENTS_KEEP``) events of every supervisor; ONE DELETE.

    Relies on ``sequence`` being gap-free per supervisor (1, 2, 3, ...; pruning
    only ever removes the oldest): a supervisor with more than ``keep`` events
    loses those numbered ``newest - keep`` and below. Returns how many went.
    """
    keep = keep_per_supervisor() if keep is None else max(1, int(keep))
    t = _tables()
    sql = (
        f"DELETE FROM {t['events']} WHERE id IN ("
        f"SELECT e.id FROM {t['events']} e JOIN ("
        f"SELECT supervisor_id, MAX(sequence) AS newest FROM {t['events']} GROUP BY supervisor_id "
        f"HAVING COUNT(*) > %s) n ON n.supervisor_id = e.supervisor_id WHERE e.sequence <= n.newest - %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [keep, keep])
        return cursor.rowcount
