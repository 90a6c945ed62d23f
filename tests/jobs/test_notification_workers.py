"""Notifications delivered by real ``db_worker`` processes (and ``run_scheduler``), on SQLite and PostgreSQL.

What a user notices: the receiver fails the first requests (500s, a dropped
connection), then the worker is killed with SIGKILL while a request is in
flight; a new worker is started: every question asked arrives, signed, the
one in flight at the kill arrives again with the same event id, and no
delivery is left pending.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from supervisors.models import Delivery, SupervisorEvent
from supervisors.services.questions import add_supervisor_pending_question
from tests.factories import make_question
from tests.services.notifications.conftest import supervisors, webhook
from tests.services.notifications.receiver import Receiver, documented_verify
from tests.services.test_jobs import DATABASE_BACKEND, start, stop

pytestmark = pytest.mark.django_db(transaction=True)

QUICK = {
    "NOTIFICATIONS_DISPATCH_INTERVAL_SECONDS": "0.3",
    "NOTIFICATIONS_DELIVER_INTERVAL_SECONDS": "0.3",
    "NOTIFICATIONS_RETRY_BASE_SECONDS": "0.1",
    "NOTIFICATIONS_RETRY_MAX_DELAY_SECONDS": "0.5",
    "WATCHDOG_INTERVAL_SECONDS": "3600",
}


@pytest.fixture(autouse=True)
def database_jobs(settings):
    settings.TASKS = DATABASE_BACKEND


def worker(**env: str):
    return start("db_worker", "--no-startup-delay", "--no-reload", "--interval", "0.2", extra_env={**QUICK, **env})


def ask_all(fleet, text: str) -> None:
    for supervisor in fleet:
        add_supervisor_pending_question(supervisor.contract_id, make_question(f"{text} {supervisor.contract.name}?"))


def test_a_worker_killed_mid_delivery_loses_nothing_and_the_receiver_gets_every_question():
    fleet = supervisors(4, state="working")
    with Receiver(["500", "close", "500", "hang"]) as receiver:
        subscription = webhook(receiver.url)
        scheduler = start("run_scheduler", "--tick", "0.2", extra_env=QUICK)
        # A 3 s timeout leases an attempt for 11 s: the killed worker's delivery is due again after that.
        first = worker(NOTIFICATIONS_TIMEOUT_SECONDS="3")
        second = None
        try:
            ask_all(fleet, "Deploy")
            assert receiver.hanging.wait(60), "no request reached the receiver within 60 s: " + stop(first)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
            receiver.release()
            in_flight = receiver.all()[-1].event_id
            assert Delivery.objects.get(event_id=in_flight).status == "pending"
            ask_all(fleet, "Merge")  # asked while no worker runs
            second = worker(NOTIFICATIONS_TIMEOUT_SECONDS="2")
            deadline = time.monotonic() + 90
            while Delivery.objects.filter(status="pending").exists() or Delivery.objects.count() < 8:
                assert scheduler.poll() is None and second.poll() is None, [stop(scheduler), stop(second)]
                assert time.monotonic() < deadline, list(Delivery.objects.values("status", "attempts", "last_error"))
                time.sleep(0.2)
        finally:
            outputs = [stop(p) for p in (scheduler, second) if p is not None]
        every, accepted = receiver.all(), receiver.accepted()

    assert all(p.returncode == 0 for p in (scheduler, second)), outputs
    asked = {str(pk) for pk in SupervisorEvent.objects.filter(kind="question_asked").values_list("id", flat=True)}
    assert len(asked) == 8
    assert {r.event_id for r in accepted} == asked  # every question arrived
    assert {r.event_id for r in every} == asked  # and nothing else
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}
    assert len([r for r in every if r.event_id == in_flight]) >= 2  # sent again, the same id
    sequences = {str(k): v for k, v in SupervisorEvent.objects.values_list("id", "sequence")}
    per_supervisor: dict[str, list[int]] = {}
    for r in every:
        per_supervisor.setdefault(r.payload["supervisor"]["id"], []).append(sequences[r.event_id])
    assert all(seen == sorted(seen) for seen in per_supervisor.values()), per_supervisor  # in order per supervisor
    verify = documented_verify()
    assert all(verify(subscription.secret, r.headers["Makima-Signature"], r.body) for r in every)
