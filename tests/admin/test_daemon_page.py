"""A crashed daemon's page lists what went down with it; the supervisor list finds it by daemon name or id."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from supervisors.enums import DaemonStatus, SupervisorStatus, TaskStatus
from supervisors.models import DaemonApiKey
from tests.factories import make_contract, make_daemon, make_supervisor, make_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def crashed():
    now = timezone.now()
    dead = make_daemon("daemon-7", last_heartbeat_at=now - timedelta(hours=1))
    other = make_daemon("daemon-8", last_heartbeat_at=now, status=DaemonStatus.CONNECTED)
    mine = [
        make_supervisor(make_contract(f"Crashed {i}"), daemon=dead, state=SupervisorStatus.WORKING) for i in range(3)
    ]
    make_task(mine[0].contract, name="worker of crashed 0", daemon=dead, status=TaskStatus.PENDING)
    theirs = make_supervisor(make_contract("Elsewhere"), daemon=other, state=SupervisorStatus.WORKING)
    DaemonApiKey.objects.create(daemon=dead, name="host-7", prefix="mk_abc", key_hash="x" * 64)
    return {"dead": dead, "other": other, "mine": mine, "theirs": theirs}


def daemon_url(daemon) -> str:
    return reverse("admin:supervisors_daemon_change", args=[daemon.pk])


def test_the_daemon_page_lists_its_supervisors_tasks_and_keys(admin_client, crashed):
    html = admin_client.get(daemon_url(crashed["dead"])).content.decode()
    panel = html[html.index('id="daemon-supervisors"') : html.index('id="daemon-tasks"')]
    assert "Supervisors it runs (3)" in panel
    assert all(f"Crashed {i}" in panel for i in range(3)) and "Elsewhere" not in panel
    tasks = html[html.index('id="daemon-tasks"') : html.index('id="daemon-keys"')]
    assert "Tasks (4)" in tasks and "pending: 1" in tasks and "running: 3" in tasks
    assert "worker of crashed 0" in tasks
    keys = html[html.index('id="daemon-keys"') :]
    assert "mk_abc" in keys and "host-7" in keys and "never" in keys


def test_the_daemon_page_costs_the_same_queries_with_many_supervisors(admin_client, crashed):
    dead = crashed["dead"]
    admin_client.get(daemon_url(dead))
    with CaptureQueriesContext(connection) as few:
        admin_client.get(daemon_url(dead))
    for i in range(60):
        make_supervisor(make_contract(f"more {i}"), daemon=dead, state=SupervisorStatus.WORKING)
    with CaptureQueriesContext(connection) as many:
        html = admin_client.get(daemon_url(dead)).content.decode()
    assert len(many) == len(few)
    assert "Supervisors it runs (63)" in html and "All 63 in the supervisor list" in html


def test_the_supervisor_list_finds_a_daemons_supervisors_by_name_or_id_and_shows_the_daemon(admin_client, crashed):
    changelist = reverse("admin:supervisors_supervisorstate_changelist")
    for term in ("daemon-7", str(crashed["dead"].pk)):
        response = admin_client.get(changelist, {"q": term})
        names = sorted(s.contract.name for s in response.context["cl"].result_list)
        assert names == ["Crashed 0", "Crashed 1", "Crashed 2"], term
    html = admin_client.get(changelist).content.decode()
    assert '<span class="sv-daemon sv-bad" title="gone">daemon-7</span>' in html
    assert '<span class="sv-daemon sv-ok" title="alive">daemon-8</span>' in html
