"""The protocol's writes: the batch's log rows (one INSERT), its state rows (one UPDATE), takeovers.

Every function runs inside the caller's transaction, with the supervisor rows
locked by ``load``. A batch restoration changes a different set of columns per supervisor (a
blocked one only its state and error message, a restored one nearly
everything). Django's ``bulk_update`` writes every listed column of every row
through CASE expressions and splits the rows into several statements on
SQLite (999 parameters), so the number of queries would grow with the batch.
Here the rows travel as ONE JSON parameter and each column is only set for the
rows that carry it: one UPDATE per batch on both databases, whatever its size.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from supervisors.enums import SupervisorStatus
from supervisors.models import Contract, Daemon, RestorationLog, SupervisorState, Task
from supervisors.services.actors import Actor
from supervisors.services.events import record_events
from supervisors.services.signals import send_on_commit

from . import report
from .options import RestoreOptions
from .report import Prepared

logger = logging.getLogger(__name__)

#: Sent on commit (``send_robust``, like persistence's question signals) when pending
#: questions were delivered again to the human, after a restoration or by
#: ``redeliver_pending_questions``: notifiers listen to it to show them again.
#: kwargs: contract_id, supervisor_id, questions (PendingQuestion dicts), actor (label).
questions_redelivered = Signal()

#: column -> PostgreSQL expression turning the JSON value ``j.v -> 'column'`` into the column's type.
PG_CASTS: dict[str, str] = {
    "state": "(j.v->>'{c}')",
    "phase": "(j.v->>'{c}')",
    "current_activity": "(j.v->>'{c}')",
    "error_message": "(j.v->>'{c}')",
    "restoration_source": "(j.v->>'{c}')",
    "progress": "(j.v->>'{c}')::integer",
    "restoration_count": "(j.v->>'{c}')::integer",
    "conversation_history": "(j.v->'{c}')",
    "pending_questions": "(j.v->'{c}')",
    "pending_task_ids": "ARRAY(SELECT jsonb_array_elements_text(j.v->'{c}')::uuid)",
    "spawned_task_ids": "ARRAY(SELECT jsonb_array_elements_text(j.v->'{c}')::uuid)",
    "last_restored_at": "(j.v->>'{c}')::timestamptz",
    "last_activity": "(j.v->>'{c}')::timestamptz",
    "updated_at": "(j.v->>'{c}')::timestamptz",
}
COLUMNS = tuple(PG_CASTS)


def _pg_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list) and value and isinstance(value[0], uuid.UUID):
        return [str(v) for v in value]
    return value


def update_supervisor_rows(changes: Mapping[uuid.UUID, Mapping[str, Any]]) -> int:
    """Apply ``{supervisor id: {column: value}}`` in one UPDATE; returns the rows written.

    The caller holds the rows' locks. Columns not named for a row keep their value.
    """
    changes = {k: v for k, v in changes.items() if v}
    if not changes:
        return 0
    for row in changes.values():
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"Cannot bulk-write columns {sorted(unknown)}")
    used = [c for c in COLUMNS if any(c in row for row in changes.values())]
    table = connection.ops.quote_name(SupervisorState._meta.db_table)
    if connection.vendor == "postgresql":
        payload = [{"id": str(pk), **{c: _pg_value(v) for c, v in row.items()}} for pk, row in changes.items()]
        sets = ", ".join(
            f"{connection.ops.quote_name(c)} = CASE WHEN j.v ? '{c}' THEN {PG_CASTS[c].format(c=c)} ELSE s.{c} END"
            for c in used
        )
        sql = (
            f"UPDATE {table} AS s SET {sets} FROM jsonb_array_elements(%s::jsonb) AS j(v) "
            f"WHERE s.id = (j.v->>'id')::uuid"
        )
        params = [json.dumps(payload, cls=DjangoJSONEncoder)]
    else:
        fields = {f.column: f for f in SupervisorState._meta.concrete_fields}
        pk = SupervisorState._meta.pk
        payload = [
            {
                "id": pk.get_db_prep_value(key, connection),
                **{c: fields[c].get_db_prep_value(v, connection, prepared=False) for c, v in row.items()},
            }
            for key, row in changes.items()
        ]
        sets = ", ".join(
            f"{connection.ops.quote_name(c)} = CASE WHEN json_type(j.value, '$.{c}') IS NOT NULL "
            f"THEN json_extract(j.value, '$.{c}') ELSE {table}.{connection.ops.quote_name(c)} END"
            for c in used
        )
        sql = f"UPDATE {table} SET {sets} FROM json_each(%s) AS j WHERE {table}.id = json_extract(j.value, '$.id')"
        params = [json.dumps(payload, cls=DjangoJSONEncoder)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def apply(prepared: Sequence[Prepared], options: RestoreOptions) -> None:
    """All the batch's rows: the takeovers, one INSERT of the logs, one UPDATE of the states, one of the events.

    Sets each result's ``log``. Raises DatabaseError when a row could not be written.
    """
    # last_restored_at is what a concurrent batch run checks to skip a supervisor this
    # run restored: stamp it as late as possible, just before the commit, not when the
    # page started, so a run starting meanwhile sees it as restored after its start.
    # That is why the state rows are written last.
    if not prepared:
        return
    for item in prepared:
        if item.decision.move_task_to is not None:
            move_task(item.decision.supervisor.task_id, item.decision.move_task_to)
    RestorationLog.objects.bulk_create([p.log for p in prepared])
    for item in prepared:
        item.result.log = item.log
    announce_questions(prepared, options.actor)
    stamp = timezone.now()
    changes = {}
    for item in prepared:
        row = dict(item.decision.changes)
        if "last_restored_at" in row:
            row["last_restored_at"] = stamp
        changes[item.decision.supervisor.id] = row
    written = update_supervisor_rows(changes)
    if written != len(prepared):
        raise DatabaseError(f"Expected to update {len(prepared)} supervisor rows, updated {written}.")
    record_events(report.events(prepared, options))


def raise_if_transaction_lost(exc: DatabaseError) -> None:
    """Re-raise ``exc`` when the enclosing transaction can no longer commit (the connection broke).

    A savepoint isolates one supervisor's failed write only while the
    connection lives. When it broke (the server restarted, a pooler or an
    operator killed it), rolling back to the savepoint fails too, Django marks
    the whole transaction for rollback, and the caller's block would end by
    silently rolling everything back: a claim would answer 200 naming
    supervisors it never took, which another daemon then claims as well. The
    failure must reach the caller instead (the API answers 503: retry).
    """
    if transaction.get_connection().needs_rollback:
        raise exc


def apply_isolated(prepared: Sequence[Prepared], options: RestoreOptions) -> dict[uuid.UUID, Exception]:
    """``apply`` in a savepoint; when it fails, each supervisor in its own. Returns the ones that failed.

    A failure that took the connection (and so the caller's transaction) with it is raised, not isolated.
    """
    if not prepared:
        return {}
    try:
        with transaction.atomic():
            apply(prepared, options)
        return {}
    except DatabaseError as exc:
        raise_if_transaction_lost(exc)
        logger.warning("Batch write failed; retrying the %d supervisors one by one", len(prepared), exc_info=True)
    failed: dict[uuid.UUID, Exception] = {}
    for item in prepared:
        try:
            with transaction.atomic():
                apply([item], options)
        except DatabaseError as exc:
            raise_if_transaction_lost(exc)
            logger.warning("Restoring the supervisor of contract %s failed: %s", item.result.contract_id, exc)
            failed[item.decision.supervisor.id] = exc
            item.result.log = None
    return failed


def log_failures(rows: Sequence[RestorationLog]) -> None:
    """Record the batch's failed restorations (their own writes were rolled back); raises only when the
    connection broke (then nothing of the caller's transaction can commit anyway)."""
    if not rows:
        return
    try:
        with transaction.atomic():
            RestorationLog.objects.bulk_create(rows)
    except DatabaseError as exc:
        raise_if_transaction_lost(exc)
        logger.warning("Could not record %d failed restorations in the log", len(rows), exc_info=True)


def announce_questions(prepared: Sequence[Prepared], actor: Actor) -> None:
    """Step 5's delivery: ``questions_redelivered`` on commit for every restored supervisor with questions."""
    for item in prepared:
        questions = item.result.context.pending_questions if item.result.context.success else []
        if questions:
            send_on_commit(
                questions_redelivered,
                contract_id=item.result.contract_id,
                supervisor_id=item.decision.supervisor.id,
                questions=questions,
                actor=str(actor),
            )


def move_task(task_id: uuid.UUID, daemon: Daemon) -> None:
    """A takeover: the supervisor task now runs on ``daemon``."""
    Task.objects.filter(id=task_id).update(daemon=daemon, updated_at=timezone.now())


def ensure_supervisor_task(contract: Contract) -> tuple[Task, bool]:
    """The contract's supervisor task and whether it was created (pending, on no daemon) just now.

    A supervisor state needs a task of its own; when a contract that never had
    a supervisor is restored, this is the one place that makes one.
    """
    task = Task.objects.filter(contract=contract, is_supervisor=True).order_by("-created_at").first()
    if task is not None:
        return task, False
    return Task.objects.create(contract=contract, name=f"supervisor of {contract.name}", is_supervisor=True), True


def create_fresh_state(contract: Contract, task: Task | None, now: datetime) -> SupervisorState:
    """Step 1's not-found branch: a new ``initializing`` state for a contract that had none."""
    return SupervisorState.objects.create(
        contract=contract,
        task=task,
        phase=contract.phase,
        state=SupervisorStatus.INITIALIZING,
        last_activity=now,
        created_at=now,
        updated_at=now,
    )
