"""Restore jobs as the service runs them: each supervisor once, logged with the staff user and the job, cancel, rescue.

The worker processes themselves are in tests/jobs/; here the job runs in the
test's process (``run_restore_job``), which is what a worker calls.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from supervisors.enums import RestoreJobItemStatus, RestoreJobStatus
from supervisors.models import RestorationLog, RestoreJob, RestoreJobItem, SupervisorEvent, SupervisorState
from supervisors.selectors import restore_job_progress
from supervisors.services.actors import Actor
from supervisors.services.errors import Conflict, InvalidInput, NotFound
from supervisors.services.restore_jobs import (
    cancel_restore_job,
    queue_restore_job,
    rescue_stalled_restore_jobs,
    run_restore_job,
)
from tests.services.test_watchdog import fleet

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss() -> User:
    return User.objects.create_superuser("boss", password="pw")


def queue(boss: User, states: list[str], kind: str = "restore", **kwargs) -> tuple[RestoreJob, list[SupervisorState]]:
    rows = fleet(None, states, kind)
    selection = SupervisorState.objects.filter(pk__in=[r.pk for r in rows])
    job, created = queue_restore_job(selection, kind=kind, reason="daemon-7 died", requested_by=boss, **kwargs)
    assert created
    return job, rows


def test_a_job_restores_each_supervisor_once_logged_with_the_staff_user_and_the_job(
    boss, django_capture_on_commit_callbacks
):
    job, rows = queue(boss, ["interrupted"] * 7 + ["completed"])
    assert (job.status, job.total) == ("queued", 8)
    assert RestoreJobItem.objects.filter(job=job, status="pending").count() == 8
    summary = run_restore_job(job.pk, chunk_size=3)
    assert summary.status == "done"
    job.refresh_from_db()
    assert job.status == "done" and job.finished_at is not None and job.started_at is not None
    counts = dict(RestoreJobItem.objects.filter(job=job).values_list("status").annotate(n=Count("id")))
    assert counts == {"done": 7, "skipped": 1}
    assert (
        list(
            SupervisorState.objects.filter(pk__in=[r.pk for r in rows])
            .values_list("restoration_count", flat=True)
            .order_by("restoration_count")
        )
        == [0] + [1] * 7
    )
    logs = RestorationLog.objects.filter(outcome="restored")
    assert logs.count() == 7
    assert {(log.actor_user_id, log.actor_label, log.reason) for log in logs} == {
        (boss.pk, "staff:boss", f"daemon-7 died (restore job #{job.pk})")
    }
    assert LogEntry.objects.filter(user=boss, change_message__contains=f"Restore job #{job.pk}").count() == 8
    # Running it again restores nothing more.
    assert run_restore_job(job.pk).status == "done"
    assert RestorationLog.objects.filter(outcome="restored").count() == 7


def test_start_fresh_and_mark_interrupted_jobs(boss):
    fresh, rows = queue(boss, ["working", "working"], kind="fresh")
    run_restore_job(fresh.pk)
    assert set(RestorationLog.objects.values_list("outcome", flat=True)) == {"started_fresh"}
    interrupt, rows = queue(boss, ["working", "idle", "waiting_for_user", "blocked"], kind="interrupt")
    run_restore_job(interrupt.pk)
    states = [SupervisorState.objects.get(pk=r.pk).state for r in rows]
    assert states == ["interrupted", "interrupted", "waiting_for_user", "blocked"]
    outcomes = list(RestoreJobItem.objects.filter(job=interrupt).order_by("id").values_list("status", "outcome"))
    assert sorted(outcomes) == sorted([("done", "interrupted")] * 2 + [("skipped", "left_as_it_was")] * 2)
    # The timeline of each supervisor marked says who and why; the ones left as they were got no event.
    events = SupervisorEvent.objects.filter(kind="interrupted")
    assert sorted(events.values_list("supervisor_id", flat=True)) == sorted(r.pk for r in rows[:2])
    assert {(e.actor_kind, e.actor_user_id) for e in events} == {("staff", boss.pk)}
    assert all(e.details["reason"].endswith(f"(restore job #{interrupt.pk})") for e in events)


def test_progress_counts_done_failed_and_remaining(boss):
    job, _ = queue(boss, ["interrupted"] * 5)
    progress = restore_job_progress(job)
    assert (progress.total, progress.done, progress.remaining) == (5, 0, 5)
    run_restore_job(job.pk)
    job.refresh_from_db()
    progress = restore_job_progress(job)
    assert (progress.done, progress.failed, progress.skipped, progress.remaining) == (5, 0, 0, 0)
    assert progress.by_outcome == {"restored": 5}


def test_bad_requests_are_refused_and_queue_nothing(boss):
    with pytest.raises(InvalidInput):
        queue_restore_job(SupervisorState.objects.none(), kind="restore", reason="x", requested_by=boss)
    rows = fleet(None, ["working"], "w")
    selection = SupervisorState.objects.filter(pk=rows[0].pk)
    with pytest.raises(InvalidInput):
        queue_restore_job(selection, kind="explode", reason="x", requested_by=boss)
    with pytest.raises(InvalidInput):
        queue_restore_job(selection, kind="restore", reason="   ", requested_by=boss)
    with pytest.raises(InvalidInput):
        queue_restore_job(selection, kind="restore", reason="nul \x00", requested_by=boss)
    assert not RestoreJob.objects.exists() and not RestoreJobItem.objects.exists()


def test_the_same_form_submitted_twice_queues_one_job(boss):
    rows = fleet(None, ["working"] * 3, "w")
    selection = SupervisorState.objects.filter(pk__in=[r.pk for r in rows])
    token = uuid.uuid4()
    first, created = queue_restore_job(selection, kind="restore", reason="x", requested_by=boss, token=token)
    again, created_again = queue_restore_job(selection, kind="restore", reason="x", requested_by=boss, token=token)
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert RestoreJob.objects.count() == 1


def test_cancel_skips_what_is_left_and_keeps_what_is_done(boss):
    job, _ = queue(boss, ["interrupted"] * 10)
    run_restore_job(job.pk, chunk_size=4, slice_seconds=0)  # one chunk, then hands over
    job.refresh_from_db()
    assert job.status == "queued"
    cancelled = cancel_restore_job(job.pk, actor=Actor.staff(boss))
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    statuses = dict(RestoreJobItem.objects.filter(job=job).values_list("status").annotate(n=Count("id")))
    assert statuses == {"done": 4, "skipped": 6}
    assert set(RestoreJobItem.objects.filter(job=job, status="skipped").values_list("outcome", flat=True)) == {
        "cancelled"
    }
    # The handed-over run comes along later and does nothing.
    assert run_restore_job(job.pk).status == "cancelled"
    assert RestorationLog.objects.count() == 4
    with pytest.raises(Conflict) as finished:
        cancel_restore_job(job.pk, actor=Actor.staff(boss))
    assert finished.value.code == "job_finished"
    with pytest.raises(NotFound):
        cancel_restore_job(999_999, actor=Actor.staff(boss))


def test_a_running_worker_notices_a_cancel_between_chunks(boss):
    job, _ = queue(boss, ["interrupted"] * 6)
    RestoreJob.objects.filter(pk=job.pk).update(status=RestoreJobStatus.CANCELLING)
    summary = run_restore_job(job.pk, chunk_size=2)
    assert summary.status == "cancelled"
    assert not RestoreJobItem.objects.filter(job=job, status=RestoreJobItemStatus.DONE).exists()


def test_a_stalled_running_job_is_enqueued_again_and_given_up_after_too_many_rescues(
    boss, settings, django_capture_on_commit_callbacks
):
    settings.RESTORE_JOB_STALLED_AFTER_SECONDS = 60
    settings.RESTORE_JOB_MAX_RESCUES = 2
    job, rows = queue(boss, ["interrupted"] * 3)
    # A worker took it up and died: running, items pending, no progress for two minutes.
    RestoreJob.objects.filter(pk=job.pk).update(
        status="running", last_progress_at=timezone.now() - timedelta(minutes=2)
    )
    with django_capture_on_commit_callbacks(execute=True):  # the immediate backend runs the re-enqueued job
        report = rescue_stalled_restore_jobs()
    assert report.rescued == [job.pk]
    job.refresh_from_db()
    assert job.status == "done"
    assert list(
        SupervisorState.objects.filter(pk__in=[r.pk for r in rows]).values_list("restoration_count", flat=True)
    ) == [1, 1, 1]
    # A fresh job is not stalled; a queued one whose run was lost is enqueued again, without counting a rescue.
    other, _ = queue(boss, ["interrupted"])
    assert rescue_stalled_restore_jobs().rescued == []
    RestoreJob.objects.filter(pk=other.pk).update(last_progress_at=timezone.now() - timedelta(minutes=2))
    with django_capture_on_commit_callbacks(execute=False):
        assert rescue_stalled_restore_jobs().rescued == [other.pk]
    assert RestoreJob.objects.get(pk=other.pk).rescues == 0
    # Rescued again and again without progress: given up, the rest skipped.
    for _ in range(3):
        RestoreJob.objects.filter(pk=other.pk).update(
            status="running", last_progress_at=timezone.now() - timedelta(minutes=2)
        )
        with django_capture_on_commit_callbacks(execute=False):
            report = rescue_stalled_restore_jobs()
    assert report.given_up == [other.pk]
    other.refresh_from_db()
    assert other.status == "failed" and "given up" in other.error


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_runs_of_one_job_at_once_restore_each_supervisor_once():
    boss = User.objects.create_superuser("boss", password="pw")
    for round_ in range(3):
        rows = fleet(None, ["interrupted"] * 300, f"r{round_}")
        selection = SupervisorState.objects.filter(pk__in=[r.pk for r in rows])
        job, _ = queue_restore_job(selection, kind="restore", reason="race", requested_by=boss)
        barrier = threading.Barrier(3)
        errors: list[BaseException] = []

        def run(barrier: threading.Barrier = barrier, job_id: int = job.pk, errors: list = errors) -> None:
            try:
                barrier.wait(timeout=30)
                run_restore_job(job_id, chunk_size=10)
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=run) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors[0]
        job.refresh_from_db()
        assert job.status == "done"
        counts = list(selection.values_list("restoration_count", flat=True))
        assert counts == [1] * 300
        assert RestorationLog.objects.filter(supervisor__in=selection).count() == 300


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_supervisor_another_transaction_holds_for_a_moment_is_waited_for_not_skipped():
    """A heartbeat's row lock lasts a moment: the job waits for it instead of reporting "locked by another run"."""
    from django.db import transaction

    boss = User.objects.create_superuser("boss", password="pw")
    rows = fleet(None, ["interrupted"] * 5, "held")
    job, _ = queue_restore_job(
        SupervisorState.objects.filter(pk__in=[r.pk for r in rows]), kind="restore", reason="x", requested_by=boss
    )
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                SupervisorState.objects.select_for_update().get(pk=rows[2].pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(timeout=30)
    threading.Timer(0.5, release.set).start()
    run_restore_job(job.pk)
    holder.join(timeout=30)
    assert Counter(RestoreJobItem.objects.filter(job=job).values_list("status", flat=True)) == {"done": 5}
    assert (
        list(SupervisorState.objects.filter(pk__in=[r.pk for r in rows]).values_list("restoration_count", flat=True))
        == [1] * 5
    )


def test_finished_jobs_older_than_the_keep_days_are_forgotten_with_their_items(boss, settings):
    settings.RESTORE_JOB_KEEP_DAYS = 30
    old, _ = queue(boss, ["interrupted"] * 2)
    run_restore_job(old.pk)
    RestoreJob.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=31))
    recent, _ = queue(boss, ["interrupted"] * 2)
    run_restore_job(recent.pk)
    unfinished, _ = queue(boss, ["interrupted"])
    RestoreJob.objects.filter(pk=unfinished.pk).update(created_at=timezone.now() - timedelta(days=60))
    assert rescue_stalled_restore_jobs().forgotten == 1
    assert set(RestoreJob.objects.values_list("pk", flat=True)) == {recent.pk, unfinished.pk}
    assert not RestoreJobItem.objects.filter(job_id=old.pk).exists()
    assert RestorationLog.objects.count() == 4  # the restoration log keeps every restoration
