"""Dispatchers, delivery workers and question askers racing on PostgreSQL: nothing twice, nothing lost, in order.

Rounds of supervisors asking questions while three dispatchers and three
delivery workers run at once (threads, own connections, released by a
barrier). At the end every question event has exactly one delivery, the
receiver accepted each once (no failures were scripted, so no retries), and
each supervisor's notifications arrived in the order of its events.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from supervisors.models import Delivery, SupervisorEvent
from supervisors.services.notifications import deliver_due_notifications, dispatch_batch
from supervisors.services.questions import add_supervisor_pending_question
from tests.api.test_fencing_races import run_together
from tests.factories import make_question

from .conftest import drain, supervisors, webhook
from .receiver import Receiver

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

ROUNDS = 12


def test_racing_dispatchers_and_workers_deliver_each_question_once_in_order_per_supervisor(settings):
    settings.NOTIFICATIONS_DISPATCH_BATCH = 3  # small batches: the racers interleave within a round
    fleet = supervisors(3, state="working")

    def asker(supervisor, round_: int):
        def ask() -> None:
            for n in range(2):
                add_supervisor_pending_question(supervisor.contract_id, make_question(f"r{round_} q{n}?"))

        return ask

    with Receiver() as receiver:
        webhook(receiver.url)
        for round_ in range(ROUNDS):
            run_together(
                *(asker(s, round_) for s in fleet),
                *(lambda: dispatch_batch() for _ in range(3)),
                *(lambda: deliver_due_notifications(slice_seconds=1) for _ in range(3)),
            )
        drain()
        every = receiver.all()

    asked = dict(SupervisorEvent.objects.filter(kind="question_asked").values_list("id", "sequence"))
    assert len(asked) == ROUNDS * 3 * 2
    assert Counter(str(e) for e in Delivery.objects.values_list("event_id", flat=True)) == Counter(
        str(e) for e in asked
    )
    assert sorted(r.event_id for r in every) == sorted(str(e) for e in asked)  # each once, none lost
    per_supervisor = defaultdict(list)
    for request in every:
        per_supervisor[request.payload["supervisor"]["id"]].append(asked[_uuid(request.event_id)])
    assert all(seen == sorted(seen) for seen in per_supervisor.values()), per_supervisor


def _uuid(text: str):
    import uuid

    return uuid.UUID(text)
