"""restore_supervisors killed (SIGKILL) in the middle of a batch; a second run finishes the rest.

Promised: committed pages stay restored, the page in flight vanishes whole,
and after the second run every selected supervisor was restored exactly once:
restoration_count 1, one restoration log row, its new state, never a row
restored without its log or a log without its row.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
from django.conf import settings
from django.db import connection, transaction

from soak.server import ROOT, service_env
from supervisors.models import Contract, RestorationLog, SupervisorState, Task
from tests.factories import make_question

pytestmark = pytest.mark.postgres_only

SUPERVISORS = 1500
BATCH = 20


def seed(count: int) -> list[uuid.UUID]:
    """``count`` interrupted supervisors, each with a pending question, in three bulk INSERTs."""
    contracts = Contract.objects.bulk_create([Contract(name=f"crash {i}", phase="plan") for i in range(count)])
    tasks = Task.objects.bulk_create(
        [Task(contract=c, name="supervisor", is_supervisor=True, status="running") for c in contracts]
    )
    SupervisorState.objects.bulk_create(
        [
            SupervisorState(contract=c, task=t, phase="plan", state="interrupted", pending_questions=[make_question()])
            for c, t in zip(contracts, tasks, strict=True)
        ]
    )
    return [c.id for c in contracts]


def command() -> list[str]:
    return [sys.executable, "manage.py", "restore_supervisors", "--state", "interrupted", "--source", "daemon_restart",
            "--batch-size", str(BATCH), "--reason", "crash test"]  # fmt: skip


def backends(app_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            [app_name],
        )
        return cursor.fetchone()[0]


def waiting_on_lock(app_name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s "
            "AND wait_event_type = 'Lock'",
            [app_name],
        )
        return cursor.fetchone()[0] > 0


def wait_for(predicate, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


def states() -> dict[uuid.UUID, tuple[str, int, str | None]]:
    return {
        row["contract_id"]: (row["state"], row["restoration_count"], row["restoration_source"])
        for row in SupervisorState.objects.values("contract_id", "state", "restoration_count", "restoration_source")
    }


def assert_each_whole(contract_ids: list[uuid.UUID]) -> tuple[int, int]:
    """Every supervisor fully restored once (row and log) or untouched; returns (restored, untouched)."""
    logs = Counter(RestorationLog.objects.values_list("contract_id", flat=True))
    rows = states()
    restored = untouched = 0
    for contract_id in contract_ids:
        state, count, source = rows[contract_id]
        if count == 0:
            assert (state, source, logs.get(contract_id, 0)) == ("interrupted", None, 0), contract_id
            untouched += 1
        else:
            assert (state, count, source, logs.get(contract_id)) == ("waiting_for_user", 1, "daemon_restart", 1), (
                contract_id,
                rows[contract_id],
                logs.get(contract_id),
            )
            restored += 1
    return restored, untouched


def test_a_killed_batch_restore_leaves_nothing_half_done_and_a_rerun_restores_the_rest_once(live_database_url):
    contract_ids = seed(SUPERVISORS)
    first_app, second_app = f"restore-crash-{uuid.uuid4().hex[:6]}", f"restore-rerun-{uuid.uuid4().hex[:6]}"
    env = service_env(
        database_url=f"{live_database_url}?application_name={first_app}", secret_key=settings.SECRET_KEY, port=0
    )
    first = subprocess.Popen(command(), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Let a few pages commit, then block the next page's log INSERT inside its transaction and kill the
        # command right there: mid-batch, with a page's state rows already updated but not committed.
        wait_for(lambda: RestorationLog.objects.count() >= 2 * BATCH, what="the first pages never committed")
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {RestorationLog._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
            committed = RestorationLog.objects.count()
            wait_for(lambda: waiting_on_lock(first_app), what="the command never reached the next page's INSERT")
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
        wait_for(lambda: backends(first_app) == 0, what="the killed command's backend did not go away")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == -signal.SIGKILL
    assert 0 < committed < SUPERVISORS, committed

    restored, untouched = assert_each_whole(contract_ids)
    assert restored == committed and restored % BATCH == 0  # whole pages only
    assert untouched == SUPERVISORS - committed

    env["DATABASE_URL"] = f"{live_database_url}?application_name={second_app}"
    second = subprocess.run(
        [*command(), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads(second.stdout)
    assert summary["counts"]["restored"] == untouched and sum(summary["counts"].values()) == untouched

    restored, untouched = assert_each_whole(contract_ids)
    assert (restored, untouched) == (SUPERVISORS, 0)
    assert RestorationLog.objects.count() == SUPERVISORS
