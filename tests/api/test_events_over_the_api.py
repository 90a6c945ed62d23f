"""Writes over the API land in the supervisor's timeline as the daemon or the staff user who made them."""

from __future__ import annotations

import pytest

from supervisors.enums import EventKind
from supervisors.models import SupervisorEvent

from .conftest import staff_client

pytestmark = pytest.mark.django_db


def base(supervisor) -> str:
    return f"/api/v1/contracts/{supervisor.contract_id}/supervisor/"


def test_a_daemons_phase_change_is_recorded_as_that_daemon(alpha, supervisor):
    response = alpha.client.post(base(supervisor) + "phase/", {"phase": "review"}, format="json")
    assert response.status_code == 200
    event = SupervisorEvent.objects.get(supervisor=supervisor)
    assert (event.kind, event.actor_label, event.actor_daemon_id) == (
        EventKind.PHASE_CHANGED,
        "daemon:alpha",
        alpha.daemon.id,
    )


def test_a_staff_users_patch_is_a_correction_by_that_user(supervisor):
    client = staff_client("supervisors.change_supervisorstate", "supervisors.view_supervisorstate")
    response = client.patch(base(supervisor), {"progress": 70}, format="json")
    assert response.status_code == 200
    event = SupervisorEvent.objects.get(supervisor=supervisor)
    assert event.kind == EventKind.CORRECTED and event.actor_label.startswith("staff:")


def test_a_refused_write_records_nothing(beta, supervisor):
    response = beta.client.post(base(supervisor) + "phase/", {"phase": "review"}, format="json")
    assert response.status_code == 404
    assert not SupervisorEvent.objects.exists()


def test_a_heartbeat_records_nothing(alpha, supervisor):
    body = {"state": "working", "currentActivity": "tests", "progress": 10}
    assert alpha.client.post(base(supervisor) + "heartbeat/", body, format="json").status_code == 200
    assert not SupervisorEvent.objects.exists()
