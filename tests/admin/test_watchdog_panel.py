"""The dashboard shows what the watchdog did last: daemons marked gone, supervisors interrupted and why."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from supervisors.models import WatchdogRun
from supervisors.services.watchdog import run_watchdog
from tests.services.test_watchdog import crashed_daemon, fleet

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("admin:supervisors_supervisorstate_dashboard")


def test_the_dashboard_says_when_the_watchdog_never_ran(admin_client):
    html = admin_client.get(DASHBOARD).content.decode()
    assert "The watchdog has never run" in html


def test_the_dashboard_shows_the_last_watchdog_run_and_each_interruption_with_its_reason(admin_client):
    orphans = fleet(crashed_daemon("night-shift"), ["working", "idle"], "orphan")
    run_watchdog()
    html = admin_client.get(DASHBOARD).content.decode()
    assert '<span data-finding="daemons_marked_gone">1 daemon marked gone</span>' in html
    assert "(night-shift)" in html
    assert '<span data-finding="supervisors_interrupted">2 supervisors interrupted</span>' in html
    for supervisor in orphans:
        assert str(supervisor.contract_id) in html
    assert "interrupted by the watchdog: daemon night-shift gone since" in html
    assert "overdue" not in html


def test_a_watchdog_that_stopped_running_shows_as_overdue(admin_client, settings):
    settings.WATCHDOG_INTERVAL_SECONDS = 15
    WatchdogRun.objects.create(started_at=timezone.now() - timedelta(minutes=5), finished_at=timezone.now())
    html = admin_client.get(DASHBOARD).content.decode()
    assert "overdue: is a worker" in html
