"""Liveness is a lease (issue 11, item 2), over the API: any authenticated request keeps a daemon alive."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from supervisors.models import Daemon, SupervisorState
from supervisors.services import ownership
from supervisors.services.ownership import is_daemon_gone, was_taken_over_from
from tests.factories import make_contract, make_daemon, make_supervisor

from .conftest import url


def test_supervisor_heartbeats_alone_keep_the_daemon_alive_and_refuse_a_takeover(alpha, beta, other_supervisor):
    """The first bug of the issue: a working daemon that never calls its own heartbeat was taken over."""
    silent = timezone.now() - timedelta(seconds=3600)
    Daemon.objects.filter(pk=beta.daemon.pk).update(last_heartbeat_at=silent)
    assert is_daemon_gone(Daemon.objects.get(pk=beta.daemon.pk))
    beat = beta.client.post(
        url(other_supervisor.contract_id, "heartbeat/"), {"state": "working", "progress": 5}, "json"
    )
    assert beat.status_code == 200
    assert not is_daemon_gone(Daemon.objects.get(pk=beta.daemon.pk))
    takeover = alpha.client.post(url(other_supervisor.contract_id, "resume/"), {"source": "task_reassignment"}, "json")
    assert takeover.status_code == 404
    other_supervisor.task.refresh_from_db()
    assert other_supervisor.task.daemon_id == beta.daemon.id
    assert SupervisorState.objects.get(pk=other_supervisor.pk).restoration_count == 0


def test_the_lease_is_renewed_at_most_every_few_seconds_per_daemon(alpha, supervisor, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(ownership, "clock", lambda: clock[0])
    body = {"state": "working", "progress": 1}
    alpha.client.post(url(supervisor.contract_id, "heartbeat/"), body, "json")  # renews, warms the key cache

    def daemon_writes() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert alpha.client.post(url(supervisor.contract_id, "heartbeat/"), body, "json").status_code == 200
        return sum('UPDATE "daemons"' in q["sql"] for q in queries.captured_queries)

    assert daemon_writes() == 0
    clock[0] += ownership.lease_renew_seconds() + 0.1
    assert daemon_writes() == 1


def test_a_takeover_right_after_the_owners_resume_works_once_the_owner_is_gone(alpha, beta, other_supervisor):
    """No time window: the owner resumed a moment ago, then said it is leaving; alpha takes over at once."""
    owner = beta.client.post(url(other_supervisor.contract_id, "resume/"), {"source": "daemon_restart"}, "json")
    assert owner.json()["restorationCount"] == 1
    leaving = beta.client.post("/api/v1/daemons/me/heartbeat/", {"status": "disconnected"}, "json")
    assert leaving.status_code == 200
    takeover = alpha.client.post(url(other_supervisor.contract_id, "resume/"), {"source": "task_reassignment"}, "json")
    assert takeover.status_code == 200, takeover.content
    assert takeover.json()["restorationCount"] == 2
    # the former owner's write, with or without its epoch, lands nowhere
    zombie = beta.client.post(
        url(other_supervisor.contract_id, "phase/"), {"phase": "zombie"}, "json", HTTP_SUPERVISOR_EPOCH="1"
    )
    assert zombie.status_code == 409
    assert zombie.json()["code"] == "superseded"
    assert SupervisorState.objects.get(pk=other_supervisor.pk).phase != "zombie"
    bare = beta.client.post(
        url(other_supervisor.contract_id, "heartbeat/"), {"state": "working", "progress": 99}, "json"
    )
    assert bare.status_code == 409  # a former owner learns it was taken over, epoch or not
    assert bare.json()["code"] == "superseded"
    assert SupervisorState.objects.get(pk=other_supervisor.pk).progress != 99
    stranger = make_daemon("stranger")
    assert not was_taken_over_from(other_supervisor.pk, stranger.pk)


def test_a_daemon_never_heard_from_is_not_taken_over_while_it_is_new(alpha, settings):
    newcomer = make_daemon("newcomer")
    supervisor = make_supervisor(make_contract("New one's"), daemon=newcomer)
    takeover = alpha.client.post(url(supervisor.contract_id, "resume/"), {"source": "task_reassignment"}, "json")
    assert takeover.status_code == 404
    Daemon.objects.filter(pk=newcomer.pk).update(created_at=timezone.now() - timedelta(hours=1))
    takeover = alpha.client.post(url(supervisor.contract_id, "resume/"), {"source": "task_reassignment"}, "json")
    assert takeover.status_code == 200


def test_a_daemon_learns_its_own_id_lease_and_supervisors(alpha, supervisor, other_supervisor):
    response = alpha.client.get("/api/v1/daemons/me/")
    assert response.status_code == 200
    body = response.json()
    assert body["daemonId"] == str(alpha.daemon.id) and body["name"] == "alpha"
    assert body["alive"] is True and body["supervisors"] == 1
    assert body["leaseExpiresAt"] > body["lastHeartbeatAt"]


def test_staff_have_no_daemon_view(staff):
    assert staff.get("/api/v1/daemons/me/").status_code == 403
