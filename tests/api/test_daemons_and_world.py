"""A daemon's own heartbeat (with its supervisors'), contracts and tasks, and the health endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from supervisors.models import Daemon, SupervisorState, Task
from tests.api.conftest import url
from tests.factories import make_contract, make_supervisor

pytestmark = pytest.mark.django_db

ME = "/api/v1/daemons/me/heartbeat/"


def test_daemon_heartbeat_marks_it_connected(alpha):
    Daemon.objects.filter(pk=alpha.daemon.pk).update(status="disconnected", last_heartbeat_at=None)
    response = alpha.client.post(ME, {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["daemonId"] == str(alpha.daemon.id)
    alpha.daemon.refresh_from_db()
    assert alpha.daemon.status == "connected" and alpha.daemon.last_heartbeat_at is not None


def test_daemon_says_goodbye(alpha):
    alpha.client.post(ME, {"status": "disconnected"}, format="json")
    alpha.daemon.refresh_from_db()
    assert alpha.daemon.status == "disconnected"


def test_daemon_heartbeat_carries_its_supervisors_in_one_statement(alpha, supervisor, other_supervisor):
    mine = [supervisor] + [make_supervisor(make_contract(f"c{i}"), daemon=alpha.daemon) for i in range(5)]
    items = [
        {"contractId": str(s.contract_id), "state": "working", "currentActivity": f"a{i}", "progress": i}
        for i, s in enumerate(mine)
    ]
    items.append({"contractId": str(other_supervisor.contract_id), "state": "failed", "progress": 99})
    alpha.client.post(ME, {}, format="json")  # warm the key cache
    with CaptureQueriesContext(connection) as queries:
        response = alpha.client.post(ME, {"supervisors": items}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["supervisorsUpdated"] == 6
    updates = [q for q in queries if 'UPDATE "supervisor_states"' in q["sql"]]
    assert len(updates) == 1
    # rate counter, then daemon row and supervisors in one statement (PostgreSQL) or two (SQLite)
    assert len(queries) <= (2 if connection.vendor == "postgresql" else 3), [q["sql"] for q in queries]
    states = dict(SupervisorState.objects.values_list("contract_id", "progress"))
    assert [states[s.contract_id] for s in mine] == list(range(6))
    assert states[other_supervisor.contract_id] == 0


def test_daemon_heartbeat_bad_items_are_400(alpha, supervisor):
    bad = {"supervisors": [{"contractId": "nope", "state": "working", "progress": 1}]}
    response = alpha.client.post(ME, bad, format="json")
    assert response.status_code == 400
    assert "supervisors.0.contractId" in response.json()["fields"]


def test_staff_has_no_daemon_heartbeat(staff):
    assert staff.post(ME, {}, format="json").status_code == 403


def test_contract_and_task_lifecycle_as_a_daemon(alpha):
    contract = alpha.client.post("/api/v1/contracts/", {"name": "Build it", "phase": "plan"}, format="json")
    assert contract.status_code == 201, contract.content
    contract_id = contract.json()["id"]
    task = alpha.client.post(
        "/api/v1/tasks/",
        {"contractId": contract_id, "name": "supervisor", "isSupervisor": True, "daemonId": str(alpha.daemon.id)},
        format="json",
    )
    assert task.status_code == 201, task.content
    task_id = task.json()["id"]
    state = {"taskId": task_id, "phase": "plan", "state": "initializing"}
    assert alpha.client.put(url(contract_id), state, format="json").status_code == 201
    assert alpha.client.get(f"/api/v1/contracts/{contract_id}/").json()["name"] == "Build it"
    done = alpha.client.post(f"/api/v1/tasks/{task_id}/status/", {"status": "done"}, format="json")
    assert done.status_code == 200
    assert done.json()["status"] == "done" and done.json()["completedAt"]
    assert alpha.client.get(f"/api/v1/tasks/{task_id}/").json()["status"] == "done"


def test_contracts_and_tasks_of_other_daemons_are_404(alpha, other_supervisor):
    assert alpha.client.get(f"/api/v1/contracts/{other_supervisor.contract_id}/").status_code == 404
    assert alpha.client.get(f"/api/v1/tasks/{other_supervisor.task_id}/").status_code == 404
    status = alpha.client.post(f"/api/v1/tasks/{other_supervisor.task_id}/status/", {"status": "done"}, format="json")
    assert status.status_code == 404
    task = alpha.client.post(
        "/api/v1/tasks/", {"contractId": str(other_supervisor.contract_id), "name": "sneaky"}, format="json"
    )
    assert task.status_code == 404
    assert not Task.objects.filter(name="sneaky").exists()


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "x", "phase": "p" * 51}, "phase"),
        ({"name": "x", "phase": "plan", "status": "paused"}, "status"),
        ({"phase": "plan"}, "name"),
    ],
)
def test_bad_contracts_are_400(alpha, body, field):
    response = alpha.client.post("/api/v1/contracts/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_task_status_must_be_known(alpha, supervisor):
    response = alpha.client.post(f"/api/v1/tasks/{supervisor.task_id}/status/", {"status": "exploded"}, format="json")
    assert response.status_code == 400
    assert "status" in response.json()["fields"]


def test_task_of_unknown_contract_is_404(alpha):
    response = alpha.client.post("/api/v1/tasks/", {"contractId": str(uuid.uuid4()), "name": "x"}, format="json")
    assert response.status_code == 404


def test_healthz_and_readyz(client, settings):
    settings.SECURE_SSL_REDIRECT = False
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"


def test_readyz_is_503_when_the_database_does_not_answer():
    """A real process pointed at a PostgreSQL port where nothing listens."""
    script = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client().get('/readyz', secure=True); print(json.dumps([r.status_code, r.json()]))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "makima_supervisor.test_settings",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere",
        "DB_CONNECT_TIMEOUT": "2",
        "ALLOWED_HOSTS": "testserver",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, cwd=settings.BASE_DIR
    )
    status, body = json.loads(done.stdout.strip().splitlines()[-1])
    assert status == 503 and body["status"] == "unavailable"
