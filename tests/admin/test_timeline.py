"""The supervisor's timeline page: what happened, newest first, named and readable, at a fixed cost.

What staff notice: the page names the contract, lists the events newest first
with local times and ages, filters by kind, pages through hundreds of events
with the same few queries, and a bad link gives an empty page with a message,
never an error page.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from supervisors.enums import DaemonStatus, EventKind
from supervisors.models import Daemon, SupervisorEvent, SupervisorState
from supervisors.services.actors import Actor
from supervisors.services.events import NewEvent, record_events
from supervisors.services.ownership import Fence
from supervisors.services.questions import add_supervisor_pending_question, clear_pending_question
from supervisors.services.state import update_supervisor_phase
from supervisors.services.watchdog import run_watchdog
from tests.factories import make_contract, make_daemon, make_question, make_supervisor

from .conftest import VIEW_ALL, staff_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss(client) -> User:
    user = User.objects.create_superuser("boss", password="pw")
    client.force_login(user)
    return user


@pytest.fixture
def supervisor() -> SupervisorState:
    return make_supervisor(make_contract("Billing rewrite", phase="plan"), state="working")


def url(supervisor: SupervisorState) -> str:
    return reverse("admin:supervisors_supervisorstate_timeline", args=[supervisor.pk])


def many_events(supervisor: SupervisorState, n: int) -> None:
    with transaction.atomic():
        record_events(
            [
                NewEvent(supervisor.id, EventKind.PHASE_CHANGED, Actor.system(), {"from": f"p{i}", "to": f"p{i + 1}"})
                for i in range(n)
            ]
        )


def test_timeline_names_the_contract_and_lists_newest_first_with_who(client, boss):
    daemon = make_daemon("daemon-7")
    Daemon.objects.filter(pk=daemon.pk).update(status=DaemonStatus.CONNECTED, last_heartbeat_at=timezone.now())
    supervisor = make_supervisor(make_contract("Billing rewrite", phase="plan"), daemon=daemon, state="working")
    question = make_question("Ship it?")
    add_supervisor_pending_question(supervisor.contract_id, question)
    clear_pending_question(supervisor.contract_id, question["id"], answer="yes", actor=Actor.staff(boss))
    update_supervisor_phase(supervisor.contract_id, "build", fence=Fence(daemon_id=daemon.id))
    response = client.get(url(supervisor))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Timeline of Billing rewrite" in html
    rows = [r.event.kind for r in response.context["rows"]]
    assert rows == [EventKind.PHASE_CHANGED, EventKind.QUESTION_ANSWERED, EventKind.QUESTION_ASKED]
    assert "Phase changed from plan to build." in html
    assert "Answered by staff:boss: “Ship it?”." in html
    assert "daemon:daemon-7" in html
    assert "ago" in html and str(timezone.localtime().year) in html


def test_the_supervisor_page_shows_recent_events_and_links_to_the_timeline(client, boss, supervisor):
    update_supervisor_phase(supervisor.contract_id, "build")
    page = client.get(reverse("admin:supervisors_supervisorstate_change", args=[supervisor.pk])).content.decode()
    assert url(supervisor) in page
    assert "Phase changed from plan to build." in page


def test_watchdog_interruption_shows_its_reason(client, boss, supervisor):
    crashed = make_daemon("crashed-3")
    Daemon.objects.filter(pk=crashed.pk).update(
        status=DaemonStatus.CONNECTED, last_heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    supervisor.task.daemon = crashed
    supervisor.task.save()
    run_watchdog()
    html = client.get(url(supervisor)).content.decode()
    assert "Interrupted by the watchdog: daemon crashed-3 gone since" in html
    assert ">watchdog<" in html


def test_filter_by_kind(client, boss, supervisor):
    many_events(supervisor, 3)
    with transaction.atomic():
        record_events([NewEvent(supervisor.id, EventKind.RESTORED, Actor.system(), {"outcome": "restored"})])
    response = client.get(url(supervisor), {"kind": "restored"})
    assert [r.event.kind for r in response.context["rows"]] == [EventKind.RESTORED]
    assert response.context["total"] == 1


@pytest.mark.parametrize("size", [120, 1000])
def test_the_page_costs_the_same_queries_over_a_hundred_events_as_over_a_thousand(client, boss, supervisor, size):
    many_events(supervisor, size)
    client.get(url(supervisor))  # warm the session and content types
    counts = []
    for query in ({}, {"page": "2"}, {"kind": "phase_changed", "page": "2"}):
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url(supervisor), query)
        assert response.status_code == 200
        assert len(response.context["rows"]) == 50
        counts.append(len(ctx.captured_queries))
    assert counts == [counts[0]] * 3 and counts[0] <= 6, counts
    newest = response.context["rows"][0].event
    assert newest.sequence == size - 50


@pytest.mark.parametrize(
    "query, message",
    [
        ({"page": "99999999999999999999999"}, "is not a page number"),
        ({"page": "-3"}, "is not a page number"),
        ({"page": "5000"}, "past the last page"),
        ({"kind": "no_such_kind"}, "Unknown event kind"),
        ({"kind": "x" * 5000}, "Unknown event kind"),
    ],
)
def test_bad_querystrings_give_an_empty_page_and_a_message(client, boss, supervisor, query, message):
    many_events(supervisor, 3)
    response = client.get(url(supervisor), query)
    assert response.status_code == 200
    assert response.context["rows"] == []
    assert message in response.content.decode()


@pytest.mark.parametrize("query", [{"page": "\x00"}, {"kind": "\x00" * 5000}])
def test_a_nul_in_the_querystring_is_the_admin_sites_bad_link_page(client, boss, supervisor, query):
    many_events(supervisor, 3)
    response = client.get(url(supervisor), query)
    assert response.status_code == 400
    assert "carries a NUL character" in response.content.decode()


def test_an_unknown_kind_beside_a_known_one_is_named_and_the_known_one_shown(client, boss, supervisor):
    many_events(supervisor, 2)
    response = client.get(url(supervisor) + "?kind=phase_changed&kind=bogus")
    assert len(response.context["rows"]) == 2
    assert "Unknown event kind: bogus." in response.content.decode()


def test_staff_without_view_permission_cannot_read_a_timeline(client, supervisor):
    client.force_login(staff_with("nobody"))
    assert client.get(url(supervisor)).status_code == 403
    client.force_login(staff_with("viewer", *VIEW_ALL))
    assert client.get(url(supervisor)).status_code == 200


def test_an_unknown_supervisor_is_404(client, boss):
    response = client.get(reverse("admin:supervisors_supervisorstate_timeline", args=["not-a-uuid"]))
    assert response.status_code == 404
    assert SupervisorEvent.objects.count() == 0


def test_a_question_holding_markup_is_shown_as_text(client, boss, supervisor):
    add_supervisor_pending_question(supervisor.contract_id, make_question("Merge <script>alert(1)</script>?"))
    html = client.get(url(supervisor), {"kind": ""}).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "Unknown event kind" not in html
