"""Steps 3 to 8: decide everything one restoration will write. Pure: no query.

One small function per decision: the recovery action (``resolve_action``),
the checkpoint (``choose_checkpoint``), what a fresh start keeps
(``fresh_fields``), the questions to re-deliver (``questions_to_redeliver``),
the tasks still waited on (``waiting_tasks``), the state to resume in
(``resume_state``), a takeover (``takeover``) and the agent's message
(``context_message``). ``decide`` strings them together into a ``Decision``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from supervisors.enums import (
    OUTCOME_OF_ACTION,
    TERMINAL_TASK_STATUSES,
    RecoveryAction,
    RestorationOutcome,
    SupervisorStatus,
)
from supervisors.models import Daemon, SupervisorCheckpoint, SupervisorState
from supervisors.selectors import is_stale
from supervisors.services.checkpoints import checkpoint_snapshot
from supervisors.services.errors import Conflict, InvalidInput, NotFound
from supervisors.services.ownership import is_daemon_gone
from supervisors.services.validation import (
    AnswerFacts,
    StateValidationResult,
    ValidationWorld,
    conversation_loaded,
    well_formed_questions,
)

from . import validate
from .context_message import generate_restoration_context_message
from .load import Histories, state_without_conversation
from .options import RestoreOptions


@dataclass(frozen=True)
class Decision:
    """What one restoration will do to one supervisor: decided, not yet written."""

    supervisor: SupervisorState
    validation: StateValidationResult
    action: RecoveryAction
    previous_state: str
    new_state: str
    restoration_count: int
    phase: str
    progress: Any
    current_activity: str | None
    questions: tuple[dict[str, Any], ...]
    spawned: tuple[uuid.UUID, ...]
    waiting: tuple[uuid.UUID, ...]
    finished: tuple[uuid.UUID, ...]
    conversation: Any
    changes: Mapping[str, Any]
    warnings: tuple[str, ...]
    issues: tuple[str, ...]
    pending_answers: tuple[dict[str, Any], ...] = ()
    checkpoint: SupervisorCheckpoint | None = None
    stale: bool = False
    move_task_to: Daemon | None = None
    previous_daemon: Daemon | None = None

    @property
    def restored(self) -> bool:
        """False for ManualIntervention: the supervisor is only marked blocked."""
        return self.action != RecoveryAction.MANUAL_INTERVENTION

    @property
    def outcome(self) -> RestorationOutcome:
        return OUTCOME_OF_ACTION[self.action]

    @property
    def error_message(self) -> str | None:
        """The error message the supervisor ends with: cleared by a restoration, the reasons when blocked."""
        return self.changes.get("error_message", self.supervisor.error_message)


def resolve_action(
    supervisor: SupervisorState, validation: StateValidationResult, options: RestoreOptions
) -> tuple[RecoveryAction, list[str]]:
    """The action validation calls for, or the one the caller forces when that is allowed.

    Raises Conflict when a person is needed and something else is forced, and
    InvalidInput when Proceed is forced on an invalid state.
    """
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


def checkpoint_fields(checkpoint: SupervisorCheckpoint, histories: Histories) -> dict[str, Any]:
    """What restoring from a checkpoint would put back; its conversation comes from ``histories``."""
    detached = copy.copy(checkpoint)
    detached.conversation_id = None
    data = checkpoint_snapshot(detached)
    if checkpoint.conversation_id is not None:
        data["conversation_history"] = histories.get(checkpoint.conversation_id)
    return data


def choose_checkpoint(
    supervisor: SupervisorState,
    world: ValidationWorld,
    checkpoints: Sequence[SupervisorCheckpoint],
    wanted_id: int | None,
    histories: Histories,
) -> tuple[SupervisorCheckpoint | None, dict[str, Any] | None, list[str]]:
    """The newest checkpoint that validates (or the one asked for), its fields and its warnings.

    Raises NotFound / InvalidInput when the checkpoint asked for is not this
    supervisor's or does not validate.
    """
    contract_id = supervisor.contract_id
    if wanted_id is not None:
        chosen = next((c for c in checkpoints if c.id == wanted_id), None)
        if chosen is None:
            raise NotFound(
                f"Checkpoint {wanted_id} is not a checkpoint of the supervisor of contract {contract_id}.",
                fields={"checkpoint_id": [f"No checkpoint {wanted_id} for this supervisor."]},
            )
        fields = checkpoint_fields(chosen, histories)
        issues, warnings = validate.checkpoint_findings(fields, world, contract_id=contract_id)
        if issues:
            raise InvalidInput(
                f"Checkpoint {wanted_id} does not validate: {'; '.join(issues)}", fields={"checkpoint_id": issues}
            )
        return chosen, fields, warnings
    for checkpoint in checkpoints:
        issues, _ = validate.checkpoint_findings(state_without_conversation(checkpoint), world, contract_id=contract_id)
        if issues:  # cheap first: the conversation is only read for a checkpoint that passes the rest
            continue
        fields = checkpoint_fields(checkpoint, histories)
        issues, warnings = validate.checkpoint_findings(fields, world, contract_id=contract_id)
        if not issues:
            return checkpoint, fields, warnings
    return None, None, []


def fresh_fields(supervisor: SupervisorState, world: ValidationWorld) -> dict[str, Any]:
    """StartFresh: keep what is still true in the world, drop what cannot be trusted (the conversation)."""
    contract_id = supervisor.contract_id
    spawned = [
        t
        for t in dict.fromkeys(supervisor.spawned_task_ids or [])
        if t in world.tasks and world.tasks[t].contract_id == contract_id
    ]
    spawned_set = set(spawned)
    progress = supervisor.progress
    return {
        "phase": world.contract.phase if world.contract is not None else supervisor.phase,
        "current_activity": supervisor.current_activity,
        "progress": progress if isinstance(progress, int) and 0 <= progress <= 100 else 0,
        "spawned_task_ids": spawned,
        "pending_task_ids": [t for t in dict.fromkeys(supervisor.pending_task_ids or []) if t in spawned_set],
        "pending_questions": well_formed_questions(supervisor.pending_questions),
        "conversation_history": [],
    }


def saved_fields(supervisor: SupervisorState) -> dict[str, Any]:
    """Proceed: the saved state as it is (the conversation stays where it is: no need to rewrite it)."""
    return {
        "phase": supervisor.phase,
        "current_activity": supervisor.current_activity,
        "progress": supervisor.progress,
        "spawned_task_ids": list(supervisor.spawned_task_ids or []),
        "pending_task_ids": list(supervisor.pending_task_ids or []),
        "pending_questions": supervisor.pending_questions,
    }


def restored_fields(
    supervisor: SupervisorState,
    world: ValidationWorld,
    action: RecoveryAction,
    checkpoints: Sequence[SupervisorCheckpoint],
    options: RestoreOptions,
    histories: Histories,
) -> tuple[RecoveryAction, SupervisorCheckpoint | None, dict[str, Any], list[str], list[str]]:
    """Step 3: (action actually applied, checkpoint, fields it restores, warnings that still hold, notes).

    UseCheckpoint falls back to StartFresh when no checkpoint validates.
    """
    if action == RecoveryAction.USE_CHECKPOINT:
        checkpoint, fields, warnings = choose_checkpoint(
            supervisor, world, checkpoints, options.checkpoint_id, histories
        )
        if checkpoint is not None and fields is not None:
            return action, checkpoint, fields, warnings, []
        note = (
            f"checkpoints: none of the {len(checkpoints)} checkpoints validates; started fresh"
            if checkpoints
            else "checkpoints: the supervisor has no checkpoint; started fresh"
        )
        return RecoveryAction.START_FRESH, None, fresh_fields(supervisor, world), [], [note]
    if action == RecoveryAction.START_FRESH:
        return action, None, fresh_fields(supervisor, world), [], []
    return action, None, saved_fields(supervisor), [], []


def questions_to_redeliver(
    pending_questions: Any, answers: Mapping[str, AnswerFacts] | None = None
) -> tuple[list[dict[str, Any]], list[AnswerFacts]]:
    """Step 5: (the questions the human can still answer, the answers to questions that came back).

    A question that already has an answer cannot be answered again: it is not
    re-delivered; its answer is (see ``pending_answers``).
    """
    answers = answers or {}
    questions = well_formed_questions(pending_questions)
    return [q for q in questions if q["id"] not in answers], [answers[q["id"]] for q in questions if q["id"] in answers]


def pending_answers(answers: Mapping[str, AnswerFacts]) -> tuple[dict[str, Any], ...]:
    """Step 5's other half: every answer the daemon has not acknowledged travels with the restoration."""
    return tuple(a.as_wire() for a in answers.values() if not a.acknowledged)


def answered_warnings(answered: Sequence[AnswerFacts]) -> list[str]:
    """Say what happened to each question that came back already answered."""
    return [
        f"pending_questions: question {a.question_id} was already answered ({a.answer!r}); "
        + (
            "its answer was acknowledged before, so it is not asked again"
            if a.acknowledged
            else "it is not asked again, its answer is delivered in pendingAnswers"
        )
        for a in answered
    ]


def waiting_tasks(
    pending_task_ids: Sequence[uuid.UUID], world: ValidationWorld
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Step 6: (still waited on, finished while the supervisor was away)."""
    pending = list(dict.fromkeys(pending_task_ids))
    finished = [t for t in pending if t in world.tasks and world.tasks[t].status in TERMINAL_TASK_STATUSES]
    finished_set = set(finished)
    return [t for t in pending if t not in finished_set], finished


def resume_state(questions: Sequence[Any], waiting: Sequence[Any]) -> SupervisorStatus:
    """Step 7: waiting for the user if questions are pending, else for tasks if any, else working."""
    if questions:
        return SupervisorStatus.WAITING_FOR_USER
    if waiting:
        return SupervisorStatus.WAITING_FOR_TASKS
    return SupervisorStatus.WORKING


def takeover(
    supervisor: SupervisorState, world: ValidationWorld, options: RestoreOptions, now: datetime
) -> tuple[Daemon | None, Daemon | None, list[str]]:
    """(daemon the task moves to, daemon it moves away from, warning) when ``assign_to_daemon`` asks for one.

    Raises Conflict (``daemon_alive``) when the current daemon is not gone.
    """
    daemon = options.assign_to_daemon
    if daemon is None or world.supervisor_task is None or world.supervisor_task.daemon_id == daemon.id:
        return None, None, []
    current = supervisor.task.daemon
    if not is_daemon_gone(current, now):
        raise Conflict(
            f"Daemon {current} still runs the supervisor of contract {supervisor.contract_id}; "
            "it can be taken over only once that daemon is gone.",
            fields={"assign_to_daemon": [f"Daemon {current} is alive."]},
            code="daemon_alive",
        )
    return daemon, current, [f"task_id: supervisor task moved from daemon {current or 'none'} to daemon {daemon}"]


def stale_warning(supervisor: SupervisorState) -> str:
    return (
        f"last_activity: {supervisor.last_activity.isoformat()} is too long ago for state "
        f"{supervisor.state!r}: the supervisor was stale and is restored as if interrupted"
    )


def decide_blocked(
    supervisor: SupervisorState,
    world: ValidationWorld,
    validation: StateValidationResult,
    options: RestoreOptions,
    now: datetime,
    notes: list[str],
) -> Decision:
    """ManualIntervention: blocked with the reasons in error_message; nothing else changes."""
    reasons = validation.issues or [f"blocked by {options.actor}" + (f": {options.reason}" if options.reason else "")]
    return Decision(
        supervisor=supervisor,
        validation=validation,
        action=RecoveryAction.MANUAL_INTERVENTION,
        previous_state=supervisor.state,
        new_state=SupervisorStatus.BLOCKED,
        restoration_count=supervisor.restoration_count,
        phase=supervisor.phase,
        progress=supervisor.progress,
        current_activity=supervisor.current_activity,
        questions=tuple(questions_to_redeliver(supervisor.pending_questions, world.answers)[0]),
        spawned=tuple(supervisor.spawned_task_ids or []),
        waiting=tuple(supervisor.pending_task_ids or []),
        finished=(),
        conversation=supervisor.conversation_history if conversation_loaded(supervisor) else None,
        changes={
            "state": SupervisorStatus.BLOCKED,
            "error_message": "Manual intervention needed: " + "; ".join(reasons),
            "updated_at": now,
        },
        warnings=tuple(validation.warnings + notes),
        issues=tuple(reasons),
        pending_answers=pending_answers(world.answers),
    )


def decide(
    supervisor: SupervisorState,
    world: ValidationWorld,
    validation: StateValidationResult,
    checkpoints: Sequence[SupervisorCheckpoint],
    options: RestoreOptions,
    now: datetime,
    histories: Histories,
) -> Decision:
    """Steps 3 to 7 for one supervisor: what it resumes with and every column that changes."""
    action, notes = resolve_action(supervisor, validation, options)
    if action == RecoveryAction.MANUAL_INTERVENTION:
        return decide_blocked(supervisor, world, validation, options, now, notes)
    action, checkpoint, fields, kept_warnings, fallback = restored_fields(
        supervisor, world, action, checkpoints, options, histories
    )
    stale = is_stale(supervisor, now)
    warnings = kept_warnings if checkpoint else [] if action == RecoveryAction.START_FRESH else validation.warnings
    warnings = [*warnings, *notes, *fallback, *([stale_warning(supervisor)] if stale else [])]
    questions, answered = questions_to_redeliver(fields["pending_questions"], world.answers)
    warnings += answered_warnings(answered)
    waiting, finished = waiting_tasks(fields["pending_task_ids"], world)
    move_to, moved_from, moved = takeover(supervisor, world, options, now)
    new_state = resume_state(questions, waiting)
    count = supervisor.restoration_count + 1
    changes = restored_changes(fields, new_state, questions, waiting, count, options, now)
    # A batch does not read the live conversation (the database checked it), so its results
    # carry the conversation only when it changed; restore_supervisor has it loaded.
    conversation = supervisor.conversation_history if conversation_loaded(supervisor) else None
    if "conversation_history" in fields:
        conversation = changes["conversation_history"] = fields["conversation_history"]
    return Decision(
        supervisor=supervisor,
        validation=validation,
        action=action,
        previous_state=supervisor.state,
        new_state=new_state,
        restoration_count=count,
        phase=fields["phase"],
        progress=fields["progress"],
        current_activity=fields["current_activity"],
        questions=tuple(questions),
        spawned=tuple(dict.fromkeys(fields["spawned_task_ids"])),
        waiting=tuple(waiting),
        finished=tuple(finished),
        conversation=conversation,
        changes=changes,
        warnings=tuple([*warnings, *moved]),
        issues=tuple(validation.issues),
        pending_answers=pending_answers(world.answers),
        checkpoint=checkpoint,
        stale=stale,
        move_task_to=move_to,
        previous_daemon=moved_from,
    )


def restored_changes(
    fields: Mapping[str, Any],
    new_state: str,
    questions: Sequence[dict[str, Any]],
    waiting: Sequence[uuid.UUID],
    restoration_count: int,
    options: RestoreOptions,
    now: datetime,
) -> dict[str, Any]:
    """Every column a restoration writes (step 7's bookkeeping included); the conversation only when it changes."""
    return {
        "state": new_state,
        "phase": fields["phase"],
        "current_activity": fields["current_activity"],
        "progress": fields["progress"],
        "error_message": None,
        "spawned_task_ids": list(dict.fromkeys(fields["spawned_task_ids"])),
        "pending_task_ids": list(waiting),
        "pending_questions": list(questions),
        "restoration_count": restoration_count,
        "last_restored_at": now,
        "restoration_source": options.source,
        "last_activity": now,
        "updated_at": now,
    }


def context_message(decision: Decision, options: RestoreOptions, world: ValidationWorld | None) -> str:
    """Step 8: the text the agent reads first (blocked: only the reasons, nothing to act on)."""
    blocked = not decision.restored
    checkpoint = decision.checkpoint
    return generate_restoration_context_message(
        source=options.source,
        restoration_count=decision.restoration_count,
        previous_state=decision.previous_state,
        phase=decision.phase,
        progress=decision.progress,
        current_activity=decision.current_activity,
        recovery_action=decision.action,
        questions=[] if blocked else decision.questions,
        answers=decision.pending_answers,
        waiting_task_ids=[] if blocked else decision.waiting,
        finished_task_ids=decision.finished,
        spawned_task_ids=() if blocked else decision.spawned,
        tasks=None if blocked or world is None else world.tasks,
        checkpoint_reason=checkpoint.get_reason_display() if checkpoint else None,
        checkpoint_taken_at=checkpoint.created_at if checkpoint else None,
        last_activity=decision.supervisor.last_activity,
        stale=decision.stale,
        issues=decision.issues,
        warnings=decision.warnings,
    )
