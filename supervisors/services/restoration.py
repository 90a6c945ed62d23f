"""The restoration protocol: bring a supervisor back where it was (DESIGN.md, the ten steps).

One engine serves one supervisor (``restore_supervisor``: the API's resume, the
admin's actions) and a locked batch of them (``restore_locked_supervisors``:
the ``restore_supervisors`` command). For a batch it reads the tasks and the
checkpoints in a fixed number of queries (conversations are checked and copied
by the database, never read), plans each supervisor in memory, then writes
every log row in one INSERT and every state row in one UPDATE; so the work per
supervisor is Python, not round trips.

Everything a restoration writes (the state row, the checkpoint applied, the
task moved on takeover, the RestorationLog row) happens inside the caller's
transaction with the supervisor rows locked: a failure leaves all as it was.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DatabaseError, transaction
from django.dispatch import Signal
from django.utils import timezone

from supervisors.enums import (
    TERMINAL_TASK_STATUSES,
    ContractStatus,
    RecoveryAction,
    RestorationSource,
    SupervisorStatus,
)
from supervisors.models import (
    Contract,
    Daemon,
    RestorationLog,
    SupervisorCheckpoint,
    SupervisorState,
    Task,
)
from supervisors.selectors import is_stale
from supervisors.services.actors import Actor
from supervisors.services.checkpoints import checkpoint_snapshot
from supervisors.services.conversations import snapshot_histories
from supervisors.services.errors import Conflict, InvalidInput, NotFound
from supervisors.services.ownership import is_daemon_gone
from supervisors.services.restoration_context import generate_restoration_context_message
from supervisors.services.restoration_writes import update_supervisor_rows
from supervisors.services.signals import send_on_commit
from supervisors.services.validation import (
    StateValidationResult,
    ValidationWorld,
    conversation_loaded,
    load_tasks,
    load_worlds,
    state_findings,
    validate_with_world,
    well_formed_questions,
    world_findings,
)

logger = logging.getLogger(__name__)

#: Sent on commit (``send_robust``, like persistence's question signals) when pending
#: questions were delivered again to the human, after a restoration or by
#: ``redeliver_pending_questions``: notifiers listen to it to show them again.
#: kwargs: contract_id, supervisor_id, questions (PendingQuestion dicts), actor (label).
questions_redelivered = Signal()

__all__ = [
    "RestorationResult",
    "SupervisorRestorationContext",
    "ensure_supervisor_task",
    "generate_restoration_context_message",
    "questions_redelivered",
    "redeliver_pending_questions",
    "restore_locked_supervisors",
    "restore_supervisor",
    "validate_checkpoint",
]


@dataclass
class SupervisorRestorationContext:
    """The seed's SupervisorRestorationContext; ``as_dict`` gives its camelCase wire form."""

    success: bool
    previous_state: str
    conversation_history: Any
    pending_questions: list[dict[str, Any]]
    waiting_task_ids: list[uuid.UUID]
    spawned_task_ids: list[uuid.UUID]
    restoration_count: int
    restoration_context_message: str
    warnings: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "previousState": self.previous_state,
            "conversationHistory": self.conversation_history,
            "pendingQuestions": self.pending_questions,
            "waitingTaskIds": [str(t) for t in self.waiting_task_ids],
            "spawnedTaskIds": [str(t) for t in self.spawned_task_ids],
            "restorationCount": self.restoration_count,
            "restorationContextMessage": self.restoration_context_message,
            "warnings": list(self.warnings),
        }


@dataclass
class RestorationResult:
    """What one restoration found and did; ``log`` is None for a dry run."""

    contract_id: uuid.UUID
    context: SupervisorRestorationContext
    recovery_action: RecoveryAction
    checkpoint_id: int | None
    validation: StateValidationResult
    log: RestorationLog | None = None
    finished_task_ids: list[uuid.UUID] = field(default_factory=list)
    redelivered_question_ids: list[str] = field(default_factory=list)
    supervisor_id: uuid.UUID | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class RestoreOptions:
    """How to restore: the same for every supervisor of a batch."""

    source: str
    actor: Actor
    reason: str = ""
    checkpoint_id: int | None = None
    force_action: RecoveryAction | None = None
    assign_to_daemon: Daemon | None = None
    dry_run: bool = False

    def check(self) -> None:
        if self.source not in RestorationSource.values:
            raise InvalidInput(
                f"Unknown restoration source {self.source!r}; use one of {', '.join(RestorationSource.values)}.",
                fields={"source": [f"{self.source!r} is not a restoration source."]},
            )
        if self.force_action is not None and self.force_action not in RecoveryAction.values:
            raise InvalidInput(
                f"Unknown recovery action {self.force_action!r}.",
                fields={"force_action": [f"{self.force_action!r} is not a recovery action."]},
            )
        if self.checkpoint_id is not None and self.force_action not in (None, RecoveryAction.USE_CHECKPOINT):
            raise InvalidInput(
                "A checkpoint to restore from cannot be combined with another recovery action.",
                fields={
                    "checkpoint_id": ["Only with UseCheckpoint."],
                    "force_action": ["Conflicts with checkpoint_id."],
                },
            )


# --- small world-changing helpers ------------------------------------------------------------------


def ensure_supervisor_task(contract: Contract) -> tuple[Task, bool]:
    """The contract's supervisor task and whether it was created (pending, on no daemon) just now.

    A supervisor state needs a task of its own; when a contract that never had
    a supervisor is restored, this is the one place that makes one.
    """
    task = Task.objects.filter(contract=contract, is_supervisor=True).order_by("-created_at").first()
    if task is not None:
        return task, False
    return Task.objects.create(contract=contract, name=f"supervisor of {contract.name}", is_supervisor=True), True


def _checkpoint_fields(checkpoint: SupervisorCheckpoint, histories: dict[int, Any]) -> dict[str, Any]:
    """What restoring from a checkpoint would put back: persistence's ``checkpoint_snapshot``.

    ``checkpoint_snapshot`` reads the conversation (two queries per
    checkpoint), which would make a batch's queries grow with its size. So the
    state columns come from ``checkpoint_snapshot`` on a copy without its
    conversation link (no query), and the whole conversation from
    ``histories``, filled per batch by persistence's ``snapshot_histories``
    (read here only in the rare case the batch did not expect to need it).
    """
    detached = copy.copy(checkpoint)
    detached.conversation_id = None
    data = checkpoint_snapshot(detached)
    if checkpoint.conversation_id is not None:
        if checkpoint.conversation_id not in histories:
            histories.update(snapshot_histories([checkpoint.conversation_id]))
        data["conversation_history"] = histories[checkpoint.conversation_id]
    return data


def _state_without_conversation(checkpoint: SupervisorCheckpoint) -> dict[str, Any]:
    detached = copy.copy(checkpoint)
    detached.conversation_id = None
    data = checkpoint_snapshot(detached)
    del data["conversation_history"]
    return data


def _load_checkpoints(supervisor_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[SupervisorCheckpoint]]:
    """Every checkpoint of these supervisors, newest first, in one query (conversations not read)."""
    by_supervisor: dict[uuid.UUID, list[SupervisorCheckpoint]] = {s: [] for s in supervisor_ids}
    if supervisor_ids:
        for checkpoint in SupervisorCheckpoint.objects.filter(supervisor_id__in=supervisor_ids).order_by("-id"):
            by_supervisor[checkpoint.supervisor_id].append(checkpoint)
    return by_supervisor


def _load_likely_histories(
    need: Sequence[uuid.UUID],
    worlds: Mapping[uuid.UUID, ValidationWorld],
    checkpoints: Mapping[uuid.UUID, list[SupervisorCheckpoint]],
    contract_ids: Mapping[uuid.UUID, uuid.UUID],
    wanted_id: int | None,
) -> dict[int, Any]:
    """The whole conversations of the checkpoints the batch will most likely apply, in two queries.

    For each supervisor, the newest checkpoint whose state (all but the
    conversation) validates, or the one asked for. Only those conversations
    are read: a supervisor with 20 checkpoints costs one conversation, not 20.
    """
    snapshot_ids = set()
    for supervisor_id in need:
        for checkpoint in checkpoints.get(supervisor_id, []):
            if wanted_id is not None and checkpoint.id != wanted_id:
                continue
            issues, _ = state_findings(
                _state_without_conversation(checkpoint), worlds[supervisor_id], contract_id=contract_ids[supervisor_id]
            )
            if wanted_id is not None or not issues:
                if checkpoint.conversation_id is not None:
                    snapshot_ids.add(checkpoint.conversation_id)
                break
    return snapshot_histories(snapshot_ids)


def validate_checkpoint(checkpoint: SupervisorCheckpoint) -> StateValidationResult:
    """Would restoring from this checkpoint be accepted? The same rules as the live state.

    For the admin's "restore from this checkpoint": it can mark the checkpoints
    that would be refused, with the reasons. ``recovery_action`` is what
    restoring from it would be (UseCheckpoint, or ManualIntervention when the
    contract or the supervisor task is the problem). Changes nothing.
    """
    supervisor = (
        SupervisorState.objects.select_related("contract")
        .defer("conversation_history")
        .get(id=checkpoint.supervisor_id)
    )
    world = load_worlds([supervisor])[supervisor.id]
    fields = checkpoint_snapshot(checkpoint)
    missing = set(fields["spawned_task_ids"]) | set(fields["pending_task_ids"])
    world.tasks.update(load_tasks(missing - world.tasks.keys()))  # type: ignore[attr-defined]
    manual = world_findings(supervisor, world)
    issues, warnings = state_findings(fields, world, contract_id=supervisor.contract_id)
    action = RecoveryAction.MANUAL_INTERVENTION if manual else RecoveryAction.USE_CHECKPOINT
    return StateValidationResult(
        is_valid=not (manual or issues), issues=manual + issues, recovery_action=action, warnings=warnings
    )


# --- planning one supervisor (pure: no query) -------------------------------------------------------


@dataclass
class _Plan:
    supervisor: SupervisorState
    result: RestorationResult
    changes: dict[str, Any]
    log: RestorationLog | None
    move_task_to: Daemon | None = None


def _choose_checkpoint(
    supervisor: SupervisorState,
    world: ValidationWorld,
    checkpoints: Sequence[SupervisorCheckpoint],
    wanted_id: int | None,
    histories: dict[int, Any],
) -> tuple[SupervisorCheckpoint | None, dict[str, Any] | None, list[str]]:
    """The newest checkpoint that validates (or the one asked for), its fields and its warnings."""
    if wanted_id is not None:
        chosen = next((c for c in checkpoints if c.id == wanted_id), None)
        if chosen is None:
            raise NotFound(
                f"Checkpoint {wanted_id} is not a checkpoint of the supervisor of contract {supervisor.contract_id}.",
                fields={"checkpoint_id": [f"No checkpoint {wanted_id} for this supervisor."]},
            )
        fields = _checkpoint_fields(chosen, histories)
        issues, warnings = state_findings(fields, world, contract_id=supervisor.contract_id)
        if issues:
            raise InvalidInput(
                f"Checkpoint {wanted_id} does not validate: {'; '.join(issues)}",
                fields={"checkpoint_id": issues},
            )
        return chosen, fields, warnings
    for checkpoint in checkpoints:
        issues, _ = state_findings(_state_without_conversation(checkpoint), world, contract_id=supervisor.contract_id)
        if issues:  # cheap first: the conversation is only read for a checkpoint that passes the rest
            continue
        fields = _checkpoint_fields(checkpoint, histories)
        issues, warnings = state_findings(fields, world, contract_id=supervisor.contract_id)
        if not issues:
            return checkpoint, fields, warnings
    return None, None, []


def _fresh_fields(supervisor: SupervisorState, world: ValidationWorld) -> dict[str, Any]:
    """StartFresh: keep what is still true in the world, drop what cannot be trusted."""
    contract_id = supervisor.contract_id
    spawned = [
        t
        for t in dict.fromkeys(supervisor.spawned_task_ids or [])
        if t in world.tasks and world.tasks[t].contract_id == contract_id
    ]
    spawned_set = set(spawned)
    progress = supervisor.progress
    return {
        "state": SupervisorStatus.WORKING,
        "phase": world.contract.phase if world.contract is not None else supervisor.phase,
        "current_activity": supervisor.current_activity,
        "progress": progress if isinstance(progress, int) and 0 <= progress <= 100 else 0,
        "error_message": None,
        "spawned_task_ids": spawned,
        "pending_task_ids": [t for t in dict.fromkeys(supervisor.pending_task_ids or []) if t in spawned_set],
        "pending_questions": well_formed_questions(supervisor.pending_questions),
        "conversation_history": [],
    }


def _actor_log_fields(actor: Actor) -> dict[str, Any]:
    return {
        "actor_kind": actor.kind,
        "actor_user": actor.user,
        "actor_daemon": actor.daemon,
        "actor_label": str(actor),
    }


def _resolve_action(
    supervisor: SupervisorState, validation: StateValidationResult, options: RestoreOptions
) -> tuple[RecoveryAction, list[str]]:
    """The action validation calls for, or the one the caller forces when that is allowed."""
    action = validation.recovery_action
    forced = RecoveryAction.USE_CHECKPOINT if options.checkpoint_id is not None else options.force_action
    if forced is None:
        return RecoveryAction(action), []
    if action == RecoveryAction.MANUAL_INTERVENTION and forced != action:
        raise Conflict(
            f"The supervisor of contract {supervisor.contract_id} needs manual intervention: "
            f"{'; '.join(validation.issues)}",
            fields={"force_action": validation.issues},
            code="manual_intervention_needed",
        )
    if forced == RecoveryAction.PROCEED and not validation.is_valid:
        raise InvalidInput(
            f"Cannot proceed with an invalid state: {'; '.join(validation.issues)}",
            fields={"force_action": validation.issues},
        )
    notes = []
    if forced != action:
        notes.append(f"force_action: {forced} asked for by {options.actor} (validation suggested {action})")
    return RecoveryAction(forced), notes


def _plan_blocked(
    supervisor: SupervisorState,
    validation: StateValidationResult,
    options: RestoreOptions,
    now: datetime,
    started: float,
    notes: list[str],
) -> _Plan:
    """ManualIntervention: blocked with the reasons in error_message; nothing else changes."""
    reasons = validation.issues or [f"blocked by {options.actor}" + (f": {options.reason}" if options.reason else "")]
    changes = {
        "state": SupervisorStatus.BLOCKED,
        "error_message": "Manual intervention needed: " + "; ".join(reasons),
        "updated_at": now,
    }
    warnings = validation.warnings + notes
    context_message = generate_restoration_context_message(
        source=options.source,
        restoration_count=supervisor.restoration_count,
        previous_state=supervisor.state,
        phase=supervisor.phase,
        progress=supervisor.progress,
        current_activity=supervisor.current_activity,
        recovery_action=RecoveryAction.MANUAL_INTERVENTION,
        questions=[],
        waiting_task_ids=[],
        finished_task_ids=[],
        last_activity=supervisor.last_activity,
        issues=reasons,
        warnings=warnings,
    )
    context = SupervisorRestorationContext(
        success=False,
        previous_state=supervisor.state,
        conversation_history=supervisor.conversation_history if conversation_loaded(supervisor) else None,
        pending_questions=well_formed_questions(supervisor.pending_questions),
        waiting_task_ids=list(supervisor.pending_task_ids or []),
        spawned_task_ids=list(supervisor.spawned_task_ids or []),
        restoration_count=supervisor.restoration_count,
        restoration_context_message=context_message,
        warnings=warnings,
    )
    result = RestorationResult(
        contract_id=supervisor.contract_id,
        supervisor_id=supervisor.id,
        context=context,
        recovery_action=RecoveryAction.MANUAL_INTERVENTION,
        checkpoint_id=None,
        validation=validation,
        dry_run=options.dry_run,
    )
    return _Plan(supervisor, result, changes, _log_row(supervisor, result, options, now, started, supervisor.state))


def _plan_one(
    supervisor: SupervisorState,
    world: ValidationWorld,
    validation: StateValidationResult,
    checkpoints: Sequence[SupervisorCheckpoint],
    options: RestoreOptions,
    now: datetime,
    started: float,
    histories: dict[int, Any],
) -> _Plan:
    """Decide and compute everything one restoration writes (steps 2 to 9), without a query.

    (Unless a checkpoint expected to apply turns out to have a broken conversation:
    then the next one's conversation is read.)
    """
    action, warnings = _resolve_action(supervisor, validation, options)
    if action == RecoveryAction.MANUAL_INTERVENTION:
        return _plan_blocked(supervisor, validation, options, now, started, warnings)
    previous_state = supervisor.state
    stale = is_stale(supervisor, now)
    checkpoint: SupervisorCheckpoint | None = None
    applied_warnings = list(validation.warnings)
    if action == RecoveryAction.USE_CHECKPOINT:
        checkpoint, fields, checkpoint_warnings = _choose_checkpoint(
            supervisor, world, checkpoints, options.checkpoint_id, histories
        )
        if checkpoint is None:
            warnings.append(
                f"checkpoints: none of the {len(checkpoints)} checkpoints validates; started fresh"
                if checkpoints
                else "checkpoints: the supervisor has no checkpoint; started fresh"
            )
            action = RecoveryAction.START_FRESH
        else:
            applied_warnings = checkpoint_warnings
    if action == RecoveryAction.START_FRESH:
        fields = _fresh_fields(supervisor, world)
        applied_warnings = []
    elif action == RecoveryAction.PROCEED:
        fields = {
            "phase": supervisor.phase,
            "current_activity": supervisor.current_activity,
            "progress": supervisor.progress,
            "spawned_task_ids": list(supervisor.spawned_task_ids or []),
            "pending_task_ids": list(supervisor.pending_task_ids or []),
            "pending_questions": supervisor.pending_questions,
        }
    if stale:
        warnings.append(
            f"last_activity: {supervisor.last_activity.isoformat()} is too long ago for state "
            f"{previous_state!r}: the supervisor was stale and is restored as if interrupted"
        )
    warnings = applied_warnings + warnings

    # Steps 5 and 6: questions to re-deliver, tasks still waited on and tasks finished meanwhile.
    questions = well_formed_questions(fields["pending_questions"])
    spawned = list(dict.fromkeys(fields["spawned_task_ids"]))
    pending = list(dict.fromkeys(fields["pending_task_ids"]))
    finished = [t for t in pending if t in world.tasks and world.tasks[t].status in TERMINAL_TASK_STATUSES]
    finished_set = set(finished)
    waiting = [t for t in pending if t not in finished_set]

    # Step 7: the state to resume in.
    if questions:
        new_state = SupervisorStatus.WAITING_FOR_USER
    elif waiting:
        new_state = SupervisorStatus.WAITING_FOR_TASKS
    else:
        new_state = SupervisorStatus.WORKING
    restoration_count = supervisor.restoration_count + 1
    changes: dict[str, Any] = {
        "state": new_state,
        "phase": fields["phase"],
        "current_activity": fields["current_activity"],
        "progress": fields["progress"],
        "error_message": None,
        "spawned_task_ids": spawned,
        "pending_task_ids": waiting,
        "pending_questions": questions,
        "restoration_count": restoration_count,
        "last_restored_at": now,
        "restoration_source": options.source,
        "last_activity": now,
        "updated_at": now,
    }
    # The conversation: a batch does not read the live one (the database checked it), so
    # its results carry the conversation only when it changed; restore_supervisor has it.
    conversation = supervisor.conversation_history if conversation_loaded(supervisor) else None
    if "conversation_history" in fields:
        conversation = fields["conversation_history"]
        changes["conversation_history"] = conversation

    move_to = None
    daemon = options.assign_to_daemon
    if daemon is not None and world.supervisor_task is not None and world.supervisor_task.daemon_id != daemon.id:
        current = supervisor.task.daemon
        if not is_daemon_gone(current, now):
            raise Conflict(
                f"Daemon {current} still runs the supervisor of contract {supervisor.contract_id}; "
                "it can be taken over only once that daemon is gone.",
                fields={"assign_to_daemon": [f"Daemon {current} is alive."]},
                code="daemon_alive",
            )
        move_to = daemon
        warnings.append(f"task_id: supervisor task moved from daemon {current or 'none'} to daemon {daemon}")

    context_message = generate_restoration_context_message(
        source=options.source,
        restoration_count=restoration_count,
        previous_state=previous_state,
        phase=fields["phase"],
        progress=fields["progress"],
        current_activity=fields["current_activity"],
        recovery_action=action,
        questions=questions,
        waiting_task_ids=waiting,
        finished_task_ids=finished,
        spawned_task_ids=spawned,
        tasks=world.tasks,
        checkpoint_reason=checkpoint.get_reason_display() if checkpoint else None,
        checkpoint_taken_at=checkpoint.created_at if checkpoint else None,
        last_activity=supervisor.last_activity,
        stale=stale,
        issues=validation.issues,
        warnings=warnings,
    )
    context = SupervisorRestorationContext(
        success=True,
        previous_state=previous_state,
        conversation_history=conversation,
        pending_questions=questions,
        waiting_task_ids=waiting,
        spawned_task_ids=spawned,
        restoration_count=restoration_count,
        restoration_context_message=context_message,
        warnings=warnings,
    )
    result = RestorationResult(
        contract_id=supervisor.contract_id,
        supervisor_id=supervisor.id,
        context=context,
        recovery_action=action,
        checkpoint_id=checkpoint.id if checkpoint else None,
        validation=validation,
        finished_task_ids=finished,
        redelivered_question_ids=[q["id"] for q in questions],
        dry_run=options.dry_run,
    )
    plan = _Plan(supervisor, result, changes, None, move_task_to=move_to)
    plan.log = _log_row(supervisor, result, options, now, started, previous_state, checkpoint=checkpoint)
    return plan


def _log_row(
    supervisor: SupervisorState | None,
    result: RestorationResult,
    options: RestoreOptions,
    now: datetime,
    started: float,
    previous_state: str,
    *,
    checkpoint: SupervisorCheckpoint | None = None,
) -> RestorationLog:
    return RestorationLog(
        supervisor=supervisor,
        contract_id=result.contract_id,
        started_at=now,
        duration_ms=int((time.perf_counter() - started) * 1000),
        source=options.source,
        reason=options.reason,
        previous_state=previous_state or "",
        recovery_action=result.recovery_action,
        checkpoint=checkpoint,
        issues=result.validation.issues,
        warnings=result.context.warnings,
        success=result.context.success,
        restoration_count=result.context.restoration_count,
        redelivered_question_ids=result.redelivered_question_ids,
        finished_task_ids=[str(t) for t in result.finished_task_ids],
        **_actor_log_fields(options.actor),
    )


# --- the engine over locked rows --------------------------------------------------------------------


@dataclass
class Outcome:
    """One supervisor of a batch: restored (result), or failed (error)."""

    supervisor: SupervisorState
    result: RestorationResult | None = None
    error: Exception | None = None


def restore_locked_supervisors(
    supervisors: Sequence[SupervisorState],
    options: RestoreOptions,
    *,
    now: datetime | None = None,
    isolate_failures: bool = True,
) -> list[Outcome]:
    """Restore supervisors whose rows the caller has locked, in a fixed number of queries.

    Must run inside ``transaction.atomic()``. The rows need ``contract`` loaded
    (``select_related``), and ``task__daemon`` for a takeover; their
    conversation may be left to the database (``conversation_checks``). With
    ``isolate_failures`` a supervisor
    that fails is reported in its Outcome and the others are still written (a
    failed bulk write is retried row by row, each in its own savepoint);
    without it the first failure propagates and the caller's transaction rolls
    everything back.
    """
    now = now or timezone.now()
    started = time.perf_counter()
    worlds = load_worlds(supervisors)
    validations = {s.id: validate_with_world(s, worlds[s.id]) for s in supervisors}
    wants_checkpoint = options.force_action == RecoveryAction.USE_CHECKPOINT or options.checkpoint_id is not None
    need = [
        s.id
        for s in supervisors
        if wants_checkpoint or validations[s.id].recovery_action == RecoveryAction.USE_CHECKPOINT
    ]
    checkpoints = _load_checkpoints(need)
    _add_checkpoint_tasks(worlds, checkpoints)
    histories = _load_likely_histories(
        need, worlds, checkpoints, {s.id: s.contract_id for s in supervisors}, options.checkpoint_id
    )

    outcomes: list[Outcome] = []
    plans: list[_Plan] = []
    for supervisor in supervisors:
        one_started = time.perf_counter() if len(supervisors) > 1 else started
        try:
            plan = _plan_one(
                supervisor,
                worlds[supervisor.id],
                validations[supervisor.id],
                checkpoints.get(supervisor.id, []),
                options,
                now,
                one_started,
                histories,
            )
        except Exception as exc:
            if not isolate_failures:
                raise
            logger.warning("Restoring the supervisor of contract %s failed: %s", supervisor.contract_id, exc)
            outcomes.append(Outcome(supervisor, error=exc))
            continue
        plans.append(plan)
        outcomes.append(Outcome(supervisor, result=plan.result))
    if options.dry_run or not plans:
        return outcomes
    if not isolate_failures:
        _write(plans, options.actor)
        return outcomes
    try:
        with transaction.atomic():
            _write(plans, options.actor)
    except DatabaseError:
        logger.warning("Batch write failed; retrying the %d supervisors one by one", len(plans), exc_info=True)
        failed = _write_one_by_one(plans, options.actor)
        for outcome in outcomes:
            if outcome.supervisor.id in failed:
                outcome.error, outcome.result = failed[outcome.supervisor.id], None
    return outcomes


def _add_checkpoint_tasks(
    worlds: Mapping[uuid.UUID, ValidationWorld], checkpoints: Mapping[uuid.UUID, list[SupervisorCheckpoint]]
) -> None:
    """Load the tasks checkpoints refer to that the live states did not (one query, usually none)."""
    if not worlds:
        return
    tasks = next(iter(worlds.values())).tasks
    wanted: set[uuid.UUID] = set()
    for items in checkpoints.values():
        for checkpoint in items:
            wanted.update(checkpoint.spawned_task_ids or [])
            wanted.update(checkpoint.pending_task_ids or [])
    missing = wanted - tasks.keys()
    if missing:
        tasks.update(load_tasks(missing))  # type: ignore[attr-defined]


def _write(plans: Sequence[_Plan], actor: Actor) -> None:
    """All the batch's rows: one UPDATE of the states, one INSERT of the logs, and the takeovers."""
    # last_restored_at is what a concurrent batch run checks to skip a supervisor this
    # run restored: stamp it as late as possible, just before the commit, not when the
    # page started, so a run starting meanwhile sees it as restored after its start.
    # That is why the state rows are written last.
    for plan in plans:
        if plan.move_task_to is not None:
            Task.objects.filter(id=plan.supervisor.task_id).update(daemon=plan.move_task_to, updated_at=timezone.now())
    RestorationLog.objects.bulk_create([p.log for p in plans if p.log is not None])
    for plan in plans:
        plan.result.log = plan.log
    _announce_questions(plans, actor)
    stamp = timezone.now()
    for plan in plans:
        if "last_restored_at" in plan.changes:
            plan.changes["last_restored_at"] = stamp
    written = update_supervisor_rows({p.supervisor.id: p.changes for p in plans})
    if written != len(plans):
        raise DatabaseError(f"Expected to update {len(plans)} supervisor rows, updated {written}.")


def _write_one_by_one(plans: Sequence[_Plan], actor: Actor) -> dict[uuid.UUID, Exception]:
    failed: dict[uuid.UUID, Exception] = {}
    for plan in plans:
        try:
            with transaction.atomic():
                _write([plan], actor)
        except DatabaseError as exc:
            logger.warning("Restoring the supervisor of contract %s failed: %s", plan.supervisor.contract_id, exc)
            failed[plan.supervisor.id] = exc
            plan.log = None
    return failed


def _announce_questions(plans: Sequence[_Plan], actor: Actor) -> None:
    for plan in plans:
        questions = plan.result.context.pending_questions if plan.result.context.success else []
        if questions:
            send_on_commit(
                questions_redelivered,
                contract_id=plan.supervisor.contract_id,
                supervisor_id=plan.supervisor.id,
                questions=questions,
                actor=str(actor),
            )


# --- one supervisor ---------------------------------------------------------------------------------


def _lock_supervisor(contract_id: uuid.UUID) -> SupervisorState | None:
    return (
        SupervisorState.objects.select_for_update(of=("self",))
        .select_related("contract", "task", "task__daemon")
        .filter(contract_id=contract_id)
        .first()
    )


def restore_supervisor(
    contract_id: uuid.UUID,
    *,
    source: RestorationSource | str,
    actor: Actor,
    reason: str = "",
    checkpoint_id: int | None = None,
    force_action: RecoveryAction | None = None,
    assign_to_daemon: Daemon | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RestorationResult:
    """Run the restoration protocol for one contract's supervisor, in one transaction.

    ``checkpoint_id``: restore from that checkpoint (admin). ``force_action``:
    e.g. StartFresh (admin). ``assign_to_daemon``: takeover, moving the
    supervisor task to that daemon when its current daemon is gone (API, with
    source task_reassignment). ``dry_run``: validate and plan, write nothing.
    Raises NotFound when the contract does not exist and Conflict for a
    completed supervisor (that refusal is still logged).
    """
    options = RestoreOptions(
        source=str(source),
        actor=actor,
        reason=reason,
        checkpoint_id=checkpoint_id,
        force_action=force_action,
        assign_to_daemon=assign_to_daemon,
        dry_run=dry_run,
    )
    options.check()
    now = now or timezone.now()
    refusal: Conflict | None = None
    with transaction.atomic():
        supervisor = _lock_supervisor(contract_id)
        if supervisor is None:
            # Lock the contract, then look again: two restorations of a contract without
            # state must not both create one.
            contract = Contract.objects.select_for_update().filter(id=contract_id).first()
            if contract is None:
                raise NotFound(f"Contract {contract_id} does not exist.", fields={"contract_id": [str(contract_id)]})
            supervisor = _lock_supervisor(contract_id)
            if supervisor is None:
                return _start_fresh_without_state(contract, options, now)
        if supervisor.state == SupervisorStatus.COMPLETED:
            refusal = Conflict(
                f"The supervisor of contract {contract_id} is completed; a completed supervisor is not restored.",
                fields={"state": ["completed"]},
                code="supervisor_completed",
            )
            if not dry_run:
                _log_refusal(supervisor, options, now, refusal)
        else:
            outcome = restore_locked_supervisors([supervisor], options, now=now, isolate_failures=False)[0]
            assert outcome.result is not None
            return outcome.result
    raise refusal


def _log_refusal(supervisor: SupervisorState, options: RestoreOptions, now: datetime, refusal: Conflict) -> None:
    """A refused restoration is recorded too, so the log shows who tried and why it did not happen."""
    RestorationLog.objects.create(
        supervisor=supervisor,
        contract_id=supervisor.contract_id,
        started_at=now,
        source=options.source,
        reason=options.reason,
        previous_state=supervisor.state,
        recovery_action=RecoveryAction.PROCEED,
        issues=[f"state: {refusal.message}"],
        warnings=[],
        success=False,
        restoration_count=supervisor.restoration_count,
        **_actor_log_fields(options.actor),
    )


def _start_fresh_without_state(contract: Contract, options: RestoreOptions, now: datetime) -> RestorationResult:
    """Step 1's not-found branch: a fresh ``initializing`` state and a warning (contract locked)."""
    started = time.perf_counter()
    contract_id = contract.id
    if contract.status != ContractStatus.ACTIVE:
        raise Conflict(
            f"Contract {contract_id} is {contract.status} and has no supervisor state; there is nothing to restore.",
            fields={"contract_id": [f"Contract is {contract.status}."]},
        )
    warnings = [f"contract_id: no saved supervisor state for contract {contract_id}; started fresh"]
    task = None
    if not options.dry_run:
        task, created = ensure_supervisor_task(contract)
        if created:
            warnings.append(f"task_id: created supervisor task {task.id} (the contract had none)")
        daemon = options.assign_to_daemon
        if daemon is not None and task.daemon_id != daemon.id:
            Task.objects.filter(id=task.id).update(daemon=daemon, updated_at=now)
    validation = StateValidationResult(True, [], RecoveryAction.START_FRESH, [])
    message = generate_restoration_context_message(
        source=options.source,
        restoration_count=0,
        previous_state="none",
        phase=contract.phase,
        progress=0,
        current_activity=None,
        recovery_action=RecoveryAction.START_FRESH,
        questions=[],
        waiting_task_ids=[],
        finished_task_ids=[],
        warnings=warnings,
    )
    context = SupervisorRestorationContext(
        success=True,
        previous_state="none",
        conversation_history=[],
        pending_questions=[],
        waiting_task_ids=[],
        spawned_task_ids=[],
        restoration_count=0,
        restoration_context_message=message,
        warnings=warnings,
    )
    result = RestorationResult(
        contract_id=contract_id,
        context=context,
        recovery_action=RecoveryAction.START_FRESH,
        checkpoint_id=None,
        validation=validation,
        dry_run=options.dry_run,
    )
    logger.warning("No supervisor state for contract %s: started fresh", contract_id)
    if options.dry_run:
        return result
    supervisor = SupervisorState.objects.create(
        contract=contract,
        task=task,
        phase=contract.phase,
        state=SupervisorStatus.INITIALIZING,
        last_activity=now,
        created_at=now,
        updated_at=now,
    )
    result.supervisor_id = supervisor.id
    result.log = _log_row(supervisor, result, options, now, started, "")
    result.log.save()
    return result


# --- step 5 on its own ------------------------------------------------------------------------------


def redeliver_pending_questions(contract_id: uuid.UUID, *, actor: Actor) -> list[dict[str, Any]]:
    """Deliver a supervisor's pending questions to the human again; returns them.

    The well-formed questions are what the human can still answer; they are
    announced with ``questions_redelivered`` once the transaction commits
    (notifiers listen to it) and the re-delivery is logged. The row is only
    read under its lock, so a question answered meanwhile is not re-sent.
    """
    with transaction.atomic():
        supervisor = (
            SupervisorState.objects.select_for_update()
            .only("id", "contract_id", "pending_questions")
            .filter(contract_id=contract_id)
            .first()
        )
        if supervisor is None:
            raise NotFound(f"Contract {contract_id} has no supervisor.", fields={"contract_id": [str(contract_id)]})
        questions = well_formed_questions(supervisor.pending_questions)
        if questions:
            send_on_commit(
                questions_redelivered,
                contract_id=contract_id,
                supervisor_id=supervisor.id,
                questions=questions,
                actor=str(actor),
            )
            logger.info(
                "Re-delivered %d pending questions of contract %s (asked by %s)", len(questions), contract_id, actor
            )
    return questions
