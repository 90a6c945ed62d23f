"""Steps 9 and 10: what a restoration reports (the seed's context, the result) and the log row it leaves.

Pure: builds objects from a ``plan.Decision``; ``write`` inserts the log rows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from supervisors.enums import RESTORED_OUTCOMES, EventKind, RecoveryAction, RestorationOutcome
from supervisors.models import Daemon, RestorationLog, SupervisorState
from supervisors.services.actors import Actor
from supervisors.services.events import NewEvent, short
from supervisors.services.validation import StateValidationResult

from .options import RestoreOptions
from .plan import Decision


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
    #: Answers given and not yet acknowledged: ``{questionId, question, answer, answeredAt, answeredBy}``.
    pending_answers: list[dict[str, Any]] = field(default_factory=list)

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
            "pendingAnswers": list(self.pending_answers),
        }


@dataclass
class RestorationResult:
    """What one restoration found and did; ``log`` is None for a dry run (set by ``write`` once inserted)."""

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
    outcome: RestorationOutcome = RestorationOutcome.RESTORED
    #: The state the supervisor ends in, and its error message before and after.
    new_state: str = ""
    previous_error_message: str | None = None
    error_message: str | None = None
    #: On a takeover: the daemon the supervisor task moved away from.
    previous_daemon_id: uuid.UUID | None = None

    @property
    def redelivered_questions(self) -> list[dict[str, Any]]:
        """The pending questions delivered to the human again (none when the supervisor was only blocked)."""
        return self.context.pending_questions if self.context.success else []

    @property
    def restored(self) -> bool:
        """Brought back under a new epoch (not blocked for a person, not skipped, not failed)."""
        return self.outcome in RESTORED_OUTCOMES


@dataclass(frozen=True)
class Prepared:
    """One restoration ready to be written: the decision, the result it reports and its log row."""

    decision: Decision
    result: RestorationResult
    log: RestorationLog


@dataclass
class BatchItem:
    """One supervisor of a batch: restored (result), or failed (error)."""

    supervisor: SupervisorState
    result: RestorationResult | None = None
    error: Exception | None = None


def result(decision: Decision, message: str, options: RestoreOptions) -> RestorationResult:
    """Step 10: the SupervisorRestorationContext and what was done, as the caller sees it."""
    context = SupervisorRestorationContext(
        success=decision.restored,
        previous_state=decision.previous_state,
        conversation_history=decision.conversation,
        pending_questions=list(decision.questions),
        waiting_task_ids=list(decision.waiting),
        spawned_task_ids=list(decision.spawned),
        restoration_count=decision.restoration_count,
        restoration_context_message=message,
        warnings=list(decision.warnings),
        pending_answers=list(decision.pending_answers),
    )
    return RestorationResult(
        contract_id=decision.supervisor.contract_id,
        supervisor_id=decision.supervisor.id,
        context=context,
        recovery_action=decision.action,
        checkpoint_id=decision.checkpoint.id if decision.checkpoint else None,
        validation=decision.validation,
        finished_task_ids=list(decision.finished),
        redelivered_question_ids=[q["id"] for q in decision.questions] if decision.restored else [],
        dry_run=options.dry_run,
        outcome=decision.outcome,
        new_state=decision.new_state,
        previous_error_message=decision.supervisor.error_message,
        error_message=decision.error_message,
        previous_daemon_id=decision.previous_daemon.id if decision.previous_daemon else None,
    )


def actor_log_fields(actor: Actor) -> dict[str, Any]:
    return {
        "actor_kind": actor.kind,
        "actor_user": actor.user,
        "actor_daemon": actor.daemon,
        "actor_label": str(actor),
    }


def log_row(
    supervisor: SupervisorState | None,
    result: RestorationResult,
    options: RestoreOptions,
    now: datetime,
    started: float,
    previous_state: str,
    *,
    checkpoint_id: int | None = None,
) -> RestorationLog:
    """Step 9: the restoration log row (not saved: ``write`` inserts a batch's rows in one statement)."""
    return RestorationLog(
        supervisor=supervisor,
        contract_id=result.contract_id,
        started_at=now,
        duration_ms=int((time.perf_counter() - started) * 1000),
        source=options.source,
        reason=options.reason,
        previous_state=previous_state or "",
        recovery_action=result.recovery_action,
        checkpoint_id=checkpoint_id,
        issues=result.validation.issues,
        warnings=result.context.warnings,
        success=result.context.success,
        restoration_count=result.context.restoration_count,
        redelivered_question_ids=result.redelivered_question_ids,
        finished_task_ids=[str(t) for t in result.finished_task_ids],
        outcome=result.outcome,
        previous_error_message=result.previous_error_message,
        previous_daemon_id=result.previous_daemon_id,
        **actor_log_fields(options.actor),
    )


def refusal_log_row(
    supervisor: SupervisorState, options: RestoreOptions, now: datetime, message: str
) -> RestorationLog:
    """A refused restoration is recorded too, so the log shows who tried and why it did not happen."""
    return _unrestored_log_row(
        supervisor, options, now, RecoveryAction.PROCEED, [f"state: {message}"], RestorationOutcome.SKIPPED_COMPLETED
    )


def failure_log_row(
    supervisor: SupervisorState,
    verdict: StateValidationResult | None,
    options: RestoreOptions,
    now: datetime,
    error: str,
) -> RestorationLog:
    """A batch restoration that failed (and was rolled back) leaves this row, so the log counts it too."""
    action = verdict.recovery_action if verdict else RecoveryAction.PROCEED
    issues = [*(verdict.issues if verdict else []), f"error: {error}"]
    return _unrestored_log_row(supervisor, options, now, action, issues, RestorationOutcome.FAILED)


def _unrestored_log_row(
    supervisor: SupervisorState,
    options: RestoreOptions,
    now: datetime,
    action: str,
    issues: list[str],
    outcome: RestorationOutcome,
) -> RestorationLog:
    return RestorationLog(
        supervisor=supervisor,
        contract_id=supervisor.contract_id,
        started_at=now,
        source=options.source,
        reason=options.reason,
        previous_state=supervisor.state,
        recovery_action=action,
        issues=issues,
        warnings=[],
        success=False,
        restoration_count=supervisor.restoration_count,
        outcome=outcome,
        previous_error_message=supervisor.error_message,
        **actor_log_fields(options.actor),
    )


# --- events (the supervisor's timeline) ---------------------------------------------------------------


def restoration_event(
    supervisor_id: uuid.UUID,
    result: RestorationResult,
    options: RestoreOptions,
    *,
    previous_state: str,
    from_daemon: Daemon | None = None,
    to_daemon: Daemon | None = None,
) -> NewEvent:
    """The restoration as one event: a claim, a takeover, a staff checkpoint restore or a restoration."""
    if to_daemon is not None:
        kind = EventKind.CLAIMED if options.via_claim else EventKind.TAKEN_OVER
    elif options.checkpoint_id is not None:
        kind = EventKind.CHECKPOINT_RESTORED
    else:
        kind = EventKind.RESTORED
    details: dict[str, Any] = {
        "source": options.source,
        "outcome": str(result.outcome),
        "recoveryAction": str(result.recovery_action),
        "epoch": result.context.restoration_count,
        "previousState": previous_state,
        "newState": result.new_state,
        "checkpointId": result.checkpoint_id,
        "restorationLogId": result.log.pk if result.log is not None else None,
        "reason": short(options.reason),
        "issues": len(result.validation.issues),
    }
    if to_daemon is not None:
        details.update(
            fromDaemon=from_daemon.name if from_daemon else None,
            fromDaemonId=str(from_daemon.id) if from_daemon else None,
            toDaemon=to_daemon.name,
            toDaemonId=str(to_daemon.id),
        )
    return NewEvent(supervisor_id, kind, options.actor, details)


def events(prepared: Sequence[Prepared], options: RestoreOptions) -> list[NewEvent]:
    """A batch's events: one per restoration, and one per supervisor whose questions were re-delivered."""
    made: list[NewEvent] = []
    for item in prepared:
        decision, outcome = item.decision, item.result
        made.append(
            restoration_event(
                decision.supervisor.id,
                outcome,
                options,
                previous_state=decision.previous_state,
                from_daemon=decision.previous_daemon,
                to_daemon=decision.move_task_to,
            )
        )
        if outcome.redelivered_questions:
            made.append(redelivered_event(decision.supervisor.id, outcome.redelivered_questions, options.actor))
    return made


def redelivered_event(supervisor_id: uuid.UUID, questions: Sequence[dict[str, Any]], actor: Actor) -> NewEvent:
    """Pending questions delivered to the human again: their ids (the first 20) and how many."""
    ids = [str(q.get("id")) for q in questions]
    return NewEvent(supervisor_id, EventKind.QUESTIONS_REDELIVERED, actor, {"questionIds": ids[:20], "count": len(ids)})
