"""manage.py restore_supervisors: bring many supervisors back after an outage."""

from __future__ import annotations

import getpass
import json
from datetime import datetime

from django.core.management.base import CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from supervisors.enums import RecoveryAction, RestorationSource
from supervisors.management.selection_options import SelectionCommand, selection_from_options
from supervisors.services.actors import Actor
from supervisors.services.restoration import BatchRunReport, RestoreOptions, count_selection, restore_selection

EXAMPLES = """
Every restoration runs the same protocol as the API's resume (validate, fall back
to the newest valid checkpoint, re-deliver pending questions, record it in the
restoration log). Batches are locked with SKIP LOCKED on PostgreSQL, so two runs
at once never restore the same supervisor; a supervisor another run restored after
this run started is skipped. A failure on one supervisor is reported and the run
goes on. A progress bar is drawn on stderr when stderr is a terminal, never
otherwise. Exit code: 0 when nothing failed, 1 when some failed, 130 when interrupted.

examples:
  # after a daemon crash, everything that was interrupted
  manage.py restore_supervisors --state interrupted --source daemon_restart --reason "daemon-3 crashed"

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
                bar.update(len(page.restored) + len(page.skipped) + len(page.failed))
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
                returncode=130,
            )
        if report.failed:
            raise CommandError(f"{len(report.failed)} supervisor(s) failed to restore.", returncode=1)

    def _print_page(self, page: BatchRunReport, verbosity: int) -> None:
        verb = "would get" if page.dry_run else "got"
        for result in page.restored:
            if verbosity >= 2 or result.recovery_action != RecoveryAction.PROCEED:
                line = f"{result.contract_id}: {verb} {result.recovery_action}"
                if result.checkpoint_id:
                    line += f" (checkpoint {result.checkpoint_id})"
                if result.validation.issues:
                    line += ": " + "; ".join(result.validation.issues)
                style = self.style.WARNING if not result.context.success else (lambda s: s)
                self.stdout.write(style(line))
        for failed in page.failed:
            self.stdout.write(self.style.ERROR(f"{failed.contract_id}: FAILED: {failed.error}"))

    def _print_summary(self, report: BatchRunReport) -> None:
        title = "Dry run: nothing was written." if report.dry_run else "Summary:"
        self.stdout.write(self.style.MIGRATE_HEADING(title))
        verb = "would be restored" if report.dry_run else "restored"
        self.stdout.write(f"  {verb}: {len(report.restored)}")
        for action, count in report.by_action.items():
            self.stdout.write(f"    {action}: {count}")
        self.stdout.write(f"  skipped: {len(report.skipped)}")
        for reason, count in report.skipped_by_reason.items():
            self.stdout.write(f"    {reason}: {count}")
        self.stdout.write(f"  failed: {len(report.failed)}")
        for failed in report.failed:
            self.stdout.write(f"    {failed.contract_id}: {failed.error}")


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise CommandError(f"--not-restored-since {value!r} is not an ISO 8601 time with a time zone.")
    return parsed


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown user"
