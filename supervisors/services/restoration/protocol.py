"""The entry points: the protocol's steps in order, one line per step.

One engine serves one supervisor (``restore_supervisor``: the API's resume,
the admin's actions) and a locked batch (``restore_locked_supervisors``: the
``restore_supervisors`` command, the admin's many-supervisor actions).
Everything a restoration writes happens inside one transaction with the
supervisor rows locked: a failure leaves all as it was.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import DatabaseError, transaction
from django.utils import timezone

from supervisors.enums import (
    ContractStatus,
    EventKind,
    RecoveryAction,
    RestorationOutcome,
    RestorationSource,
    SupervisorStatus,
)
from supervisors.models import Contract, Daemon, SupervisorCheckpoint, SupervisorState
from supervisors.services.actors import Actor
from supervisors.services.errors import Conflict, NotFound
from supervisors.services.events import record_event, record_events, short
from supervisors.services.signals import send_on_commit
from supervisors.services.validation import StateValidationResult

from . import load, plan, report, validate, write
from .context_message import generate_restoration_context_message
from .options import RestoreOptions
from .report import BatchItem, Prepared, RestorationResult, SupervisorRestorationContext

logger = logging.getLogger(__name__)


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
    with transaction.atomic():
        supervisor = load.lock_supervisor(contract_id)
        if supervisor is None:
            contract = load.lock_contract(contract_id)
            if contract is None:
                raise NotFound(f"Contract {contract_id} does not exist.", fields={"contract_id": [str(contract_id)]})
            supervisor = load.lock_supervisor(contract_id)  # looked again under the contract's lock
            if supervisor is None:
                return start_fresh_without_state(contract, options, now)
        if supervisor.state != SupervisorStatus.COMPLETED:
            item = restore_locked_supervisors([supervisor], options, now=now, isolate_failures=False)[0]
            assert item.result is not None
            return item.result
        refusal = Conflict(
            f"The supervisor of contract {contract_id} is completed; a completed supervisor is not restored.",
            fields={"state": ["completed"]},
            code="supervisor_completed",
        )
        if not dry_run:
            report.refusal_log_row(supervisor, options, now, refusal.message).save()
            record_event(
                supervisor.id,
                EventKind.RESTORATION_REFUSED,
                actor=actor,
                details={"source": options.source, "reason": short(reason), "why": "completed"},
            )
    raise refusal  # outside the atomic block: the refusal's log row commits


def restore_locked_supervisors(
    supervisors: Sequence[SupervisorState],
    options: RestoreOptions,
    *,
    now: datetime | None = None,
    isolate_failures: bool = True,
) -> list[BatchItem]:
    """Restore supervisors whose rows the caller has locked, in a fixed number of queries.

    Must run inside ``transaction.atomic()``. The rows need ``contract`` loaded
    (``select_related``), and ``task__daemon`` for a takeover; their
    conversation may be left to the database (``conversation_checks``). With
    ``isolate_failures`` a supervisor that fails is reported in its BatchItem
    and the others are still written (a failed bulk write is retried row by
    row, each in its own savepoint); without it the first failure propagates
    and the caller's transaction rolls everything back.
    """
    now = now or timezone.now()
    started = time.perf_counter()
    loaded = load.worlds(supervisors)  # step 1 (the rows are locked by the caller)
    verdicts = validate.judge_all(loaded)  # step 2
    loaded = load.checkpoints(loaded, verdicts, options)
    items: list[BatchItem] = []
    prepared: list[Prepared] = []
    for supervisor in supervisors:
        one_started = time.perf_counter() if len(supervisors) > 1 else started
        try:
            ready = prepare(supervisor, loaded, verdicts[supervisor.id], options, now, one_started)  # steps 3-10
        except Exception as exc:
            if not isolate_failures or isinstance(exc, DatabaseError):
                raise  # a database error outside a savepoint dooms the whole transaction: not this item's alone
            logger.warning("Restoring the supervisor of contract %s failed: %s", supervisor.contract_id, exc)
            items.append(BatchItem(supervisor, error=exc))
            continue
        prepared.append(ready)
        items.append(BatchItem(supervisor, result=ready.result))
    if options.dry_run:
        return items
    if not isolate_failures:
        write.apply(prepared, options)
        return items
    failed = write.apply_isolated(prepared, options)
    for item in items:
        if item.supervisor.id in failed:
            item.error, item.result = failed[item.supervisor.id], None
    write.log_failures(
        [
            report.failure_log_row(i.supervisor, verdicts.get(i.supervisor.id), options, now, error_text(i.error))
            for i in items
            if i.error is not None
        ]
    )
    return items


def error_text(error: BaseException | None) -> str:
    """How a failure reads in the command's output and the restoration log."""
    if error is None:
        return "unknown error"
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return f"{type(error).__name__}: {message}"


def prepare(
    supervisor: SupervisorState,
    loaded: load.Loaded,
    verdict: StateValidationResult,
    options: RestoreOptions,
    now: datetime,
    started: float,
) -> Prepared:
    """Steps 3 to 10 for one loaded supervisor, without a query: the decision, its result and its log row."""
    world = loaded.worlds[supervisor.id]
    checkpoints = loaded.checkpoints.get(supervisor.id, [])
    decision = plan.decide(supervisor, world, verdict, checkpoints, options, now, loaded.histories)
    message = plan.context_message(decision, options, world)
    result = report.result(decision, message, options)
    log = report.log_row(
        supervisor, result, options, now, started, decision.previous_state, checkpoint_id=result.checkpoint_id
    )
    return Prepared(decision, result, log)


def start_fresh_without_state(contract: Contract, options: RestoreOptions, now: datetime) -> RestorationResult:
    """Step 1's not-found branch: a fresh ``initializing`` state and a warning (contract locked)."""
    started = time.perf_counter()
    if contract.status != ContractStatus.ACTIVE:
        raise Conflict(
            f"Contract {contract.id} is {contract.status} and has no supervisor state; there is nothing to restore.",
            fields={"contract_id": [f"Contract is {contract.status}."]},
        )
    warnings = [f"contract_id: no saved supervisor state for contract {contract.id}; started fresh"]
    task, moved_from, moved_to = None, None, None
    if not options.dry_run:
        task, created = write.ensure_supervisor_task(contract)
        if created:
            warnings.append(f"task_id: created supervisor task {task.id} (the contract had none)")
        if options.assign_to_daemon is not None and task.daemon_id != options.assign_to_daemon.id:
            moved_from, moved_to = task.daemon_id, options.assign_to_daemon
            write.move_task(task.id, options.assign_to_daemon)
    result = _fresh_result(contract, options, warnings)
    result.previous_daemon_id = moved_from
    logger.warning("No supervisor state for contract %s: started fresh", contract.id)
    if options.dry_run:
        return result
    supervisor = write.create_fresh_state(contract, task, now)
    result.supervisor_id = supervisor.id
    result.log = report.log_row(supervisor, result, options, now, started, "")
    result.log.save()
    from_daemon = Daemon.objects.filter(pk=moved_from).first() if moved_from is not None else None
    event = report.restoration_event(
        supervisor.id, result, options, previous_state="none", from_daemon=from_daemon, to_daemon=moved_to
    )
    record_events([event])
    return result


def _fresh_result(contract: Contract, options: RestoreOptions, warnings: list[str]) -> RestorationResult:
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
    return RestorationResult(
        contract_id=contract.id,
        context=context,
        recovery_action=RecoveryAction.START_FRESH,
        checkpoint_id=None,
        validation=StateValidationResult(True, [], RecoveryAction.START_FRESH, []),
        dry_run=options.dry_run,
        outcome=RestorationOutcome.STARTED_FRESH,
        new_state=SupervisorStatus.INITIALIZING,
    )


def validate_checkpoint(checkpoint: SupervisorCheckpoint) -> StateValidationResult:
    """Would restoring from this checkpoint be accepted? The same rules as the live state.

    For the admin's "restore from this checkpoint": it can mark the checkpoints
    that would be refused, with the reasons. ``recovery_action`` is what
    restoring from it would be (UseCheckpoint, or ManualIntervention when the
    contract or the supervisor task is the problem). Changes nothing.
    """
    supervisor, world, fields = load.checkpoint_world(checkpoint)
    return validate.judge_checkpoint(supervisor, world, fields)


def redeliver_pending_questions(contract_id: uuid.UUID, *, actor: Actor) -> list[dict[str, Any]]:
    """Step 5 on its own: deliver a supervisor's pending questions to the human again; returns them.

    The well-formed questions are what the human can still answer; they are
    announced with ``questions_redelivered`` once the transaction commits
    (notifiers listen to it). The row is only read under its lock, so a
    question answered meanwhile is not re-sent. Raises NotFound.
    """
    with transaction.atomic():
        supervisor = load.questions_row(contract_id)
        if supervisor is None:
            raise NotFound(f"Contract {contract_id} has no supervisor.", fields={"contract_id": [str(contract_id)]})
        questions, _ = plan.questions_to_redeliver(supervisor.pending_questions, load.answers_of(supervisor))
        if questions:
            record_events([report.redelivered_event(supervisor.id, questions, actor)])
            send_on_commit(
                write.questions_redelivered,
                contract_id=contract_id,
                supervisor_id=supervisor.id,
                questions=questions,
                actor=str(actor),
            )
            logger.info(
                "Re-delivered %d pending questions of contract %s (asked by %s)", len(questions), contract_id, actor
            )
    return questions
