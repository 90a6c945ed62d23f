"""Restore jobs and the watchdog in real ``manage.py db_worker`` processes, on SQLite and PostgreSQL.

What staff notice: a select-all restore of 5,000 supervisors queued from the
admin finishes in a worker while its page shows the count going up; a worker
killed with SIGKILL in the middle of a job leaves nothing half done, and a
second worker (after the periodic rescue) finishes it with every supervisor
restored exactly once; two workers running the watchdog at once interrupt
each gone daemon's supervisors once.

The processes are started and stopped by the tests (``tests/services/test_jobs.py``'s
helpers: the live test database, the database job backend).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter

import pytest
from django.db.models import Count
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from supervisors import jobs
from supervisors.models import Daemon, RestorationLog, RestoreJob, RestoreJobItem, SupervisorState, WatchdogRun
from tests.services.test_jobs import DATABASE_BACKEND, start, stop
from tests.services.test_watchdog import crashed_daemon, fleet, live_daemon, states_of

pytestmark = pytest.mark.django_db(transaction=True)

LIST = reverse("admin:supervisors_supervisorstate_changelist")
#: A worker polls the queue this often (seconds).
POLL = "0.2"


@pytest.fixture(autouse=True)
def database_jobs(settings):
    """Jobs go to the database queue, for the worker processes; the admin client speaks plain HTTP."""
    settings.TASKS = DATABASE_BACKEND
    settings.SECURE_SSL_REDIRECT = False


def worker(**env: str) -> object:
    return start("db_worker", "--no-startup-delay", "--no-reload", "--interval", POLL, extra_env=env)


def queue_from_the_admin(client, daemon: Daemon, count: int) -> RestoreJob:
    """``count`` interrupted supervisors on a live daemon, all selected in the list and restored: a queued job."""
    rows = fleet(daemon, ["interrupted"] * count, "job")
    data = {
        "action": "restore_selected",
        "select_across": "1",
        "index": "0",
        "_selected_action": [rows[0].pk],
        "post": "yes",
        "reason": "rack 4 lost power",
    }
    response = client.post(f"{LIST}?state__exact=interrupted", data)
    job = RestoreJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("admin:supervisors_restorejob_change", args=[job.pk])
    assert job.total == count
    assert DBTaskResult.objects.filter(task_path="supervisors.jobs.restore_job", status="READY").count() == 1
    return job


def shown_done(client, job: RestoreJob) -> tuple[str, int]:
    """The job's status and done count as its admin page shows them."""
    html = client.get(reverse("admin:supervisors_restorejob_change", args=[job.pk])).content.decode()
    status = re.search(r'id="job-status" data-status="(\w+)"', html).group(1)
    return status, int(re.search(r'data-count="done">(\d+)<', html).group(1))


def exactly_once(job: RestoreJob, count: int) -> None:
    """Every supervisor of the job restored once: restoration_count 1 and one restoration log row each."""
    supervisors = SupervisorState.objects.filter(
        contract_id__in=RestoreJobItem.objects.filter(job=job).values("contract_id")
    )
    assert Counter(supervisors.values_list("restoration_count", flat=True)) == {1: count}
    per_supervisor = Counter(
        RestorationLog.objects.filter(supervisor__in=supervisors)
        .values("supervisor")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    assert per_supervisor == {1: count}
    assert set(RestorationLog.objects.values_list("actor_label", "reason")) == {
        ("staff:admin", f"rack 4 lost power (restore job #{job.pk})")
    }
    assert Counter(RestoreJobItem.objects.filter(job=job).values_list("status", flat=True)) == {"done": count}


def test_a_queued_admin_restore_of_5000_supervisors_completes_with_progress_visible(admin_client):
    job = queue_from_the_admin(admin_client, live_daemon(), 5000)
    assert shown_done(admin_client, job) == ("queued", 0)
    process = worker(RESTORE_JOB_CHUNK_SIZE="100")
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while True:
            status, done = shown_done(admin_client, job)
            if status == "running":
                seen.append(done)
            if status == "done":
                break
            assert process.poll() is None, stop(process)
            assert time.monotonic() < deadline, f"not done within 90 s: {status}, {done} done"
            time.sleep(0.1)
    finally:
        output = stop(process)
    assert process.returncode == 0, output
    # Progress rose while it ran. The last chunk's commit and the job's flip to done are two moments, so
    # "running, 5000 done" can be seen in between: a true state, not a stuck job.
    running = sorted(set(seen))
    assert len(running) >= 2 and running[0] < running[-1] <= 5000, f"progress seen while running: {running}"
    assert shown_done(admin_client, job) == ("done", 5000)
    exactly_once(job, 5000)


def test_a_worker_killed_mid_job_and_a_second_worker_restore_each_supervisor_exactly_once(admin_client):
    count = 3000
    job = queue_from_the_admin(admin_client, live_daemon(), count)
    first = worker(RESTORE_JOB_CHUNK_SIZE="50")
    try:
        deadline = time.monotonic() + 60
        while RestoreJobItem.objects.filter(job=job, status="done").count() < 500:
            assert first.poll() is None, stop(first)
            assert time.monotonic() < deadline, "the first worker made no progress within 60 s"
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    done_at_kill = RestoreJobItem.objects.filter(job=job, status="done").count()
    assert 500 <= done_at_kill < count
    # The task stays RUNNING for ever (django-tasks-db); the job shows running with supervisors left.
    assert DBTaskResult.objects.filter(task_path="supervisors.jobs.restore_job", status="RUNNING").exists()
    assert RestoreJob.objects.get(pk=job.pk).status == "running"
    # Nothing half done: every supervisor is restored (count 1, one log row) exactly when its item is done.
    done_contracts = RestoreJobItem.objects.filter(job=job, status="done").values("contract_id")
    assert SupervisorState.objects.filter(restoration_count=1).count() == done_at_kill
    assert SupervisorState.objects.filter(restoration_count=1, contract_id__in=done_contracts).count() == done_at_kill
    assert RestorationLog.objects.count() == done_at_kill

    stalled = {"RESTORE_JOB_STALLED_AFTER_SECONDS": "1", "RESTORE_JOB_RESCUE_INTERVAL_SECONDS": "1"}
    processes = [
        start("run_scheduler", "--tick", "0.2", extra_env={**stalled, "WATCHDOG_INTERVAL_SECONDS": "3600"}),
        worker(RESTORE_JOB_CHUNK_SIZE="200", **stalled),  # the worker runs the rescue job: it reads the bound
    ]
    try:
        deadline = time.monotonic() + 90
        while RestoreJob.objects.get(pk=job.pk).status != "done":
            assert all(p.poll() is None for p in processes), [stop(p) for p in processes]
            assert time.monotonic() < deadline, "the second worker did not finish the job within 90 s"
            time.sleep(0.1)
    finally:
        outputs = [stop(p) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    job.refresh_from_db()
    assert job.rescues == 0 and job.finished_at is not None
    exactly_once(job, count)
    assert DBTaskResult.objects.filter(task_path="supervisors.jobs.rescue_restore_jobs", status="SUCCESSFUL").exists()


def test_the_watchdog_run_by_two_workers_at_once_interrupts_each_gone_daemons_supervisors_once():
    """Rounds of three crashed daemons and two watchdog jobs, until both workers have run some (at least 4 rounds)."""
    kept = fleet(live_daemon(), ["working"] * 20, "kept")
    orphans: list[SupervisorState] = []
    workers = [worker(), worker()]
    rounds = 0
    try:
        deadline = time.monotonic() + 60
        while rounds < 4 or len(watchdog_workers()) < 2:
            crashed = [crashed_daemon(f"crashed-{rounds}-{i}") for i in range(3)]
            for daemon in crashed:
                orphans += fleet(daemon, ["working", "idle", "waiting_for_tasks", "initializing"] * 50, daemon.name)
            jobs.watchdog.enqueue()
            jobs.watchdog.enqueue()
            rounds += 1
            while DBTaskResult.objects.filter(
                task_path="supervisors.jobs.watchdog", status__in=["READY", "RUNNING"]
            ).exists():
                assert all(p.poll() is None for p in workers), [stop(p) for p in workers]
                assert time.monotonic() < deadline, "the workers did not run the watchdog jobs within 60 s"
                time.sleep(0.05)
    finally:
        outputs = [stop(p) for p in workers]
    assert [p.returncode for p in workers] == [0, 0], outputs
    results = DBTaskResult.objects.filter(task_path="supervisors.jobs.watchdog")
    assert set(results.values_list("status", flat=True)) == {"SUCCESSFUL"}
    runs = WatchdogRun.objects.filter(error="")
    assert runs.count() == 2 * rounds
    assert sum(runs.values_list("supervisors_interrupted", flat=True)) == len(orphans)
    assert sum(runs.values_list("daemons_marked_gone", flat=True)) == 3 * rounds
    recorded = [entry["contract_id"] for run in runs for entry in run.interrupted]
    assert len(recorded) == len(set(recorded))
    assert states_of(orphans) == ["interrupted"] * len(orphans)
    assert states_of(kept) == ["working"] * len(kept)


def watchdog_workers() -> set[str]:
    """The workers that have run a watchdog job so far."""
    rows = DBTaskResult.objects.filter(task_path="supervisors.jobs.watchdog", status="SUCCESSFUL")
    return {worker_id for ids in rows.values_list("worker_ids", flat=True) for worker_id in ids}
