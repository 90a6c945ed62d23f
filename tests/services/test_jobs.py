"""Periodic jobs and real workers: the watchdog runs without anyone asking, once per slot, in a worker process.

A scheduler enqueues the watchdog when due, and any number of schedulers
enqueue a slot once; a real ``db_worker`` process (started and stopped by the
test) runs an enqueued watchdog job on SQLite and PostgreSQL, and the
database shows its effect.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from supervisors import jobs
from supervisors.enums import DaemonStatus
from supervisors.models import Daemon, PeriodicJob, WatchdogRun
from supervisors.services.scheduler import enqueue_due_jobs
from tests.services.test_watchdog import crashed_daemon, fleet, live_daemon, states_of

ROOT = django_settings.BASE_DIR
DATABASE_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


@pytest.mark.django_db
def test_the_scheduler_enqueues_the_watchdog_once_per_interval(settings, django_capture_on_commit_callbacks):
    settings.WATCHDOG_INTERVAL_SECONDS = 15
    # The notification jobs (every 5 s) are not the subject here: not due within the test's 16 s.
    settings.NOTIFICATIONS_DISPATCH_INTERVAL_SECONDS = settings.NOTIFICATIONS_DELIVER_INTERVAL_SECONDS = 3600
    orphans = fleet(crashed_daemon(), ["working"], "orphan")
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):  # jobs are enqueued on commit
        call_command("run_scheduler", "--once", stdout=out)  # the immediate backend runs the job at once
    assert "enqueued watchdog" in out.getvalue()
    assert states_of(orphans) == ["interrupted"]
    assert WatchdogRun.objects.count() == 1
    # Not due again before the interval is over; due after it.
    with django_capture_on_commit_callbacks(execute=True):
        assert enqueue_due_jobs() == []
        assert enqueue_due_jobs(timezone.now() + timedelta(seconds=16)) == ["watchdog"]
    assert WatchdogRun.objects.count() == 2


@pytest.mark.django_db
def test_a_job_enqueued_on_the_database_backend_waits_for_a_worker(settings):
    settings.TASKS = DATABASE_BACKEND
    result = jobs.watchdog.enqueue()
    row = DBTaskResult.objects.get(pk=result.id)
    assert (row.task_path, row.status) == ("supervisors.jobs.watchdog", "READY")
    assert not WatchdogRun.objects.exists()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_schedulers_racing_enqueue_each_slot_once(settings):
    settings.TASKS = DATABASE_BACKEND
    PeriodicJob.objects.create(name="watchdog", next_run_at=timezone.now() - timedelta(seconds=1))
    # Only the watchdog's slots are raced here; the restore jobs' rescue is not due.
    PeriodicJob.objects.create(name="rescue_restore_jobs", next_run_at=timezone.now() + timedelta(days=1))
    for _ in range(5):
        PeriodicJob.objects.filter(name="watchdog").update(next_run_at=timezone.now() - timedelta(seconds=1))
        barrier = threading.Barrier(4)
        enqueued: list[list[str]] = []

        def tick(barrier: threading.Barrier = barrier, enqueued: list = enqueued) -> None:
            try:
                barrier.wait(timeout=30)
                enqueued.append(enqueue_due_jobs())
            finally:
                connection.close()

        threads = [threading.Thread(target=tick) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(names.count("watchdog") for names in enqueued) == [0, 0, 0, 1]
    assert DBTaskResult.objects.filter(task_path="supervisors.jobs.watchdog").count() == 5


def database_url() -> str:
    """The live test database as a URL a child process can open (SQLite: its file; PostgreSQL: host and name)."""
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    from tests.reliability.conftest import database_url_of

    return database_url_of(settings_dict)


def start_worker() -> subprocess.Popen:
    return start("db_worker", "--no-startup-delay", "--no-reload", "--interval", "0.2")


def start(*command: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """``manage.py <command>`` as a child process in its own session, on the live test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "makima_supervisor.settings",
            "DATABASE_URL": database_url(),
            "SECRET_KEY": django_settings.SECRET_KEY,
            "DEBUG": "false",
            "TASKS_BACKEND": "database",
            "LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
    )
    return subprocess.Popen(
        [sys.executable, "manage.py", *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(worker: subprocess.Popen) -> str:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
    try:
        out, _ = worker.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        out, _ = worker.communicate()
    return out.decode(errors="replace")


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_process_runs_an_enqueued_watchdog_job(settings):
    settings.TASKS = DATABASE_BACKEND
    crashed, alive = crashed_daemon(), live_daemon()
    orphans = fleet(crashed, ["working", "idle", "waiting_for_user"], "orphan")
    kept = fleet(alive, ["working"], "kept")
    result = jobs.watchdog.enqueue()
    worker = start_worker()
    try:
        deadline = time.monotonic() + 20
        while DBTaskResult.objects.get(pk=result.id).status not in ("SUCCESSFUL", "FAILED"):
            assert worker.poll() is None, stop(worker)
            assert time.monotonic() < deadline, "the worker did not run the job within 20 s"
            time.sleep(0.1)
    finally:
        output = stop(worker)
    row = DBTaskResult.objects.get(pk=result.id)
    assert row.status == "SUCCESSFUL", output
    assert row.return_value["supervisors_interrupted"] == 2
    assert worker.returncode == 0, output
    assert states_of(orphans) == ["interrupted", "interrupted", "waiting_for_user"]
    assert states_of(kept) == ["working"]
    assert Daemon.objects.get(pk=crashed.pk).status == DaemonStatus.DISCONNECTED
    run = WatchdogRun.objects.get()
    assert (run.supervisors_interrupted, run.daemons_marked_gone) == (2, 1)


@pytest.mark.django_db(transaction=True)
def test_with_a_scheduler_and_a_worker_running_a_crash_is_noticed_without_anyone_asking(settings):
    """Nobody enqueues anything: the scheduler does, every second here, and the worker runs the watchdog."""
    settings.TASKS = DATABASE_BACKEND
    orphans = fleet(crashed_daemon(), ["working", "waiting_for_tasks"], "orphan")
    kept = fleet(live_daemon(), ["working"], "kept")
    processes = [
        start("run_scheduler", "--tick", "0.2", extra_env={"WATCHDOG_INTERVAL_SECONDS": "1"}),
        start_worker(),
    ]
    try:
        deadline = time.monotonic() + 20
        while states_of(orphans) != ["interrupted", "interrupted"]:
            assert all(p.poll() is None for p in processes), [stop(p) for p in processes]
            assert time.monotonic() < deadline, "the watchdog did not run within 20 s"
            time.sleep(0.1)
        # It keeps running, one run per interval, finding nothing more to do.
        while WatchdogRun.objects.count() < 2:
            assert time.monotonic() < deadline, "the watchdog did not run a second time"
            time.sleep(0.1)
    finally:
        outputs = [stop(p) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert states_of(kept) == ["working"]
    assert sum(WatchdogRun.objects.values_list("supervisors_interrupted", flat=True)) == 2
    assert not DBTaskResult.objects.filter(status="FAILED").exists()
