"""The seed's repository functions for a supervisor's state, as concurrency-safe services.

Guarantees shared by every function here:

* All input is validated before anything is written; a refusal is a typed
  error (``InvalidInput`` with ``fields``, ``NotFound``, ``Conflict``,
  ``PreconditionFailed``) and leaves the database as it was.
* Every read-modify-write runs in one transaction holding the supervisor's
  row lock (:func:`~supervisors.services.inputs.lock_supervisor`), or is one
  UPDATE statement (the heartbeats, :func:`mark_supervisor_restored`), so two
  writers at once never lose each other's changes.
* The conversation history is only read when the caller needs it.
* Each save point but the heartbeat takes a checkpoint in the same
  transaction, and ``state_saved`` is sent once it commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from supervisors.enums import ActorKind, DaemonStatus, EventKind, RestorationSource, SavePoint, SupervisorStatus
from supervisors.models import SupervisorState, Task
from supervisors.validators import MAX_TEXT_LENGTH

from . import heartbeat_sql
from .actors import Actor
from .arrays import UUIDArrayAppend, UUIDArrayContains
from .checkpoints import take_checkpoint
from .conversation_append import (
    ConversationAppend,
    ConversationLengthMismatch,
    append_to_locked,
    appended_details,
    clean_conversation_append,
    lock_for_append,
    refuse_wrong_length,
)
from .errors import BrokenReference, InvalidInput, NotFound, PreconditionFailed
from .events import actor_of, record_event
from .inputs import (
    check_task_ids,
    clean_questions,
    clean_scalar_fields,
    lock_supervisor,
    parse_id_list,
    parse_uuid,
    raise_if,
    raise_if_broken,
    refuse_answered_questions,
    row_version_annotation,
    select_locked,
    some_of,
)
from .ownership import (
    UNFENCED,
    Fence,
    check_fence,
    may_add_tasks_given,
    not_visible,
    note_lease_renewed,
    superseded,
)
from .save_point_sql import save_references
from .signals import send_on_commit, state_saved
from .world import PendingCount, record_daemon_heartbeat

#: The keys of the seed's UpdateSupervisorStateRequest, as model field names.
UPDATABLE_FIELDS = frozenset(
    {
        "conversation_history",
        "pending_task_ids",
        "phase",
        "state",
        "current_activity",
        "progress",
        "error_message",
        "spawned_task_ids",
        "pending_questions",
    }
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- versions (ETag) ----------------------------------------------------------


def state_version(supervisor: SupervisorState) -> str:
    """The version of the row a client saw (the ETag): changes with every write, heartbeats included.

    ``updated_at`` (microseconds), which every write of this service moves
    strictly forward, and on PostgreSQL also the row's ``xmin``, which every
    UPDATE changes: a row makima rewrote without touching ``updated_at`` has a
    new version too. No column is added to makima's table. The ``xmin`` comes
    from the query that loaded the row (``row_version_annotation``) or, after
    a write, is read back in the writing transaction (:func:`remember_row_version`).
    """
    micros = (supervisor.updated_at - _EPOCH) // timedelta(microseconds=1)
    if connection.vendor != "postgresql":
        return f"{micros:x}"
    xmin = supervisor.__dict__.get("row_xmin")
    if xmin is None:
        xmin = remember_row_version(supervisor)
    return f"{micros:x}-{int(xmin):x}"


def remember_row_version(supervisor: SupervisorState) -> str | None:
    """PostgreSQL: read the row's ``xmin`` now (after this transaction's write) for :func:`state_version`."""
    if connection.vendor != "postgresql":
        return None
    xmin = (
        SupervisorState.objects.filter(pk=supervisor.pk)
        .annotate(**row_version_annotation())
        .values_list("row_xmin", flat=True)
        .first()
    )
    supervisor.__dict__["row_xmin"] = xmin
    return xmin


def check_version(supervisor: SupervisorState, expected_version: str | None) -> None:
    if expected_version is not None and expected_version != state_version(supervisor):
        raise PreconditionFailed(
            "The supervisor's state changed since it was read; fetch it again and retry.",
            fields={"If-Match": [f"Current version is {state_version(supervisor)}."]},
        )


def stamp_write(supervisor: SupervisorState) -> list[str]:
    """Stamp a locked write: ``updated_at`` strictly after the previous one, so the version always moves."""
    now = timezone.now()
    previous = supervisor.updated_at
    if previous is not None and now <= previous:
        now = previous + timedelta(microseconds=1)
    supervisor.last_activity = now
    supervisor.updated_at = now
    supervisor.__dict__.pop("row_xmin", None)
    return ["last_activity", "updated_at"]


def finish_save_point(supervisor: SupervisorState, reason: SavePoint) -> None:
    """The common end of a save point: checkpoint now, tell integrators after commit.

    The checkpoint reads the row's new version on its way (for the ETag); it is
    only read on its own if the checkpoint did not.
    """
    take_checkpoint(supervisor, reason)
    if "row_xmin" not in supervisor.__dict__:
        remember_row_version(supervisor)
    send_on_commit(
        state_saved,
        contract_id=supervisor.contract_id,
        supervisor_id=supervisor.pk,
        reason=str(reason),
        state=supervisor.state,
    )


def _spawned_and_pending(
    contract_id: uuid.UUID,
    spawned: list[uuid.UUID],
    pending: list[uuid.UUID],
    errors: dict[str, list[str]],
    *,
    check_spawned: list[uuid.UUID] | None = None,
    owners: dict[uuid.UUID, uuid.UUID] | None = None,
) -> None:
    """Spawned tasks are tasks of this contract; pending tasks are among the spawned ones."""
    ids = spawned if check_spawned is None else check_spawned
    check_task_ids(contract_id, {"spawned_task_ids": ids}, errors, owners=owners)
    known = set(spawned)
    never = [str(t) for t in pending if t not in known]
    if never:
        errors.setdefault("pending_task_ids", []).append(f"Pending tasks that were never spawned: {some_of(never)}.")


# --- full save and partial update -------------------------------------------------


@dataclass(frozen=True)
class SavedState:
    """A full save's outcome: the supervisor (without its conversation) and whether this save created it."""

    supervisor: SupervisorState
    created: bool


def save_supervisor_state_full(**options: Any) -> SupervisorState:
    """:func:`save_supervisor_state`, returning only the supervisor (the seed's repository function)."""
    return save_supervisor_state(**options).supervisor


def save_supervisor_state(
    *,
    contract_id: uuid.UUID | str,
    task_id: uuid.UUID | str,
    phase: str,
    state: str,
    conversation_history: list[dict[str, Any]],
    pending_task_ids: list[uuid.UUID | str],
    spawned_task_ids: list[uuid.UUID | str],
    pending_questions: list[dict[str, Any]],
    current_activity: str | None = None,
    progress: int = 0,
    error_message: str | None = None,
    expected_version: str | None = None,
    fence: Fence = UNFENCED,
    actor: Actor | None = None,
) -> SavedState:
    """Save the whole state of a contract's supervisor, creating it if the contract has none (UPSERT).

    Records a ``created`` or ``state_saved`` event (``actor``: who saved;
    default the fence's daemon) in the save's transaction.

    ``fence``: a daemon saves only a supervisor it owns (:func:`~.ownership.check_fence`),
    and creates one only on the contract's supervisor task assigned to it;
    anything else is NotFound, exactly as for a contract that does not exist.

    Guarantees: the contract exists (else NotFound); the values are well
    formed (else InvalidInput); ``task_id`` is this contract's supervisor task,
    every spawned task is a task of this contract and pending tasks were
    spawned (else BrokenReference); nothing is written on a refusal. With
    ``expected_version`` the save only happens if the row is still at that
    version (PreconditionFailed otherwise, also when there is no row yet).
    Two concurrent first saves of one contract end with one row, the later
    save winning. The restoration columns are never touched here.
    """
    contract_uuid = parse_uuid(contract_id, "contract_id")
    task_uuid = parse_uuid(task_id, "task_id")
    values: dict[str, Any] = {
        "phase": phase,
        "state": state,
        "conversation_history": conversation_history,
        "current_activity": current_activity,
        "progress": progress,
        "error_message": error_message,
        "pending_questions": pending_questions,
    }
    errors: dict[str, list[str]] = {}
    clean_scalar_fields(values, errors)
    values["pending_questions"] = clean_questions(pending_questions, errors)
    spawned = parse_id_list(spawned_task_ids, "spawned_task_ids", errors)
    pending = parse_id_list(pending_task_ids, "pending_task_ids", errors)
    # The contract, the daemon's right to it and every task named: one statement (save_point_sql).
    found = save_references(contract_uuid, [task_uuid, *spawned])
    if not found.contract_exists:
        raise NotFound(f"Contract {contract_uuid} does not exist.", fields={"contract_id": ["No such contract."]})
    if not may_add_tasks_given(fence.daemon_id, found.supervisor_task_daemons):
        raise not_visible(contract_uuid)
    raise_if(errors)
    references: dict[str, list[str]] = {}
    owners = found.task_contracts()
    check_task_ids(contract_uuid, {"task_id": [task_uuid]}, references, owners=owners)
    if "task_id" not in references and not found.tasks[task_uuid][1]:
        references["task_id"] = ["Must be the contract's supervisor task (a task marked isSupervisor)."]
    _spawned_and_pending(contract_uuid, spawned, pending, references, owners=owners)
    raise_if_broken(references)
    values.update(task_id=task_uuid, spawned_task_ids=spawned, pending_task_ids=pending)

    with transaction.atomic():
        supervisor = select_locked(contract_uuid)
        if supervisor is None:
            mine = Task.objects.filter(pk=task_uuid, daemon_id=fence.daemon_id)
            if fence.daemon_id is not None and not mine.exists():
                raise not_visible(contract_uuid)
            if expected_version is not None:
                raise PreconditionFailed(
                    "The contract has no supervisor state yet; save without a version to create it.",
                    fields={"expected_version": ["No state to compare with."]},
                )
            try:
                with transaction.atomic():
                    supervisor = SupervisorState(contract_id=contract_uuid, **values)
                    stamp_write(supervisor)
                    supervisor.save(force_insert=True)
            except IntegrityError:
                # Another first save won the race for the UNIQUE contract_id:
                # its row is committed now, so this save updates it instead.
                supervisor = lock_supervisor(contract_uuid, fence=fence)
            else:
                finish_save_point(supervisor, SavePoint.STATE_SAVED)
                record_event(
                    supervisor.pk, EventKind.CREATED, actor=actor_of(actor, fence), details=_saved_details(supervisor)
                )
                return SavedState(supervisor, created=True)
        else:
            check_fence(supervisor, fence)
        check_version(supervisor, expected_version)
        refuse_answered_questions(supervisor, values["pending_questions"])
        before = {"state": supervisor.state, "phase": supervisor.phase}
        for field, value in values.items():
            setattr(supervisor, field, value)
        supervisor.save(update_fields=[*values, *stamp_write(supervisor)])
        finish_save_point(supervisor, SavePoint.STATE_SAVED)
        record_event(
            supervisor.pk,
            EventKind.STATE_SAVED,
            actor=actor_of(actor, fence),
            details=_saved_details(supervisor, before),
        )
    return SavedState(supervisor, created=False)


def _saved_details(supervisor: SupervisorState, before: dict[str, Any] | None = None) -> dict[str, Any]:
    """A save's event details: the state and phase (with what they were, when they changed), the counts."""
    details: dict[str, Any] = {"state": supervisor.state, "phase": supervisor.phase}
    for field, value in (before or {}).items():
        if value != details[field]:
            details[f"{field}Before"] = value
    questions = supervisor.pending_questions
    details["pendingQuestions"] = len(questions) if isinstance(questions, list) else 0
    return details


def update_supervisor_detailed_state(
    contract_id: uuid.UUID | str,
    changes: dict[str, Any],
    *,
    expected_version: str | None = None,
    fence: Fence = UNFENCED,
    actor: Actor | None = None,
    dry_run: bool = False,
    append: ConversationAppend | None = None,
) -> SupervisorState:
    """Change only the given fields of the supervisor's state (the seed's UpdateSupervisorStateRequest).

    Records a ``state_updated`` event, or ``corrected`` when ``actor`` is a
    staff user (the admin's "Correct fields"), naming the fields changed.
    ``dry_run`` checks everything the write would check and writes nothing: the
    admin shows a correction's effect only once the service would accept it.

    Guarantees: keys are the request's fields (snake_case model names), each
    value is checked as in the full save, and the rules across fields hold on
    the result (pending tasks stay among the spawned ones). Fields not named
    are left exactly as they are, even if another writer changed them meanwhile.
    The conversation is only read or written when ``conversation_history`` is given;
    ``append`` adds messages at its end in the database instead
    (:mod:`.conversation_append`: ConversationLengthMismatch when the stored
    length is not the expected one), and cannot come with ``conversation_history``.
    """
    contract_uuid = parse_uuid(contract_id, "contract_id")
    if not isinstance(changes, dict):
        raise InvalidInput("Changes must be an object of field names to values.")
    unknown = sorted(set(changes) - UPDATABLE_FIELDS)
    if unknown:
        raise InvalidInput(
            f"Unknown fields: {', '.join(unknown)}.", fields={name: ["Not a field of the state."] for name in unknown}
        )
    values = dict(changes)
    errors: dict[str, list[str]] = {}
    clean_scalar_fields(values, errors)
    if "pending_questions" in values:
        values["pending_questions"] = clean_questions(values["pending_questions"], errors)
    for field in ("spawned_task_ids", "pending_task_ids"):
        if field in values:
            values[field] = parse_id_list(values[field], field, errors)
    raise_if(errors)
    if append is not None:
        append = clean_conversation_append(append)
    if append is not None and "conversation_history" in values:
        # Both: the append goes after the history sent, whose length it must name; nothing is read.
        sent = values["conversation_history"]
        if append.expected_length != len(sent):
            raise ConversationLengthMismatch(
                f"The append expects {append.expected_length} messages before it; the history sent has {len(sent)}.",
                current_length=len(sent),
                fields={"conversation_append.expected_length": [f"The history sent has {len(sent)} messages."]},
            )
        values["conversation_history"] = [*sent, *append.messages]
        append = None

    with transaction.atomic():
        supervisor = lock_for_append(contract_uuid, append, fence=fence)
        check_version(supervisor, expected_version)
        if "pending_questions" in values:
            refuse_answered_questions(supervisor, values["pending_questions"])
        spawned = values.get("spawned_task_ids", supervisor.spawned_task_ids)
        pending = values.get("pending_task_ids", supervisor.pending_task_ids)
        if "spawned_task_ids" in values or "pending_task_ids" in values:
            references: dict[str, list[str]] = {}
            _spawned_and_pending(
                contract_uuid, spawned, pending, references, check_spawned=values.get("spawned_task_ids", [])
            )
            raise_if_broken(references)
        if dry_run:
            if append is not None:
                refuse_wrong_length(supervisor, append)
            return supervisor
        length = append_to_locked(supervisor, append) if append is not None else None
        before = {f: getattr(supervisor, f) for f in ("state", "phase") if f in values}
        for field, value in values.items():
            setattr(supervisor, field, value)
        supervisor.save(update_fields=[*values, *stamp_write(supervisor)])
        finish_save_point(supervisor, SavePoint.STATE_UPDATED)
        who = actor_of(actor, fence)
        named = sorted({*values, *(["conversation_history"] if append is not None else [])})
        details: dict[str, Any] = appended_details(append, length, {"fields": named})
        for field, value in before.items():
            if value != values[field]:
                details[field] = {"from": value, "to": values[field]}
        kind = EventKind.CORRECTED if who.kind == ActorKind.STAFF else EventKind.STATE_UPDATED
        record_event(supervisor.pk, kind, actor=who, details=details)
    return supervisor


# --- heartbeats ------------------------------------------------------------------


@dataclass(frozen=True)
class HeartbeatItem:
    """One supervisor's heartbeat in a batch."""

    contract_id: uuid.UUID | str
    state: str
    current_activity: str | None
    progress: int
    #: The epoch the daemon believes current (its last resume's restorationCount); None: not sent.
    epoch: int | None = None


_STATES = frozenset(SupervisorStatus.values)


def _heartbeat_is_clean(state: Any, current_activity: Any, progress: Any) -> bool:
    """The common case, checked in a few hundred nanoseconds; anything else goes to the full validators."""
    return (
        type(state) is str
        and state in _STATES
        and type(progress) is int
        and 0 <= progress <= 100
        and (
            current_activity is None
            or (
                type(current_activity) is str
                and len(current_activity) <= MAX_TEXT_LENGTH
                and "\x00" not in current_activity
            )
        )
    )


def _clean_heartbeat(state: str, current_activity: str | None, progress: int, prefix: str = "") -> None:
    if _heartbeat_is_clean(state, current_activity, progress):
        return
    errors: dict[str, list[str]] = {}
    clean_scalar_fields({"state": state, "current_activity": current_activity, "progress": progress}, errors)
    raise_if({f"{prefix}{field}": msgs for field, msgs in errors.items()})


def update_supervisor_heartbeat_state(
    contract_id: uuid.UUID | str,
    *,
    state: str,
    current_activity: str | None,
    progress: int,
    daemon_id: uuid.UUID | str | None = None,
    count: PendingCount | None = None,
    epoch: int | None = None,
) -> bool:
    """The lightweight save point: one UPDATE of the heartbeat columns, nothing read first.

    Writes only ``HEARTBEAT_COLUMNS`` (state, current_activity, progress,
    last_activity, updated_at): never the conversation or the other JSON
    columns, so the cost and the WAL do not depend on the history's size, and
    no checkpoint is taken. With ``daemon_id`` only a supervisor whose task
    runs on that daemon is updated. Returns whether a row was updated (False:
    no such supervisor, or not on that daemon; no extra query tells which).
    The statement is prepared text (:mod:`.heartbeat_sql`), not built by the
    ORM per call: this is the hottest path of the service. ``count`` (with a
    daemon) counts the request for the API's throttle in the same statement;
    over its limit nothing is written and False is returned.
    """
    contract_uuid = parse_uuid(contract_id, "contract_id")
    daemon_uuid = None if daemon_id is None else parse_uuid(daemon_id, "daemon_id")
    _clean_heartbeat(state, current_activity, progress)
    now = timezone.now()
    written = heartbeat_sql.update_one(contract_uuid, daemon_uuid, state, current_activity, progress, now, count, epoch)
    if written or (count is not None and count.counted is not None and count.counted.count > count.limit):
        return bool(written)
    _explain_unwritten_heartbeat(contract_uuid, Fence(daemon_uuid, epoch))
    return False


def _explain_unwritten_heartbeat(contract_id: uuid.UUID, fence: Fence) -> None:
    """Why a heartbeat's statement wrote nothing, read afresh (the refusal path only, never a heartbeat's cost).

    NotFound for no supervisor or not this daemon's; Conflict ``superseded``
    for a former owner, an epoch other than the current one, or a restoration
    that committed while the heartbeat ran (the daemon then resumes or retries).
    """
    supervisor = (
        SupervisorState.objects.only("id", "contract_id", "task_id", "restoration_count")
        .filter(contract_id=contract_id)
        .first()
    )
    if supervisor is None:
        raise not_visible(contract_id)
    check_fence(supervisor, fence)
    raise superseded(contract_id, supervisor.restoration_count, "was restored while this heartbeat ran")


def update_supervisor_heartbeat_states(items: list[HeartbeatItem], *, daemon_id: uuid.UUID | str | None = None) -> int:
    """Many supervisors' heartbeats in ONE UPDATE statement; returns how many rows it changed.

    Same guarantees as :func:`update_supervisor_heartbeat_state`. All items are
    validated first (InvalidInput names ``items[i].field``); a contract listed
    twice is one heartbeat, the later item's (items apply in order). The
    statement's text does not depend on the number of items (arrays on
    PostgreSQL, a JSON array on SQLite).
    """
    if not items:
        return 0
    daemon_uuid = None if daemon_id is None else parse_uuid(daemon_id, "daemon_id")
    return len(heartbeat_sql.update_many(_heartbeat_rows(items), daemon_uuid, timezone.now()))


def _heartbeat_rows(items: list[HeartbeatItem]) -> list[heartbeat_sql.Row]:
    """Every item validated (InvalidInput names ``items[i].field``), as rows for heartbeat_sql.

    A contract listed twice keeps its later item, at its first position: the items apply in order.
    """
    rows: dict[uuid.UUID, heartbeat_sql.Row] = {}
    for index, item in enumerate(items):
        contract_uuid = parse_uuid(item.contract_id, f"items[{index}].contract_id")
        _clean_heartbeat(item.state, item.current_activity, item.progress, prefix=f"items[{index}].")
        if item.epoch is not None and (type(item.epoch) is not int or not 0 <= item.epoch < 2**31):
            raise InvalidInput(
                f"Item {index}'s epoch must be a non-negative integer.",
                fields={f"items[{index}].epoch": ["Must be a non-negative integer."]},
            )
        rows[contract_uuid] = (contract_uuid, item.state, item.current_activity, item.progress, item.epoch)
    return list(rows.values())


def record_daemon_and_supervisor_heartbeats(
    daemon_id: uuid.UUID | str, *, status: str = DaemonStatus.CONNECTED, items: list[HeartbeatItem]
) -> tuple[datetime, set[uuid.UUID]]:
    """A daemon's own heartbeat carrying its supervisors': (when it was recorded, the contracts written).

    On PostgreSQL the daemon's row and the supervisors' UPDATE are ONE
    statement (a data-modifying CTE), so the request costs two queries with the
    rate counter, and both writes commit together. Elsewhere it is
    :func:`~supervisors.services.world.record_daemon_heartbeat` then
    :func:`update_supervisor_heartbeat_states`. Only supervisors this daemon
    owns, at the epoch each item names (or, without one, the epoch the
    statement started at), are written; the others are left out of the
    returned contracts. NotFound when the daemon does not exist.
    """
    daemon_uuid = parse_uuid(daemon_id, "daemon_id")
    if status not in DaemonStatus.values:
        raise InvalidInput(f"Unknown daemon status {status!r}.", fields={"status": ["Unknown status."]})
    rows = _heartbeat_rows(items)
    if connection.vendor != "postgresql":
        at = record_daemon_heartbeat(daemon_uuid, status=status)
        note_lease_renewed(daemon_uuid, connected=status == DaemonStatus.CONNECTED)
        return at, heartbeat_sql.update_many(rows, daemon_uuid, timezone.now()) if rows else set()
    now = timezone.now()
    found, updated = heartbeat_sql.update_daemon_and_many(daemon_uuid, status, rows, now)
    if not found:
        raise NotFound(f"Daemon {daemon_id} does not exist.")
    note_lease_renewed(daemon_uuid, connected=status == DaemonStatus.CONNECTED)
    return now, updated


# --- save points: task spawned, phase changed ----------------------------------------


def add_supervisor_spawned_task(
    contract_id: uuid.UUID | str,
    task_id: uuid.UUID | str,
    *,
    wait: bool = True,
    fence: Fence = UNFENCED,
    actor: Actor | None = None,
    append: ConversationAppend | None = None,
) -> SupervisorState:
    """Record that the supervisor spawned ``task_id`` (and, with ``wait``, waits on it).

    Guarantees: the task exists and belongs to this contract and is not the
    supervisor's own task (BrokenReference otherwise). Adding a task twice does
    not duplicate it. Concurrent calls each keep their task: the membership
    test and the append run under the row lock. The append happens in the
    database (``array_append``), so the call costs the same for the first and
    the thousandth task; the returned state reads its task id lists from the
    database on first access. Takes a ``task_spawned`` checkpoint. ``append``:
    messages for the conversation's end, in the same transaction
    (:mod:`.conversation_append`); a spawn already recorded (a retried
    request) appends nothing, so its messages do not land twice.
    """
    contract_uuid = parse_uuid(contract_id, "contract_id")
    task_uuid = parse_uuid(task_id, "task_id")
    if append is not None:
        append = clean_conversation_append(append)
    references: dict[str, list[str]] = {}
    check_task_ids(contract_uuid, {"task_id": [task_uuid]}, references)
    raise_if_broken(references)
    with transaction.atomic():
        supervisor = lock_for_append(
            contract_uuid,
            append,
            fence=fence,
            defer_task_ids=True,
            annotations={
                "task_spawned": UUIDArrayContains("spawned_task_ids", task_uuid),
                "task_pending": UUIDArrayContains("pending_task_ids", task_uuid),
            },
        )
        if supervisor.task_id == task_uuid:
            raise BrokenReference(
                "A supervisor cannot spawn its own task.", fields={"task_id": ["This is the supervisor's own task."]}
            )
        spawned, pending = supervisor.task_spawned, supervisor.task_pending
        # A spawn already recorded is a retried request: its messages went in with the first one.
        resent = spawned and (pending or not wait)
        length = append_to_locked(supervisor, append) if append is not None and not resent else None
        changes: dict[str, Any] = {}
        if not spawned:
            changes["spawned_task_ids"] = UUIDArrayAppend("spawned_task_ids", task_uuid)
        if wait and not pending:
            changes["pending_task_ids"] = UUIDArrayAppend("pending_task_ids", task_uuid)
        stamp_write(supervisor)
        SupervisorState.objects.filter(pk=supervisor.pk).update(
            **changes, last_activity=supervisor.last_activity, updated_at=supervisor.updated_at
        )
        finish_save_point(supervisor, SavePoint.TASK_SPAWNED)
        record_event(
            supervisor.pk,
            EventKind.TASK_SPAWNED,
            actor=actor_of(actor, fence),
            details=appended_details(
                append if length is not None else None,
                length,
                {"taskId": str(task_uuid), "waiting": bool(wait), "new": not spawned},
            ),
        )
    return supervisor


def save_state_on_task_spawn(
    contract_id: uuid.UUID | str, task_id: uuid.UUID | str, *, wait: bool = True
) -> SupervisorState:
    """The seed's save point on task spawn: :func:`add_supervisor_spawned_task`."""
    return add_supervisor_spawned_task(contract_id, task_id, wait=wait)


def update_supervisor_phase(
    contract_id: uuid.UUID | str,
    phase: str,
    *,
    fence: Fence = UNFENCED,
    actor: Actor | None = None,
    append: ConversationAppend | None = None,
) -> SupervisorState:
    """Record the supervisor's new phase (a non-empty name of at most 50 characters).

    Takes a checkpoint and records a ``phase_changed`` event with the phase it left.
    ``append``: messages for the conversation's end, in the same transaction.
    """
    contract_uuid = parse_uuid(contract_id, "contract_id")
    errors: dict[str, list[str]] = {}
    clean_scalar_fields({"phase": phase}, errors)
    raise_if(errors)
    if append is not None:
        append = clean_conversation_append(append)
    with transaction.atomic():
        supervisor = lock_for_append(contract_uuid, append, fence=fence)
        length = append_to_locked(supervisor, append) if append is not None else None
        previous = supervisor.phase
        supervisor.phase = phase
        supervisor.save(update_fields=["phase", *stamp_write(supervisor)])
        finish_save_point(supervisor, SavePoint.PHASE_CHANGED)
        record_event(
            supervisor.pk,
            EventKind.PHASE_CHANGED,
            actor=actor_of(actor, fence),
            details=appended_details(append, length, {"from": previous, "to": phase}),
        )
    return supervisor


def save_state_on_phase_change(contract_id: uuid.UUID | str, phase: str) -> SupervisorState:
    """The seed's save point on phase change: :func:`update_supervisor_phase`."""
    return update_supervisor_phase(contract_id, phase)


# --- restoration bookkeeping ---------------------------------------------------------


def mark_supervisor_restored(contract_id: uuid.UUID | str, source: RestorationSource | str) -> SupervisorState:
    """Count one more restoration: ``restoration_count + 1``, ``last_restored_at``, ``restoration_source``.

    One UPDATE with ``restoration_count = restoration_count + 1`` (no lost
    increment under concurrency); returns the row without its conversation.
    """
    contract_uuid = parse_uuid(contract_id, "contract_id")
    errors: dict[str, list[str]] = {}
    if source not in RestorationSource.values:
        errors["source"] = [f"{source!r} is not one of {', '.join(RestorationSource.values)}."]
    raise_if(errors)
    now = timezone.now()
    with transaction.atomic():
        updated = SupervisorState.objects.filter(contract_id=contract_uuid).update(
            restoration_count=F("restoration_count") + 1,
            last_restored_at=now,
            restoration_source=source,
            updated_at=now,
        )
        if not updated:
            raise NotFound(f"Contract {contract_uuid} has no supervisor.", fields={"contract_id": ["No supervisor."]})
        return SupervisorState.objects.defer("conversation_history").get(contract_id=contract_uuid)


def get_supervisor_state_for_restoration(contract_id: uuid.UUID | str, *, lock: bool = True) -> SupervisorState | None:
    """The whole state, conversation included, for restoring; None when the contract has no supervisor.

    With ``lock`` (the default) the row stays locked until the caller's
    transaction ends; call it inside ``transaction.atomic()``.
    """
    contract_uuid = parse_uuid(contract_id, "contract_id")
    queryset = SupervisorState.objects.all()
    if lock:
        queryset = queryset.select_for_update(no_key=connection.features.has_select_for_no_key_update)
    return queryset.filter(contract_id=contract_uuid).first()


__all__ = [
    "UPDATABLE_FIELDS",
    "HeartbeatItem",
    "SavedState",
    "add_supervisor_spawned_task",
    "get_supervisor_state_for_restoration",
    "mark_supervisor_restored",
    "record_daemon_and_supervisor_heartbeats",
    "save_state_on_phase_change",
    "save_state_on_task_spawn",
    "save_supervisor_state",
    "save_supervisor_state_full",
    "state_version",
    "update_supervisor_detailed_state",
    "update_supervisor_heartbeat_state",
    "update_supervisor_heartbeat_states",
    "update_supervisor_phase",
]
