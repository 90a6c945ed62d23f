"""Daemons claim orphaned supervisors (failover without a person): POST /api/v1/supervisors/claim/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from supervisors.enums import DaemonStatus
from supervisors.models import Daemon, RestorationLog, SupervisorState, Task
from tests.factories import make_contract, make_supervisor

from .conftest import _daemon, url

CLAIM = "/api/v1/supervisors/claim/"


def gone(daemon) -> None:
    Daemon.objects.filter(pk=daemon.pk).update(status=DaemonStatus.DISCONNECTED)


def test_nothing_orphaned_is_a_cheap_empty_answer(alpha, supervisor, other_supervisor):
    alpha.client.post(CLAIM, {"capacity": 5}, format="json")  # warms the key cache and the lease
    with CaptureQueriesContext(connection) as queries:
        response = alpha.client.post(CLAIM, {"capacity": 5}, format="json")
    assert response.status_code == 200
    assert response.json() == {"claimed": [], "failed": []}
    assert len(queries) <= 3, [q["sql"] for q in queries]  # the rate counter, the claimer, one orphan query


def test_a_gone_daemons_supervisors_move_to_the_claimer_oldest_first(alpha, beta):
    now = timezone.now()
    older = make_supervisor(
        make_contract("older"),
        daemon=beta.daemon,
        state="working",
        conversation_history=[{"role": "user", "content": "keep me"}],
    )
    newer = make_supervisor(make_contract("newer"), daemon=beta.daemon, state="waiting_for_tasks")
    SupervisorState.objects.filter(pk=older.pk).update(last_activity=now - timedelta(minutes=9))
    SupervisorState.objects.filter(pk=newer.pk).update(last_activity=now - timedelta(minutes=1))
    gone(beta.daemon)

    first = alpha.client.post(CLAIM, {"capacity": 1}, format="json").json()
    assert [c["contractId"] for c in first["claimed"]] == [str(older.contract_id)]
    context = first["claimed"][0]
    assert context["restorationCount"] == 1 and context["success"] is True
    assert context["conversationHistory"] == [{"role": "user", "content": "keep me"}]
    assert Task.objects.get(pk=older.task_id).daemon_id == alpha.daemon.id
    assert alpha.client.get(url(older.contract_id)).status_code == 200

    second = alpha.client.post(CLAIM, {"capacity": 5}, format="json").json()
    assert [c["contractId"] for c in second["claimed"]] == [str(newer.contract_id)]
    assert alpha.client.post(CLAIM, {"capacity": 5}, format="json").json()["claimed"] == []
    log = RestorationLog.objects.get(supervisor=older)
    assert (log.source, log.actor_daemon_id, log.previous_daemon_id) == (
        "task_reassignment",
        alpha.daemon.id,
        beta.daemon.id,
    )


def test_live_completed_and_blocked_supervisors_are_not_claimed(alpha, beta, other_supervisor):
    dead = Daemon.objects.create(name="dead", status=DaemonStatus.DISCONNECTED, last_heartbeat_at=timezone.now())
    completed = make_supervisor(make_contract("done"), daemon=dead, state="completed")
    blocked = make_supervisor(make_contract("blocked"), daemon=dead, state="blocked", error_message="needs a human")
    response = alpha.client.post(CLAIM, {"capacity": 10}, format="json")
    assert response.json()["claimed"] == []
    for supervisor in (other_supervisor, completed, blocked):
        assert SupervisorState.objects.get(pk=supervisor.pk).restoration_count == 0
    assert Task.objects.get(pk=other_supervisor.task_id).daemon_id == beta.daemon.id


def test_filters_narrow_the_claim(alpha, beta):
    working = make_supervisor(make_contract("w"), daemon=beta.daemon, state="working")
    idle = make_supervisor(make_contract("i"), daemon=beta.daemon, state="idle")
    gone(beta.daemon)
    by_state = alpha.client.post(CLAIM, {"capacity": 5, "states": ["idle"]}, format="json").json()
    assert [c["contractId"] for c in by_state["claimed"]] == [str(idle.contract_id)]
    by_contract = alpha.client.post(
        CLAIM, {"capacity": 5, "contractIds": [str(working.contract_id)]}, format="json"
    ).json()
    assert [c["contractId"] for c in by_contract["claimed"]] == [str(working.contract_id)]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"capacity": 0}, "capacity"),
        ({"capacity": 10_000}, "capacity"),
        ({"capacity": "3"}, "capacity"),
        ({"capacity": True}, "capacity"),
        ({}, "capacity"),
        ({"capacity": 2, "states": ["sleeping"]}, "states"),
        ({"capacity": 2, "contractIds": ["nope"]}, "contractIds"),
        ({"capacity": 2, "daemon": "me"}, "daemon"),
    ],
)
def test_bad_claims_are_400_and_take_nothing(alpha, beta, body, field):
    orphan = make_supervisor(make_contract("orphan"), daemon=beta.daemon)
    gone(beta.daemon)
    response = alpha.client.post(CLAIM, body, format="json")
    assert response.status_code == 400
    assert any(name.split(".")[0] == field for name in response.json()["fields"])
    assert SupervisorState.objects.get(pk=orphan.pk).restoration_count == 0


def test_failover_can_be_switched_off(alpha, beta, settings):
    settings.FAILOVER_ENABLED = False
    orphan = make_supervisor(make_contract("orphan"), daemon=beta.daemon)
    gone(beta.daemon)
    response = alpha.client.post(CLAIM, {"capacity": 2}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "failover_disabled"
    assert SupervisorState.objects.get(pk=orphan.pk).restoration_count == 0


def test_staff_do_not_claim(staff):
    assert staff.post(CLAIM, {"capacity": 2}, format="json").status_code == 403


def test_the_former_owner_coming_back_is_superseded(alpha, beta):
    orphan = make_supervisor(make_contract("orphan"), daemon=beta.daemon)
    gone(beta.daemon)
    assert len(alpha.client.post(CLAIM, {"capacity": 2}, format="json").json()["claimed"]) == 1
    back = beta.client.post(url(orphan.contract_id, "heartbeat/"), {"state": "working", "progress": 50}, "json")
    assert back.status_code == 409
    assert back.json()["code"] == "superseded"
    assert SupervisorState.objects.get(pk=orphan.pk).progress == 0


def test_a_claim_whose_answer_never_arrived_is_found_in_the_claimers_list_and_resumed(alpha, beta):
    """The documented recovery (docs/api.md, "Takeover"): a claim that committed but whose answer the
    daemon never got leaves the supervisor on that daemon, alive, so nobody else takes it; the daemon finds
    it in its own list and resumes it as its owner, getting the context and an epoch of its own."""
    history = [{"role": "user", "content": "keep me"}]
    orphan = make_supervisor(make_contract("orphan"), daemon=beta.daemon, state="working", conversation_history=history)
    gone(beta.daemon)
    lost = alpha.client.post(CLAIM, {"capacity": 5}, format="json")  # its answer never reaches alpha
    assert [c["contractId"] for c in lost.json()["claimed"]] == [str(orphan.contract_id)]

    gamma = _daemon("gamma")  # another live daemon polling claims meanwhile: alpha is alive, nothing to take
    assert gamma.client.post(CLAIM, {"capacity": 5}, format="json").json()["claimed"] == []

    mine = alpha.client.get("/api/v1/supervisors/").json()
    assert [s["contractId"] for s in mine] == [str(orphan.contract_id)]
    resumed = alpha.client.post(url(orphan.contract_id, "resume/"), {"source": "daemon_restart"}, format="json")
    assert resumed.status_code == 200
    context = resumed.json()
    assert context["restorationCount"] == 2  # the claim's epoch (1), which alpha never learnt, is fenced off
    assert context["conversationHistory"] == history
    stale = alpha.client.post(
        url(orphan.contract_id, "heartbeat/"),
        {"state": "working", "currentActivity": "coding", "progress": 1},
        format="json",
        HTTP_SUPERVISOR_EPOCH="1",
    )
    assert stale.status_code == 409 and stale.json()["code"] == "superseded"
    assert Task.objects.get(pk=orphan.task_id).daemon_id == alpha.daemon.id
