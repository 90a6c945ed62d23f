"""manage.py restore_supervisors: bring many supervisors back after an outage."""

from __future__ import annotations

import getpass
import json
from datetime import datetime

from django.core.management.base import CommandError, CommandParser

from supervisors.enums import RestorationOutcome, RestorationSource
from supervisors.management.selection_options import SelectionCommand, selection_from_options
from supervisors.services.actors import Actor
from supervisors.services.restoration import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NEEDS_PERSON,
    EXIT_USAGE,
    BatchRunReport,
    RestorationResult,
    RestoreOptions,
    count_selection,
    restore_selection,
)
from supervisors.validators import parse_aware_datetime

EXAMPLES = """
Every restoration runs the same protocol as the API's resume (validate, fall back
to the newest valid checkpoint, re-deliver pending questions, record it in the
restoration log). Batches are locked with SKIP LOCKED on PostgreSQL, so two runs
at once never restore the same supervisor; a supervisor another run restored after
this run started is skipped. A failure on one supervisor is reported and the run
goes on. A progress bar is drawn on stderr when stderr is a terminal, never
otherwise.

outcomes (per supervisor, in the summary, in --json and in the restoration log):
  restored                  the saved state was valid and was resumed as it was
  restored_from_checkpoint  the state was inconsistent; the newest valid checkpoint was applied
  started_fresh             no valid checkpoint: restarted keeping tasks and answerable questions
  needs_person              ManualIntervention: nothing restored, marked blocked with the reasons
  skipped_completed         a completed supervisor is never restored
  failed                    the restoration failed and was rolled back; the others went on

exit codes:
  0    every selected supervisor was restored or skipped
  1    some failed
  2    usage error (bad arguments)
  3    some need a person (marked blocked) and none failed
  130  interrupted (batches already committed stay restored)

examples:
  # after a daemon crash, everything that was interrupted
  manage.py restore_supervisors --state interrupted --source daemon_restart --reason "daemon-3 crashed"

  # every supervisor of the daemon that crashed, before it comes back
  manage.py restore_supervisors --daemon daemon-3 --source daemon_restart --reason "daemon-3 crashed" --dry-run

  # what would each orphan (daemon gone) get if a live daemon claimed it
  manage.py restore_supervisors --orphaned --dry-run

  # what would happen to the stale ones (silent > 10 minutes), without writing anything
  manage.py restore_supervisors --stale --stale-after 600 --dry-run

  # two named contracts, machine-readable summary
  manage.py restore_supervisors --contract 7c9e6679-7425-40de-944b-e07fc1f90ae7 \\
      --contract 0b6f4f8c-1c1d-4d2e-9a57-2f1f3c6f6a10 --json

  # a big outage: larger transactions, fewer round trips (each batch is one transaction)
  manage.py restore_supervisors --stale --batch-size 500 --source daemon_restart

  # finish a run that was interrupted (it printed the --not-restored-since to use)
  manage.py restore_supervisors --all --not-restored-since 2026-11-24T07:30:00+00:00
"""


class Command(SelectionCommand):
    examples = EXAMPLES
    help = "Restore supervisors (validate, fall back to checkpoints, re-deliver questions) in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--source",
            choices=RestorationSource.values,
            default=RestorationSource.MANUAL,
            help="Why the supervisors are restored, recorded on each (default: manual).",
        )
        parser.add_argument("--reason", default="", help="Free text recorded in the restoration log.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Validate and report what each supervisor would get; write nothing and lock nothing.",
        )
        parser.add_argument(
            "--not-restored-since",
            metavar="TIMESTAMP",
            help="Leave out supervisors restored at or after this ISO 8601 time with a time zone "
            "(to finish an interrupted run).",
        )

    def handle(self, *args, **options) -> None:
        selection = selection_from_options(options)
        since = _timestamp(options["not_restored_since"])
        restore_options = RestoreOptions(
            source=options["source"],
            actor=Actor.command(f"restore_supervisors ({_os_user()})"),
            reason=options["reason"],
            dry_run=options["dry_run"],
        )
        bar = None
        if self.stderr.isatty():  # the bar goes to stderr, and only to a terminal
            from tqdm import tqdm

            total = count_selection(selection, not_restored_since=since)
            bar = tqdm(total=total, unit="supervisor", file=self.stderr._out, dynamic_ncols=True)

        def on_page(page: BatchRunReport) -> None:
            if bar is not None:
                bar.update(len(page.results) + len(page.completed) + len(page.skipped) + len(page.failed))
            if not options["json"]:
                self._print_page(page, options["verbosity"])

        report = restore_selection(
            selection, restore_options, batch_size=options["batch_size"], not_restored_since=since, on_page=on_page
        )
        if bar is not None:
            bar.close()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self._print_summary(report)
        if report.interrupted:
            raise CommandError(
                "Interrupted; batches already committed stay restored. To finish the rest run the same command with "
                f"--not-restored-since {report.started_at.isoformat()}",
                returncode=EXIT_INTERRUPTED,
            )
        if report.exit_code == EXIT_FAILED:
            raise CommandError(f"{len(report.failed)} supervisor(s) failed to restore.", returncode=EXIT_FAILED)
        if report.exit_code == EXIT_NEEDS_PERSON:
            needing = report.outcome_counts[RestorationOutcome.NEEDS_PERSON]
            raise CommandError(
                f"{needing} supervisor(s) need a person: marked blocked, see the restoration log.",
                returncode=EXIT_NEEDS_PERSON,
            )

    def _print_page(self, page: BatchRunReport, verbosity: int) -> None:
        for result in page.results:
            if verbosity >= 2 or page.dry_run or result.outcome != RestorationOutcome.RESTORED:
                style = self.style.WARNING if not result.restored else (lambda s: s)
                self.stdout.write(style(f"{result.contract_id}: {preview_line(result)}"))
        for failed in page.failed:
            self.stdout.write(self.style.ERROR(f"{failed.contract_id}: {RestorationOutcome.FAILED}: {failed.error}"))

    def _print_summary(self, report: BatchRunReport) -> None:
        title = "Dry run: nothing was written; outcomes it would have:" if report.dry_run else "Summary:"
        self.stdout.write(self.style.MIGRATE_HEADING(title))
        for outcome, count in report.outcome_counts.items():
            self.stdout.write(f"  {outcome}: {count}")
        self.stdout.write(f"  not attempted: {len(report.skipped)}")
        for reason, count in report.skipped_by_reason.items():
            self.stdout.write(f"    {reason}: {count}")
        for failed in report.failed:
            self.stdout.write(f"  failed {failed.contract_id}: {failed.error}")


def preview_line(result: RestorationResult) -> str:
    """One supervisor's outcome and what it ends with: the state, error message, checkpoint, questions, tasks."""
    verb = "would end" if result.dry_run else "ended"
    parts = [f"{result.outcome} ({result.recovery_action}), {verb} {result.new_state}"]
    if result.previous_error_message and result.error_message != result.previous_error_message:
        parts.append(
            f"error message {result.previous_error_message!r} cleared"
            if not result.error_message
            else f"error message now {result.error_message!r}"
        )
    elif result.error_message:
        parts.append(f"error message kept: {result.error_message!r}")
    if result.checkpoint_id:
        parts.append(f"checkpoint {result.checkpoint_id}")
    for question in result.redelivered_questions:
        parts.append(f"re-delivers question {question['id']}: {question['question']!r}")
    if result.finished_task_ids:
        parts.append(f"{len(result.finished_task_ids)} task(s) finished meanwhile")
    if result.validation.issues:
        parts.append("issues: " + "; ".join(result.validation.issues))
    return "; ".join(parts)


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = parse_aware_datetime(value)  # None too when well formed but impossible (month 13)
    if parsed is None:
        raise CommandError(
            f"--not-restored-since {value!r} is not an ISO 8601 time with a time zone.", returncode=EXIT_USAGE
        )
    return parsed


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown user"
