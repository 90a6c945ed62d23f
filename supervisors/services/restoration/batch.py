"""The paged batch: what ``restore_supervisors`` and ``validate_supervisors`` run.

The selection is read in keyset pages of ``batch_size`` ids. Each page is one
transaction: its rows are locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
(SQLite's IMMEDIATE transaction serialises writers instead) and the selection
is checked again under the lock, so two runs at once never restore the same
supervisor: a row another run holds is skipped, and one another run restored
since this run started (``last_restored_at``) no longer matches.

What "at once" covers: a supervisor restored by another run after this run
started is skipped; one that another run restored (and committed) before this
run started is like any other, so it is restored again only by a selection it
still matches (``--all``, not ``--stale`` or ``--state interrupted``). The
other run stamps ``last_restored_at`` in the last statement before its commit,
which leaves only that statement's own duration as a window. A failure on
one supervisor is reported and the others of its page are still written
(see ``protocol.restore_locked_supervisors``). Committed pages stay committed, so a
re-run after an interruption finishes the rest.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import BooleanField, Case, Q, Value, When
from django.utils import timezone

from supervisors.enums import RestorationOutcome, SupervisorStatus
from supervisors.models import RestorationLog, SupervisorState
from supervisors.selectors import SupervisorSelection, selection_id_batches
from supervisors.services.validation import (
    StateValidationResult,
    conversation_checks,
    load_worlds,
    validate_with_world,
)

from . import report as report_rows
from .options import RestoreOptions
from .protocol import error_text, restore_locked_supervisors
from .report import RestorationResult

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 200


#: The command's exit codes (``restore_supervisors --help``, docs/restoration.md).
EXIT_OK = 0  # every supervisor restored or skipped
EXIT_FAILED = 1  # some failed
EXIT_USAGE = 2  # bad arguments
EXIT_NEEDS_PERSON = 3  # some need a person (marked blocked) and none failed
EXIT_INTERRUPTED = 130


@dataclass
class Skipped:
    """A supervisor this run did not attempt: held or restored by another run, or no longer selected."""

    contract_id: uuid.UUID
    reason: str


@dataclass
class Failed:
    contract_id: uuid.UUID
    error: str


@dataclass
class BatchRunReport:
    """What a batch run did, for the command's summary, its --json output, its exit code and the admin."""

    started_at: datetime
    dry_run: bool
    results: list[RestorationResult] = field(default_factory=list)
    completed: list[uuid.UUID] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    interrupted: bool = False

    def add(self, other: BatchRunReport) -> None:
        self.results += other.results
        self.completed += other.completed
        self.skipped += other.skipped
        self.failed += other.failed

    @property
    def outcome_counts(self) -> dict[str, int]:
        """How many supervisors ended in each outcome (every outcome named, zeros included)."""
        counts = Counter(str(r.outcome) for r in self.results)
        counts[RestorationOutcome.SKIPPED_COMPLETED] += len(self.completed)
        counts[RestorationOutcome.FAILED] += len(self.failed)
        return {str(o): counts[o] for o in RestorationOutcome.values}

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(s.reason for s in self.skipped).items()))

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.failed:
            return EXIT_FAILED
        if any(r.outcome == RestorationOutcome.NEEDS_PERSON for r in self.results):
            return EXIT_NEEDS_PERSON
        return EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "startedAt": self.started_at.isoformat(),
            "dryRun": self.dry_run,
            "interrupted": self.interrupted,
            "exitCode": self.exit_code,
            "counts": {**self.outcome_counts, "skipped": len(self.skipped)},
            "supervisors": [
                *(result_dict(r) for r in self.results),
                *(
                    {"contractId": str(c), "outcome": RestorationOutcome.SKIPPED_COMPLETED.value}
                    for c in self.completed
                ),
                *(
                    {"contractId": str(f.contract_id), "outcome": RestorationOutcome.FAILED.value, "error": f.error}
                    for f in self.failed
                ),
            ],
            "skippedByReason": self.skipped_by_reason,
            "skipped": [{"contractId": str(s.contract_id), "reason": s.reason} for s in self.skipped],
            "failed": [{"contractId": str(f.contract_id), "error": f.error} for f in self.failed],
        }


def result_dict(r: RestorationResult) -> dict[str, Any]:
    """One supervisor's line of the --json output: its outcome and what the restoration did (or would do)."""
    return {
        "contractId": str(r.contract_id),
        "outcome": str(r.outcome),
        "recoveryAction": str(r.recovery_action),
        "success": r.context.success,
        "previousState": r.context.previous_state,
        "state": r.new_state,
        "previousErrorMessage": r.previous_error_message,
        "errorMessage": r.error_message,
        "checkpointId": r.checkpoint_id,
        "restorationCount": r.context.restoration_count,
        "redeliveredQuestions": [{"id": q["id"], "question": q["question"]} for q in r.redelivered_questions],
        "pendingAnswers": r.context.pending_answers,
        "finishedTaskIds": [str(t) for t in r.finished_task_ids],
        "issues": r.validation.issues,
        "warnings": r.context.warnings,
        "logId": r.log.pk if r.log is not None else None,
    }


def _explain_missing(
    missing: Iterable[uuid.UUID], selection: SupervisorSelection, now: datetime, run_started_at: datetime
) -> list[Skipped]:
    """Why ids seen in the page were not locked: one read, no lock."""
    condition = selection.q(now)
    matches = (
        Case(When(condition, then=Value(True)), default=Value(False), output_field=BooleanField())
        if condition
        else Value(True, output_field=BooleanField())
    )
    rows = (
        SupervisorState.objects.filter(id__in=list(missing))
        .annotate(matches=matches)
        .values("contract_id", "state", "last_restored_at", "matches")
    )
    skipped = []
    for row in rows:
        restored_at = row["last_restored_at"]
        if restored_at is not None and restored_at >= run_started_at:
            reason = "restored by another run since this run started"
        elif not row["matches"]:
            reason = f"no longer matches the selection (state is now {row['state']})"
        else:
            reason = "locked by another run"
        skipped.append(Skipped(row["contract_id"], reason))
    return skipped


def restore_page(
    ids: list[uuid.UUID],
    selection: SupervisorSelection,
    options: RestoreOptions,
    *,
    run_started_at: datetime,
    now: datetime | None = None,
) -> BatchRunReport:
    """Lock, re-check and restore one page of supervisors in one transaction.

    Re-checked under the lock: the selection still holds and the supervisor was
    not restored at or after ``run_started_at`` (by another run).
    """
    now = now or timezone.now()
    report = BatchRunReport(started_at=run_started_at, dry_run=options.dry_run)
    recheck = selection.q(now) & ~Q(last_restored_at__gte=run_started_at)
    with transaction.atomic():
        query = conversation_checks(
            SupervisorState.objects.filter(recheck, id__in=ids).select_related("contract").order_by("id"),
            "conversation_history",
        )
        if not options.dry_run:
            query = query.select_for_update(skip_locked=True, of=("self",))
        rows = list(query)
        locked = {r.id for r in rows}
        if len(locked) < len(ids):
            report.skipped += _explain_missing([i for i in ids if i not in locked], selection, now, run_started_at)
        todo = [row for row in rows if row.state != SupervisorStatus.COMPLETED]
        completed = [row for row in rows if row.state == SupervisorStatus.COMPLETED]
        report.completed += [row.contract_id for row in completed]
        for item in restore_locked_supervisors(todo, options, now=now, isolate_failures=True):
            if item.result is not None:
                report.results.append(item.result)
            else:
                report.failed.append(Failed(item.supervisor.contract_id, error_text(item.error)))
        if completed and not options.dry_run:
            log_completed(completed, options, now)
    return report


def log_completed(rows: list[SupervisorState], options: RestoreOptions, now: datetime) -> None:
    """A completed supervisor is skipped, and the log says so (one INSERT per page), as for a single restore."""
    message = "a completed supervisor is not restored"
    RestorationLog.objects.bulk_create([report_rows.refusal_log_row(row, options, now, message) for row in rows])


def restore_selection(
    selection: SupervisorSelection,
    options: RestoreOptions,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    not_restored_since: datetime | None = None,
    on_page: Callable[[BatchRunReport], None] | None = None,
    run_started_at: datetime | None = None,
) -> BatchRunReport:
    """Restore every selected supervisor, page by page; see the module docstring."""
    options.check()
    run_started_at = run_started_at or timezone.now()
    total = BatchRunReport(started_at=run_started_at, dry_run=options.dry_run)
    effective = replace(selection, not_restored_since=not_restored_since) if not_restored_since else selection
    try:
        for ids in selection_id_batches(effective, batch_size=batch_size):
            try:
                page = restore_page(ids, effective, options, run_started_at=run_started_at)
            except DatabaseError as exc:
                logger.exception("A page of %d supervisors failed", len(ids))
                contract_ids = SupervisorState.objects.filter(id__in=ids).values_list("contract_id", flat=True)
                page = BatchRunReport(started_at=run_started_at, dry_run=options.dry_run)
                page.failed = [Failed(c, error_text(exc)) for c in contract_ids]
            total.add(page)
            if on_page is not None:
                on_page(page)
    except KeyboardInterrupt:
        total.interrupted = True
    return total


def count_selection(selection: SupervisorSelection, *, not_restored_since: datetime | None = None) -> int:
    effective = replace(selection, not_restored_since=not_restored_since) if not_restored_since else selection
    return effective.queryset().count()


# --- validation in batches -------------------------------------------------------------------------


@dataclass
class ValidationRow:
    contract_id: uuid.UUID
    state: str
    result: StateValidationResult


def validate_selection(
    selection: SupervisorSelection, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterable[list[ValidationRow]]:
    """Validate the selected supervisors page by page, without locking or writing anything."""
    for ids in selection_id_batches(selection, batch_size=batch_size):
        rows = list(
            conversation_checks(
                SupervisorState.objects.filter(id__in=ids).select_related("contract").order_by("id"),
                "conversation_history",
            )
        )
        worlds = load_worlds(rows)
        yield [ValidationRow(r.contract_id, r.state, validate_with_world(r, worlds[r.id])) for r in rows]
