"""The soak's notifications: a webhook receiver, a subscription to questions, real workers and a scheduler.

After the run, every question the daemons asked must have produced exactly
one delivered notification (by event id) that the receiver accepted, and
nothing may be left undispatched or pending. The receiver fails its first
requests (500s, a dropped connection), so retries are part of every run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable

from .invariants import Check
from .server import ROOT, service_env
from .webhook import Receiver

#: The receiver's first answers: then it accepts everything.
FAILURES = ["500", "500", "close", "500"]

QUICK = {
    "NOTIFICATIONS_DISPATCH_INTERVAL_SECONDS": "0.5",
    "NOTIFICATIONS_DELIVER_INTERVAL_SECONDS": "0.5",
    "NOTIFICATIONS_RETRY_BASE_SECONDS": "0.2",
    "NOTIFICATIONS_RETRY_MAX_DELAY_SECONDS": "1",
    "NOTIFICATIONS_TIMEOUT_SECONDS": "5",
    "WATCHDOG_INTERVAL_SECONDS": "3600",  # the soak measures recovery by claims; the watchdog stays out
}


class SoakNotifications:
    """Start with :meth:`start` before the daemons run; :meth:`drain` and :meth:`check` after."""

    def __init__(self, *, database_url: str, secret_key: str) -> None:
        self.receiver = Receiver(list(FAILURES))
        self.env = service_env(database_url=database_url, secret_key=secret_key, port=0, extra=QUICK)
        self.processes: list[subprocess.Popen] = []
        self.subscription_id: int | None = None

    def start(self) -> SoakNotifications:
        from supervisors.models import Subscription

        self.receiver.__enter__()
        self.subscription_id = Subscription.objects.create(
            name="soak", webhook_url=self.receiver.url, event_types=["question_asked"]
        ).pk
        for command in (["run_scheduler", "--tick", "0.2"], ["db_worker", "--no-startup-delay", "--no-reload"]):
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", *command],
                    cwd=ROOT,
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        return self

    def drain(self, contracts: Iterable, timeout: float = 60.0) -> None:
        """Wait until every event of ``contracts`` is dispatched (the outbox is empty) and no delivery is pending."""
        from supervisors.models import Delivery, SupervisorEvent

        contracts = list(contracts)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            outbox = SupervisorEvent.objects.filter(contract_id__in=contracts, dispatched_at__isnull=True)
            undispatched = outbox.exists()
            if (
                not undispatched
                and not Delivery.objects.filter(subscription_id=self.subscription_id, status="pending").exists()
            ):
                return
            time.sleep(0.2)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.receiver.__exit__(None, None, None)

    def check(self, contracts: Iterable) -> Check:
        """Every question asked: exactly one delivered notification, received; nothing stuck."""
        from supervisors.models import Delivery, SupervisorEvent

        contracts = list(contracts)
        asked = {
            str(pk)
            for pk in SupervisorEvent.objects.filter(contract_id__in=contracts, kind="question_asked").values_list(
                "id", flat=True
            )
        }
        deliveries = Delivery.objects.filter(subscription_id=self.subscription_id)
        per_event = Counter(str(e) for e in deliveries.values_list("event_id", flat=True))
        delivered = {str(e) for e in deliveries.filter(status="delivered").values_list("event_id", flat=True)}
        stuck = deliveries.exclude(status="delivered").count()
        undispatched = SupervisorEvent.objects.filter(contract_id__in=contracts, dispatched_at__isnull=True).count()
        received = {r.event_id for r in self.receiver.accepted()}
        attempts = len(self.receiver.all())
        missing = asked - delivered
        twice = [e for e, n in per_event.items() if n != 1]
        held = bool(asked) and not missing and not twice and not stuck and not undispatched and asked <= received
        return Check(
            "each question asked notified exactly once",
            held,
            f"{len(asked)} questions, {len(delivered)} delivered, {len(received)} received in {attempts} "
            f"requests ({len(FAILURES)} failed on purpose); missing {len(missing)}, more than one delivery "
            f"{len(twice)}, not delivered {stuck}, undispatched events {undispatched}",
        )
