"""Enqueue the periodic jobs (the watchdog, the restore jobs' rescue) when they are due, for as long as it runs.

Run one or more beside the workers (``Procfile``'s ``scheduler:`` line,
``scripts/serve``): any number of schedulers enqueue each slot once
(``supervisors.services.scheduler``). Stops on SIGTERM or Ctrl+C.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections

from supervisors.services.scheduler import enqueue_due_jobs

logger = logging.getLogger("supervisors.scheduler")


class Command(BaseCommand):
    help = "Enqueue the periodic jobs (the watchdog) when due; several schedulers never enqueue a slot twice."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tick", type=float, default=1.0, help="Seconds between looks at what is due (default 1).")
        parser.add_argument("--once", action="store_true", help="Enqueue what is due now, then exit.")

    def handle(self, *args, tick: float, once: bool, **options) -> None:
        if not 0.05 <= tick <= 3600:
            raise CommandError("--tick must be between 0.05 and 3600 seconds.")
        self.running = True
        if once:
            self._tick()
            return
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.stdout.write(f"scheduler: looking for due periodic jobs every {tick:g}s")
        while self.running:
            close_old_connections()  # as Django does around a request: drop a broken or expired connection
            self._tick()
            deadline = time.monotonic() + tick
            while self.running and time.monotonic() < deadline:
                time.sleep(min(0.1, tick))
        self.stdout.write("scheduler: stopped")

    def _tick(self) -> None:
        try:
            names = enqueue_due_jobs()
        except DatabaseError as exc:  # the database restarting must not end the scheduler: try again next tick
            logger.warning("scheduler: database unavailable (%s); trying again", exc)
            close_old_connections()
            return
        for name in names:
            self.stdout.write(f"scheduler: enqueued {name}")

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.running = False
