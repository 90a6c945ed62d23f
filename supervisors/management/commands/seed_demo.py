"""``manage.py seed_demo``: fill the database with a realistic picture of makima."""

from __future__ import annotations

import time

from supervisors.demo import live_tick, seed_demo
from supervisors.management.base import ProjectCommand, bounded_int


class Command(ProjectCommand):
    help = (
        "Create demo contracts, daemons, tasks and supervisors in every state: some with pending questions, "
        "some waiting on tasks, one with a conversation history of several MB, a stale one, and an inconsistent "
        "one that validation flags. Safe to run again: existing demo rows are kept, nothing is duplicated. "
        "With --live it then keeps the demo moving (daemons heartbeat, supervisors report progress, questions "
        "arrive) until Ctrl+C, so the admin's live pages have something to show. "
        "Examples: manage.py seed_demo --reset; manage.py seed_demo --live"
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset", action="store_true", help="Delete the demo contracts (and everything under them) first."
        )
        parser.add_argument(
            "--live",
            action="store_true",
            help="After seeding, heartbeat the live demo daemons, move progress and ask questions every "
            "--interval seconds until interrupted (Ctrl+C) or --ticks have run.",
        )
        parser.add_argument(
            "--interval",
            type=bounded_int(1, 3600, "number of seconds"),
            default=3,
            help="Seconds between live steps (default 3).",
        )
        parser.add_argument(
            "--ticks",
            type=bounded_int(0, 10_000_000, "number of steps"),
            default=0,
            help="Stop after this many live steps (default 0: until Ctrl+C).",
        )

    def handle(self, *args, reset: bool = False, live: bool = False, interval: int = 3, ticks: int = 0, **options):
        summary = seed_demo(reset=reset)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data: {summary.contracts} contracts, {summary.daemons} daemons, {summary.tasks} tasks, "
                f"{summary.supervisors} supervisors ({summary.created} created now; "
                f"{summary.history_bytes / 1_000_000:.1f} MB of conversation in those)."
            )
        )
        if live:
            self.run_live(interval, ticks)

    def run_live(self, interval: int, ticks: int) -> None:
        self.stdout.write(f"Live demo: a step every {interval:g} s; Ctrl+C stops it.")
        number = 0
        try:
            while not ticks or number < ticks:
                number += 1
                step = live_tick(number)
                if step.asked or number % 10 == 1:
                    self.stdout.write(
                        f"live step {step.number}: {step.heartbeats} supervisor heartbeat(s)"
                        + (", a question asked" if step.asked else "")
                    )
                if not ticks or number < ticks:
                    time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write(f"Live demo stopped after {number} step(s).")
