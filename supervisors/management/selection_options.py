"""The selection options restore_supervisors and validate_supervisors share, parsed one way."""

from __future__ import annotations

import argparse
import uuid
from datetime import timedelta

from django.core.management.base import CommandError, CommandParser

from supervisors.enums import SupervisorStatus
from supervisors.management.base import ProjectCommand, bounded_int
from supervisors.models import Daemon
from supervisors.selectors import SupervisorSelection


def _contract_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a contract id (a UUID)") from None


#: --stale-after: ten years, far beyond any threshold that makes sense, and far from timedelta's limits.
MAX_STALE_AFTER_SECONDS = 10 * 365 * 24 * 3600
#: --batch-size: a batch is one transaction holding its rows' locks; past this it is an outage of its own.
MAX_BATCH_SIZE = 10_000


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("selection (every given criterion must hold; at least one is required)")
    group.add_argument(
        "--contract",
        dest="contracts",
        action="append",
        type=_contract_id,
        default=[],
        metavar="UUID",
        help="The supervisor of this contract. Repeat for several.",
    )
    group.add_argument(
        "--state",
        dest="states",
        action="append",
        choices=SupervisorStatus.values,
        default=[],
        metavar="STATE",
        help=f"Supervisors in this state. Repeat for several. One of: {', '.join(SupervisorStatus.values)}.",
    )
    group.add_argument(
        "--stale",
        action="store_true",
        help="Supervisors silent for longer than the stale threshold in an active state "
        "(initializing, working, waiting_for_tasks); waiting for a human never counts as stale.",
    )
    group.add_argument(
        "--stale-after",
        type=bounded_int(1, MAX_STALE_AFTER_SECONDS, "number of seconds"),
        metavar="SECONDS",
        help="The stale threshold for --stale (default: the SUPERVISOR_STALE_AFTER_SECONDS setting).",
    )
    group.add_argument(
        "--daemon",
        dest="daemons",
        action="append",
        default=[],
        metavar="NAME_OR_UUID",
        help="Supervisors whose task runs on this daemon (its name or id), e.g. the one that crashed. Repeat for "
        "several.",
    )
    group.add_argument(
        "--orphaned",
        action="store_true",
        help="Supervisors whose daemon is gone (nothing of it arrived for DAEMON_GONE_AFTER_SECONDS, or it said "
        "it was leaving), or that have no daemon: the ones daemons may claim.",
    )
    group.add_argument("--all", action="store_true", help="Every supervisor (must be asked for explicitly).")
    parser.add_argument(
        "--batch-size",
        type=bounded_int(1, MAX_BATCH_SIZE, "batch size"),
        default=200,
        metavar="N",
        help=f"Supervisors read, locked and written together in one transaction (default 200, at most "
        f"{MAX_BATCH_SIZE}).",
    )
    parser.add_argument("--json", action="store_true", help="Print a machine-readable summary as JSON on stdout.")


def _daemon_ids(names_or_ids: list[str]) -> tuple[uuid.UUID, ...]:
    """Each daemon named by id or by name; an unknown or ambiguous one is a usage error (exit 2)."""
    found: list[uuid.UUID] = []
    for given in names_or_ids:
        try:
            matches = list(Daemon.objects.filter(pk=uuid.UUID(given)).values_list("pk", flat=True))
        except ValueError:
            matches = list(Daemon.objects.filter(name=given).values_list("pk", flat=True))
        if len(matches) != 1:
            problem = "no daemon" if not matches else f"{len(matches)} daemons"
            raise CommandError(f"--daemon {given!r}: {problem} by that name or id.", returncode=2)
        found.append(matches[0])
    return tuple(found)


def selection_from_options(options: dict) -> SupervisorSelection:
    selection = SupervisorSelection(
        contract_ids=tuple(options["contracts"]),
        daemon_ids=_daemon_ids(options.get("daemons", [])),
        orphaned=options.get("orphaned", False),
        states=tuple(options["states"]),
        stale=options["stale"],
        all_supervisors=options["all"],
        stale_after=timedelta(seconds=options["stale_after"]) if options.get("stale_after") else None,
    )
    if selection.is_empty:
        raise CommandError(
            "Say which supervisors: --contract, --daemon, --state, --stale, --orphaned or --all (see --help).",
            returncode=2,
        )
    if options.get("stale_after") and not options["stale"]:
        raise CommandError("--stale-after only makes sense with --stale.", returncode=2)
    return selection


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in the epilog as written."""


class SelectionCommand(ProjectCommand):
    """A command over a selection of supervisors: the selection options, and ``examples`` under --help."""

    examples = ""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, epilog=self.examples, **kwargs)
        parser.formatter_class = HelpFormatter
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        add_selection_arguments(parser)
