"""One rule for who owns what (issue 11, item 1): the supervisor task's daemon owns the supervisor.

Each test is a move a worker daemon or an attacker with a valid key could make;
each checks the answer AND that nothing changed.
"""

from __future__ import annotations

import uuid

import pytest

from supervisors.models import SupervisorState, Task
from tests.factories import make_contract, make_task

from .conftest import url


def not_found_shape(response) -> tuple[int, str, dict]:
    body = response.json()
    return response.status_code, body["code"], body.get("fields", {})


def test_put_refuses_a_worker_task_as_the_supervisors_task(alpha):
    contract = make_contract("Worker only")
    worker = make_task(contract, name="worker", daemon=alpha.daemon)
    response = alpha.client.put(
        url(contract.id), {"taskId": str(worker.id), "phase": contract.phase, "state": "working"}, format="json"
    )
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "bad_reference" and "taskId" in response.json()["fields"]
    assert not SupervisorState.objects.filter(contract=contract).exists()


def test_put_on_a_contract_supervised_by_another_daemon_is_the_same_404_as_no_contract(alpha, beta):
    contract = make_contract("Beta's, no state yet")
    betas_task = make_task(contract, name="supervisor", is_supervisor=True, daemon=beta.daemon)
    mine = make_task(make_contract("mine"), name="x", daemon=alpha.daemon)
    body = {"phase": contract.phase, "state": "working"}
    foreign = alpha.client.put(url(contract.id), {**body, "taskId": str(betas_task.id)}, format="json")
    missing = alpha.client.put(url(uuid.uuid4()), {**body, "taskId": str(mine.id)}, format="json")
    assert foreign.status_code == missing.status_code == 404
    assert not_found_shape(foreign)[1] == not_found_shape(missing)[1] == "not_found"
    assert not SupervisorState.objects.filter(contract=contract).exists()


def test_put_over_another_daemons_supervisor_is_404_and_changes_nothing(alpha, other_supervisor):
    body = {"taskId": str(other_supervisor.task_id), "phase": "hijacked", "state": "working"}
    response = alpha.client.put(url(other_supervisor.contract_id), body, format="json")
    assert response.status_code == 404
    other_supervisor.refresh_from_db()
    assert other_supervisor.phase != "hijacked"


def test_a_contract_has_one_supervisor_task(alpha, beta, supervisor):
    own = alpha.client.post(
        "/api/v1/tasks/",
        {"contractId": str(supervisor.contract_id), "name": "second", "isSupervisor": True},
        format="json",
    )
    assert own.status_code == 409
    assert own.json()["code"] == "supervisor_exists"
    foreign = beta.client.post(
        "/api/v1/tasks/",
        {"contractId": str(supervisor.contract_id), "name": "usurper", "isSupervisor": True},
        format="json",
    )
    assert foreign.status_code == 404  # not beta's contract: as if it did not exist
    assert Task.objects.filter(contract_id=supervisor.contract_id, is_supervisor=True).count() == 1


def test_a_daemon_cannot_make_another_daemon_a_supervisor(alpha, beta):
    contract = make_contract("Fresh")
    response = alpha.client.post(
        "/api/v1/tasks/",
        {"contractId": str(contract.id), "name": "s", "isSupervisor": True, "daemonId": str(beta.daemon.id)},
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied" and "daemonId" in response.json()["fields"]
    assert not Task.objects.filter(contract=contract).exists()


def test_a_task_without_daemon_runs_on_the_daemon_that_created_it(alpha):
    contract = alpha.client.post("/api/v1/contracts/", {"name": "Mine", "phase": "plan"}, format="json").json()
    task = alpha.client.post(
        "/api/v1/tasks/", {"contractId": contract["id"], "name": "s", "isSupervisor": True}, format="json"
    )
    assert task.status_code == 201, task.content
    assert task.json()["daemonId"] == str(alpha.daemon.id)
    # and the contract it just set up stays visible to it
    assert alpha.client.get(f"/api/v1/contracts/{contract['id']}/").status_code == 200


def test_an_is_supervisor_task_on_someone_elses_contract_opens_nothing(alpha, beta, other_supervisor):
    """The attack of the issue: mark a task as supervisor of beta's contract, then read or change its tasks."""
    worker = make_task(other_supervisor.contract, name="beta's worker", daemon=beta.daemon)
    sneaky = alpha.client.post(
        "/api/v1/tasks/",
        {"contractId": str(other_supervisor.contract_id), "name": "me too", "isSupervisor": True},
        format="json",
    )
    assert sneaky.status_code == 404
    assert alpha.client.get(f"/api/v1/tasks/{worker.id}/").status_code == 404
    changed = alpha.client.post(f"/api/v1/tasks/{worker.id}/status/", {"status": "failed"}, format="json")
    assert changed.status_code == 404
    worker.refresh_from_db()
    assert worker.status != "failed"


def test_a_supervisor_whose_task_is_not_the_supervisor_task_belongs_to_nobody(alpha, supervisor):
    """makima may have written a row pointing at a worker task: no daemon owns it (staff can still fix it)."""
    worker = make_task(supervisor.contract, name="worker", daemon=alpha.daemon)
    SupervisorState.objects.filter(pk=supervisor.pk).update(task=worker)
    assert alpha.client.get(url(supervisor.contract_id)).status_code == 404
    beat = alpha.client.post(url(supervisor.contract_id, "heartbeat/"), {"state": "working", "progress": 3}, "json")
    assert beat.status_code == 404
    assert SupervisorState.objects.get(pk=supervisor.pk).progress == 0


@pytest.mark.parametrize(
    "method,tail,body",
    [
        ("patch", "", {"progress": 9}),
        ("post", "phase/", {"phase": "zombie"}),
        ("post", "heartbeat/", {"state": "working", "progress": 9}),
        ("post", "questions/", {"question": "Still there?"}),
    ],
)
def test_a_write_carrying_an_old_epoch_is_superseded_and_changes_nothing(alpha, supervisor, method, tail, body):
    SupervisorState.objects.filter(pk=supervisor.pk).update(restoration_count=2)
    before = SupervisorState.objects.values("phase", "progress", "pending_questions", "updated_at").get(
        pk=supervisor.pk
    )
    response = getattr(alpha.client, method)(
        url(supervisor.contract_id, tail), body, format="json", HTTP_SUPERVISOR_EPOCH="1"
    )
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "superseded"
    assert "Supervisor-Epoch" in response.json()["fields"]
    after = SupervisorState.objects.values("phase", "progress", "pending_questions", "updated_at").get(pk=supervisor.pk)
    assert after == before
    current = getattr(alpha.client, method)(
        url(supervisor.contract_id, tail), body, format="json", HTTP_SUPERVISOR_EPOCH="2"
    )
    assert current.status_code in (200, 201), current.content


@pytest.mark.parametrize("value", ["-1", "one", "1.5", "99999999999", "", "１"])
def test_a_malformed_epoch_header_is_400(alpha, supervisor, value):
    response = alpha.client.patch(
        url(supervisor.contract_id), {"progress": 9}, format="json", HTTP_SUPERVISOR_EPOCH=value
    )
    assert response.status_code == 400
    assert "Supervisor-Epoch" in response.json()["fields"]
    assert SupervisorState.objects.get(pk=supervisor.pk).progress == 0


def test_batch_heartbeat_items_at_an_old_epoch_are_listed_as_not_updated(alpha, supervisor, other_supervisor):
    SupervisorState.objects.filter(pk=supervisor.pk).update(restoration_count=3)
    items = [
        {"contractId": str(supervisor.contract_id), "state": "working", "progress": 40, "epoch": 2},
        {"contractId": str(other_supervisor.contract_id), "state": "working", "progress": 40},
    ]
    response = alpha.client.post("/api/v1/daemons/me/heartbeat/", {"supervisors": items}, format="json")
    assert response.status_code == 200
    assert response.json()["supervisorsUpdated"] == 0
    assert set(response.json()["supervisorsNotUpdated"]) == {
        str(supervisor.contract_id),
        str(other_supervisor.contract_id),
    }
    assert SupervisorState.objects.get(pk=supervisor.pk).progress == 0
    items[0]["epoch"] = 3
    again = alpha.client.post("/api/v1/daemons/me/heartbeat/", {"supervisors": items[:1]}, format="json")
    assert again.json() | {"lastHeartbeatAt": None} == {
        "daemonId": str(alpha.daemon.id),
        "status": "connected",
        "lastHeartbeatAt": None,
        "supervisorsUpdated": 1,
        "supervisorsNotUpdated": [],
    }
    assert SupervisorState.objects.get(pk=supervisor.pk).progress == 40
