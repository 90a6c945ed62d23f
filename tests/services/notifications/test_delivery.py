"""Notifications reach a real webhook receiver on 127.0.0.1 and a mailbox, whatever fails on the way.

What a user notices: a receiver that answered 500s and dropped connections
gets every notification once it recovers, each signed (the documented
snippet verifies it), retries carrying the same event id and body; a
supervisor's notifications arrive in their order; one that keeps failing
becomes a dead letter after the bounded time and staff can retry it; a
question's email says what to answer and where.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from supervisors.models import Delivery, Subscription, SupervisorEvent
from supervisors.services.notifications import (
    deliver_due_notifications,
    dispatch_batch,
    dispatch_new_events,
    retry_deliveries,
    send_test_event,
)
from supervisors.services.questions import add_supervisor_pending_question
from supervisors.services.state import update_supervisor_detailed_state
from tests.factories import make_question

from .conftest import drain, supervisors, webhook
from .receiver import Receiver, documented_verify

pytestmark = pytest.mark.django_db


def ask(supervisor, text: str, **fields) -> dict:
    _, asked, _ = add_supervisor_pending_question(supervisor.contract_id, make_question(text, **fields))
    return asked


def block(supervisor, why: str = "needs a key") -> None:
    update_supervisor_detailed_state(supervisor.contract_id, {"state": "blocked", "error_message": why})


def test_a_receiver_that_fails_then_recovers_gets_every_event_signed_in_order_with_stable_ids():
    fleet = supervisors(3, state="working")
    with Receiver(["500", "500", "close", "500", "close", "500"]) as receiver:
        subscription = webhook(receiver.url)
        for supervisor in fleet:
            ask(supervisor, f"Deploy {supervisor.contract.name}?")
            block(supervisor)
            ask(supervisor, "And the docs?")
        drain()
        accepted, every = receiver.accepted(), receiver.all()

    expected = SupervisorEvent.objects.filter(kind__in=["question_asked", "state_updated"])
    expected_ids = {str(pk) for pk in expected.values_list("id", flat=True)}
    assert len(expected_ids) == 9
    # Every event arrives, exactly once accepted; the failed attempts were real requests too.
    assert sorted(r.event_id for r in accepted) == sorted(expected_ids)
    assert len(every) == 9 + 6
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}
    # Signed: the documented snippet verifies every request, and refuses a changed body or another secret.
    verify = documented_verify()
    for request in every:
        assert verify(subscription.secret, request.headers["Makima-Signature"], request.body)
        assert request.headers["Makima-Event-Id"] == request.event_id
    assert not verify(subscription.secret, every[0].headers["Makima-Signature"], every[0].body + b" ")
    assert not verify("another secret", every[0].headers["Makima-Signature"], every[0].body)
    # A retry is the same notification: same id, same bytes.
    by_id = defaultdict(set)
    for request in every:
        by_id[request.event_id].add(request.body)
    assert all(len(bodies) == 1 for bodies in by_id.values())
    assert any(len([r for r in every if r.event_id == i]) > 1 for i in by_id)
    # Per supervisor, every attempt of an event comes before any attempt of a later one.
    sequences = dict(expected.values_list("id", "sequence"))
    per_supervisor = defaultdict(list)
    for request in every:
        per_supervisor[request.payload["supervisor"]["id"]].append(sequences[_uuid(request.event_id)])
    assert len(per_supervisor) == 3
    assert all(seen == sorted(seen) for seen in per_supervisor.values()), per_supervisor
    # The types a person reads.
    types = sorted(r.payload["type"] for r in accepted)
    assert types == ["question_asked"] * 6 + ["supervisor_blocked"] * 3


def test_a_questions_notification_carries_what_a_person_needs_to_answer():
    (supervisor,) = supervisors(1, state="working")
    with Receiver() as receiver:
        webhook(receiver.url)
        asked = ask(supervisor, "Ship it?", choices=["ship", "wait"], context="All tests pass.")
        drain()
        (request,) = receiver.accepted()
    payload = request.payload
    assert payload["type"] == "question_asked"
    assert payload["contract"] == {"id": str(supervisor.contract_id), "name": supervisor.contract.name}
    assert payload["question"] == {
        "id": asked["id"],
        "question": "Ship it?",
        "choices": ["ship", "wait"],
        "context": "All tests pass.",
        "questionType": "general",
        "stillPending": True,
    }
    assert payload["links"]["answer"] == (
        f"https://makima.example.com/admin/supervisors/supervisorstate/{supervisor.pk}/change/"
    )


def test_a_question_is_emailed_with_the_question_choices_context_and_the_link(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    (supervisor,) = supervisors(1, state="working")
    Subscription.objects.create(name="on call", email="oncall@example.com", event_types=["question_asked"])
    ask(supervisor, "Use the staging database?", choices=["yes", "no"], context="Prod is read-only today.")
    block(supervisor)  # not a type this subscription wants
    drain()
    (message,) = mail.outbox
    assert message.to == ["oncall@example.com"]
    assert supervisor.contract.name in message.subject
    for text in ("Use the staging database?", "- yes", "- no", "Prod is read-only today.", supervisor.contract.name):
        assert text in message.body
    assert f"https://makima.example.com/admin/supervisors/supervisorstate/{supervisor.pk}/change/" in message.body
    assert Delivery.objects.get().status == "delivered"


def test_a_delivery_failing_past_the_bounded_time_is_dead_lettered_and_the_next_one_goes_on(settings):
    settings.NOTIFICATIONS_RETRY_FOR_SECONDS = 0.5
    (supervisor,) = supervisors(1, state="working")
    with Receiver(["500"] * 1000) as receiver:
        webhook(receiver.url)
        ask(supervisor, "First?")
        started = time.monotonic()
        drain()
        assert time.monotonic() - started >= 0.5
        first = Delivery.objects.get()
        assert (first.status, first.last_error) == ("dead", "HTTP 500")
        assert first.attempts >= 3  # retried with backoff until the bound
        # Staff retry it once the receiver is fixed; a later event is not held back by the dead letter.
        receiver.script.clear()
        ask(supervisor, "Second?")
        drain()
        assert set(Delivery.objects.values_list("status", flat=True)) == {"dead", "delivered"}
        assert retry_deliveries([first.pk]) == 1
        drain()
        assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}
        assert [r.payload["question"]["question"] for r in receiver.accepted()] == ["Second?", "First?"]


def test_subscriptions_get_only_their_types_and_contracts_and_no_event_twice():
    one, two = supervisors(2, state="working")
    with Receiver() as receiver:
        webhook(receiver.url, name="all")
        webhook(
            receiver.url, name="two's blocks", event_types=["supervisor_blocked"], contract_ids=[str(two.contract_id)]
        )
        webhook(receiver.url, name="off", enabled=False)
        ask(one, "One?")
        block(one)
        block(two)
        drain()
        dispatch_new_events()  # nothing left: nothing dispatched again
        got = defaultdict(list)
        for delivery in Delivery.objects.select_related("subscription"):
            got[delivery.subscription.name].append(delivery.event_type)
    assert sorted(got["all"]) == ["question_asked", "supervisor_blocked", "supervisor_blocked"]
    assert got["two's blocks"] == ["supervisor_blocked"]
    assert "off" not in got
    assert len(receiver.accepted()) == 4
    assert not SupervisorEvent.objects.filter(dispatched_at__isnull=True).exists()


def test_the_dispatchers_queries_do_not_grow_with_the_events_of_a_batch():
    fleet = supervisors(10, state="working")
    webhook("http://127.0.0.1:9/never-called")

    def queries_for(events_per_supervisor: int) -> int:
        for supervisor in fleet:
            for i in range(events_per_supervisor):
                ask(supervisor, f"Q{i}?")
        with CaptureQueriesContext(connection) as queries:
            report = dispatch_batch()
        assert report.events == 10 * events_per_supervisor
        return len(queries)

    assert queries_for(1) == queries_for(20)


def test_a_test_event_from_the_admin_reaches_the_receiver():
    with Receiver() as receiver:
        subscription = webhook(receiver.url)
        send_test_event(subscription, actor="staff:ana")
        deliver_due_notifications()
        (request,) = receiver.accepted()
    assert request.payload["type"] == "test"
    assert documented_verify()(subscription.secret, request.headers["Makima-Signature"], request.body)


def _uuid(text: str):
    import uuid

    return uuid.UUID(text)


def test_a_daemon_found_gone_by_the_watchdog_is_notified_with_its_interrupted_supervisors():
    from supervisors.services.watchdog import run_watchdog
    from tests.services.test_watchdog import crashed_daemon, fleet

    daemon = crashed_daemon("rack-4")
    (orphan,) = fleet(daemon, ["working"], "orphan")
    with Receiver() as receiver:
        webhook(receiver.url, name="all")
        webhook(receiver.url, name="one contract", contract_ids=[str(orphan.contract_id)])
        run_watchdog()
        run_watchdog()  # a second run finds nothing new: no second notification
        drain()
        got = sorted((r.payload["type"], r.payload.get("daemon", {}).get("name")) for r in receiver.accepted())
    # The daemon's loss goes to the subscription for every contract; its supervisor's interruption to both.
    assert got == [("daemon_gone", "rack-4"), ("interrupted", None), ("interrupted", None)]
    gone = Delivery.objects.get(event_type="daemon_gone")
    assert gone.payload["daemon"]["id"] == str(daemon.pk)
    assert gone.payload["links"]["daemon"].endswith(f"/admin/supervisors/daemon/{daemon.pk}/change/")


def test_a_receiver_that_hangs_or_redirects_is_a_failed_attempt_within_the_timeout(settings):
    settings.NOTIFICATIONS_TIMEOUT_SECONDS = 0.5
    from supervisors.services.notifications.send import post_webhook

    with Receiver(["hang"]) as receiver:
        started = time.monotonic()
        error = post_webhook(receiver.url, "s", {"id": "x", "type": "test"})
        assert time.monotonic() - started < 3
        assert "timed out" in error
    for url in ("ftp://127.0.0.1/x", "file:///etc/passwd", "http:///nohost"):
        assert post_webhook(url, "s", {"id": "x"}) == "refused: only http and https URLs are delivered to"


def test_a_redirect_is_not_followed(settings):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from supervisors.services.notifications.send import post_webhook

    hits: list[str] = []

    class Redirecting(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            hits.append(self.path)
            self.send_response(307)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = HTTPServer(("127.0.0.1", 0), Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        error = post_webhook(f"http://127.0.0.1:{server.server_address[1]}/hook", "s", {"id": "x"})
    finally:
        server.shutdown()
        server.server_close()
    assert error == "HTTP 307"
    assert hits == ["/hook"]


def test_an_email_server_that_refuses_is_retried_then_dead_lettered(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens there
    settings.NOTIFICATIONS_RETRY_FOR_SECONDS = 0.3
    (supervisor,) = supervisors(1, state="working")
    Subscription.objects.create(name="on call", email="oncall@example.com")
    ask(supervisor, "Anyone there?")
    drain()
    delivery = Delivery.objects.get()
    assert delivery.status == "dead" and delivery.attempts >= 2
    assert "Connection refused" in delivery.last_error or "ConnectionRefusedError" in delivery.last_error
