"""The database goes away: connections killed, or the server stopped mid-run.

Promised: the API answers 503 in its JSON error shape (never a 500 page),
/readyz fails while /healthz still answers, nothing half-written remains, and
the service recovers by itself once the database is back, without a restart.
The shared server is never stopped: connections are killed there with
pg_terminate_backend (only this test's server, by application_name), and the
stop/start runs on a private throwaway cluster (soak.pgcluster).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import pytest
from django.conf import settings
from django.db import connection

from soak import pgcluster
from soak.client import Client, Recorder, Reply
from soak.server import ROOT, WebServer, service_env
from supervisors.services.world import create_daemon_key, record_daemon_heartbeat
from tests.factories import make_contract, make_daemon, make_supervisor, make_task

pytestmark = pytest.mark.postgres_only


def assert_unavailable(reply: Reply) -> None:
    """503 in the API's error shape, with a hint when to retry."""
    assert reply.status == 503, reply.body
    assert isinstance(reply.body, dict) and set(reply.body) == {"code", "message", "fields"}, reply.body
    assert reply.body["code"] == "database_unavailable"
    assert reply.headers.get("content-type", "").startswith("application/json")
    assert reply.headers.get("retry-after")


def kill_connections(application_name: str) -> int:
    """pg_terminate_backend on this server's connections only; waits until they are gone."""
    query = (
        "FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid()"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(pg_terminate_backend(pid)) {query}", [application_name])
        (killed,) = cursor.fetchone()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cursor.execute(f"SELECT count(*) {query}", [application_name])
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.05)
    return killed


def test_killed_connections_answer_503_write_nothing_and_recover(live_database_url, tmp_path):
    daemon = make_daemon("fault")
    record_daemon_heartbeat(daemon.id)
    key = create_daemon_key(daemon.id).raw
    supervisor = make_supervisor(make_contract("fault"), daemon=daemon, state="working")
    task = make_task(supervisor.contract, name="spawned", daemon=daemon)
    app_name = f"makima-fault-{uuid.uuid4().hex[:8]}"
    spawn_path = f"/api/v1/contracts/{supervisor.contract_id}/supervisor/spawned-tasks/"

    # One worker with one thread: every request uses the same (persistent) database connection.
    with WebServer(
        database_url=f"{live_database_url}?application_name={app_name}",
        secret_key=settings.SECRET_KEY,
        workers=1,
        threads=1,
        log_path=tmp_path / "server.log",
    ) as server:
        client = Client(server.host, server.port, Recorder(), headers={"Authorization": f"Bearer {key}"})
        beat = {"state": "working", "currentActivity": "x", "progress": 1}
        heartbeat_path = f"/api/v1/contracts/{supervisor.contract_id}/supervisor/heartbeat/"
        assert client.request("POST", heartbeat_path, beat, endpoint="heartbeat").status == 200
        assert server.get_status("/readyz") == 200

        assert kill_connections(app_name) == 1
        assert server.get_status("/readyz") == 503  # the probe notices...
        assert server.get_status("/healthz") == 200  # ...while the process itself is fine
        assert server.get_status("/readyz") == 200  # and the next probe has reconnected by itself

        assert kill_connections(app_name) == 1
        reply = client.request("POST", spawn_path, {"taskId": str(task.id)}, endpoint="spawn", expect=(503,))
        assert_unavailable(reply)
        supervisor.refresh_from_db()
        assert task.id not in supervisor.spawned_task_ids  # nothing written

        reply = client.request("POST", spawn_path, {"taskId": str(task.id)}, endpoint="spawn")
        assert reply.status == 200, reply.body  # recovered without a restart
        supervisor.refresh_from_db()
        assert supervisor.spawned_task_ids.count(task.id) == 1
        client.close()


@pytest.fixture
def private_cluster():
    reason = pgcluster.available()
    if reason:
        pytest.skip(reason)
    with pgcluster.PrivateCluster() as cluster:
        yield cluster


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


class Load:
    """Daemon traffic in a few threads: create a task and record its spawn, ask questions; every outcome kept."""

    def __init__(self, server: WebServer, key: str, contract_id: str, threads: int = 3) -> None:
        self.server, self.key, self.contract_id = server, key, contract_id
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes: list[tuple[float, str, Reply]] = []
        self.spawns: dict[str, int] = {}  # task id -> status of its spawn request
        self.questions: dict[str, int] = {}  # question id -> status
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def run(self) -> None:
        client = Client(self.server.host, self.server.port, Recorder(), headers={"Authorization": f"Bearer {self.key}"})
        sup = f"/api/v1/contracts/{self.contract_id}/supervisor/"
        while not self.stop.is_set():
            reply = self.send(client, "POST", "/api/v1/tasks/", {"contractId": self.contract_id, "name": "t"}, "task")
            if reply.status == 201:
                task_id = reply.body["id"]
                reply = self.send(client, "POST", sup + "spawned-tasks/", {"taskId": task_id}, "spawn")
                with self.lock:
                    self.spawns[task_id] = reply.status
            qid = str(uuid.uuid4())
            reply = self.send(client, "POST", sup + "questions/", {"id": qid, "question": "ok?"}, "ask")
            with self.lock:
                self.questions[qid] = reply.status
            time.sleep(0.01)
        client.close()

    def send(self, client: Client, method: str, path: str, body, label: str) -> Reply:
        reply = client.request(method, path, body, endpoint=label, expect=(200, 201, 503))
        with self.lock:
            self.outcomes.append((time.monotonic(), label, reply))
        return reply


def test_server_stopped_mid_run_answers_503_keeps_every_write_whole_and_recovers(private_cluster, tmp_path):
    cluster = private_cluster
    cluster.create_database("makima_fault")
    url = cluster.url("makima_fault")
    env = service_env(database_url=url, secret_key=settings.SECRET_KEY, port=0)
    manage(env, "migrate", "--verbosity", "0")
    key = manage(env, "create_daemon_key", "fault-daemon", "--create-daemon")

    with WebServer(
        database_url=url, secret_key=settings.SECRET_KEY, workers=2, threads=4, log_path=tmp_path / "server.log"
    ) as server:
        setup = Client(server.host, server.port, Recorder(), headers={"Authorization": f"Bearer {key}"})
        daemon_id = setup.request("POST", "/api/v1/daemons/me/heartbeat/", {}, endpoint="beat").body["daemonId"]
        contract = setup.request(
            "POST", "/api/v1/contracts/", {"name": "f", "phase": "plan"}, endpoint="c", expect=(201,)
        )
        contract_id = contract.body["id"]
        task = setup.request(
            "POST",
            "/api/v1/tasks/",
            {
                "contractId": contract_id,
                "name": "sup",
                "isSupervisor": True,
                "daemonId": daemon_id,
                "status": "running",
            },
            endpoint="t",
            expect=(201,),
        )
        put = setup.request(
            "PUT",
            f"/api/v1/contracts/{contract_id}/supervisor/",
            {"taskId": task.body["id"], "phase": "plan", "state": "working"},
            endpoint="put",
            expect=(201,),
        )
        assert put.status == 201, put.body

        with Load(server, key, contract_id) as load:
            time.sleep(1.0)
            cluster.stop("immediate")  # a crash: in-flight transactions vanish
            stopped_at = time.monotonic()
            time.sleep(1.5)
            assert server.get_status("/readyz") == 503
            assert server.get_status("/healthz") == 200
            cluster.start()
            server.wait_until(lambda status: status == 200, path="/readyz", timeout=30)
            back_at = time.monotonic()
            time.sleep(1.5)

    statuses = Counter(reply.status for _, _, reply in load.outcomes)
    assert set(statuses) <= {200, 201, 503}, statuses  # no 500, no dropped request
    assert statuses[503] > 0, "the outage was not noticed"
    for _, _, reply in load.outcomes:
        if reply.status == 503:
            assert_unavailable(reply)
    during = [reply.status for at, _, reply in load.outcomes if stopped_at + 0.2 < at < back_at - 0.2]
    assert during and all(status == 503 for status in during)
    after = [reply.status for at, _, reply in load.outcomes if at > back_at]
    assert len(after) >= 10 and all(status in (200, 201) for status in after[-10:]), after  # recovered by itself

    # Nothing half-written: what was acknowledged is there once, nothing unknown, and the row agrees with the
    # checkpoint its save point wrote in the same transaction.
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
        spawned, questions, state_id = conn.execute(
            "SELECT spawned_task_ids, pending_questions, id FROM supervisor_states WHERE contract_id = %s",
            [contract_id],
        ).fetchone()
        checkpoint = conn.execute(
            "SELECT spawned_task_ids, pending_questions FROM supervisor_checkpoints WHERE supervisor_id = %s "
            "ORDER BY id DESC LIMIT 1",
            [state_id],
        ).fetchone()
    spawned = [str(t) for t in spawned]
    pending_ids = [q["id"] for q in questions]
    assert len(spawned) == len(set(spawned)) and len(pending_ids) == len(set(pending_ids))
    assert {t for t, status in load.spawns.items() if status == 200} <= set(spawned)
    assert set(spawned) <= set(load.spawns)
    assert {q for q, status in load.questions.items() if status == 201} <= set(pending_ids)
    assert set(pending_ids) <= set(load.questions)
    assert [str(t) for t in checkpoint[0]] == spawned
    assert [q["id"] for q in checkpoint[1]] == pending_ids
