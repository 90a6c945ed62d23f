"""The restoration protocol: bring a supervisor back where it was (DESIGN.md, the ten steps).

Callers import from here, never from a step. Where each step lives:

==  ===========================================  =================================================
1   load the state under a row lock              ``load.lock_supervisor``, ``load.worlds``,
    (not found: a fresh one)                     ``load.checkpoints``; ``protocol.start_fresh_without_state``
2   validate                                     ``validate.judge`` (the table: ``services/validation.py``)
3   UseCheckpoint / StartFresh / blocked         ``plan.resolve_action``, ``plan.restored_fields``,
                                                 ``plan.choose_checkpoint``, ``plan.fresh_fields``,
                                                 ``plan.decide_blocked``
4   restore the conversation                     ``plan.decide`` (``conversation``), ``write.apply``
5   re-deliver pending questions (not answered   ``plan.questions_to_redeliver``, ``write.announce_questions``;
    ones: their answers travel instead)          ``plan.pending_answers``, ``plan.answered_warnings``
6   waiting tasks, finished ones reported        ``plan.waiting_tasks``
7   resume state, count, source                  ``plan.resume_state``, ``plan.restored_changes``
8   the context message                          ``plan.context_message`` -> ``context_message``
9   record it in the restoration log (outcome)   ``report.log_row``, written by ``write.apply``
10  return the SupervisorRestorationContext      ``report.result`` (``RestorationResult.outcome``)
==  ===========================================  =================================================

``protocol.restore_supervisor`` (one supervisor, its own transaction) and
``protocol.restore_locked_supervisors`` (rows the caller locked) run them in
that order; ``batch`` pages a selection through the latter. Data flows forward
as frozen dataclasses: ``load.Loaded`` -> ``plan.Decision`` ->
``report.Prepared`` -> ``write.apply``. Only ``load`` and ``write`` query.
"""

from .batch import (
    DEFAULT_BATCH_SIZE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NEEDS_PERSON,
    EXIT_OK,
    EXIT_USAGE,
    BatchRunReport,
    Failed,
    Skipped,
    ValidationRow,
    count_selection,
    restore_page,
    restore_selection,
    validate_selection,
)
from .context_message import generate_restoration_context_message
from .options import RestoreOptions
from .protocol import (
    redeliver_pending_questions,
    restore_locked_supervisors,
    restore_supervisor,
    validate_checkpoint,
)
from .report import BatchItem, RestorationResult, SupervisorRestorationContext
from .write import ensure_supervisor_task, questions_redelivered

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NEEDS_PERSON",
    "EXIT_OK",
    "EXIT_USAGE",
    "BatchItem",
    "BatchRunReport",
    "Failed",
    "RestorationResult",
    "RestoreOptions",
    "Skipped",
    "SupervisorRestorationContext",
    "ValidationRow",
    "count_selection",
    "ensure_supervisor_task",
    "generate_restoration_context_message",
    "questions_redelivered",
    "redeliver_pending_questions",
    "restore_locked_supervisors",
    "restore_page",
    "restore_selection",
    "restore_supervisor",
    "validate_checkpoint",
    "validate_selection",
]
