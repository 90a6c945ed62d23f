"""``manage.py seed_demo``: fill the database with a realistic picture of makima."""

from __future__ import annotations

from supervisors.demo import seed_demo
from supervisors.management.base import ProjectCommand


class Command(ProjectCommand):
    help = (
        "Create demo contracts, daemons, tasks and supervisors in every state: some with pending questions, "
        "some waiting on tasks, one with a conversation history of several MB, a stale one, and an inconsistent "
        "one that validation flags. Safe to run again: existing demo rows are kept, nothing is duplicated. "
        "Example: manage.py seed_demo --reset"
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset", action="store_true", help="Delete the demo contracts (and everything under them) first."
        )

    def handle(self, *args, reset: bool = False, **options):
        summary = seed_demo(reset=reset)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data: {summary.contracts} contracts, {summary.daemons} daemons, {summary.tasks} tasks, "
                f"{summary.supervisors} supervisors ({summary.created} created now; "
                f"{summary.history_bytes / 1_000_000:.1f} MB of conversation in those)."
            )
        )
