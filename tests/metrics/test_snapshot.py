"""The supervisor figures: computed by a job the scrapes ask for, served from its snapshot, never too old."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from supervisors.enums import SupervisorStatus
from supervisors.metrics.domain import QUERIES_PER_SCRAPE
from supervisors.metrics.snapshot import NAME, refresh_supervisor_figures
from supervisors.models import MetricsSnapshot
from tests.factories import make_contract, make_question, make_supervisor
from tests.metrics.conftest import parse, value

pytestmark = pytest.mark.django_db

DATABASE_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def scrape_counting() -> tuple[dict, int]:
    with CaptureQueriesContext(connection) as queries:
        response = Client().get("/metrics")
    assert response.status_code == 200
    return parse(response.content.decode()), len(queries.captured_queries)


def test_without_a_snapshot_the_scrape_computes_and_stores_the_figures(db):
    make_supervisor(make_contract("a"), state=SupervisorStatus.WORKING)
    samples, queries = scrape_counting()
    assert value(samples, "makima_supervisors", state="working") == 1
    assert queries == QUERIES_PER_SCRAPE + 2  # the pass over supervisor_states, and storing it
    assert MetricsSnapshot.objects.get(name=NAME).figures["by_state"] == {"working": 1}
    assert value(samples, "makima_supervisor_figures_age_seconds") < 5


def test_a_fresh_snapshot_is_served_as_it_is(db, settings):
    settings.METRICS_REFRESH_SECONDS = 60
    refresh_supervisor_figures()
    make_supervisor(make_contract("later"), state=SupervisorStatus.BLOCKED, error_message="x")
    samples, queries = scrape_counting()
    assert queries == QUERIES_PER_SCRAPE
    assert value(samples, "makima_supervisors", state="blocked") == 0  # not yet: the snapshot predates it


def test_a_due_snapshot_asks_the_job_once_and_the_job_brings_it_up_to_date(
    db, settings, django_capture_on_commit_callbacks
):
    settings.METRICS_REFRESH_SECONDS = 15
    refresh_supervisor_figures()
    MetricsSnapshot.objects.update(computed_at=timezone.now() - timedelta(seconds=20))
    make_supervisor(make_contract("new"), state=SupervisorStatus.FAILED, error_message="x")
    make_supervisor(make_contract("asks"), pending_questions=[make_question()])
    with django_capture_on_commit_callbacks(execute=True):  # the immediate job backend runs the job at once
        samples, queries = scrape_counting()
    assert value(samples, "makima_supervisors", state="failed") == 0  # this scrape serves what it read
    assert queries == QUERIES_PER_SCRAPE + 1  # claiming the refresh; the job is enqueued on commit
    samples, queries = scrape_counting()
    assert queries == QUERIES_PER_SCRAPE
    assert value(samples, "makima_supervisors", state="failed") == 1
    assert value(samples, "makima_supervisors_needing_person") == 1
    assert value(samples, "makima_pending_questions") == 1


def test_many_scrapes_of_a_due_snapshot_enqueue_one_job(db, settings, django_capture_on_commit_callbacks):
    settings.TASKS = DATABASE_BACKEND
    settings.METRICS_REFRESH_SECONDS = 15
    refresh_supervisor_figures()
    MetricsSnapshot.objects.update(computed_at=timezone.now() - timedelta(seconds=20))
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            scrape_counting()
    jobs = DBTaskResult.objects.filter(task_path="supervisors.jobs.refresh_metrics")
    assert [job.status for job in jobs] == ["READY"]


def test_a_snapshot_nobody_refreshed_for_too_long_is_recomputed_by_the_scrape(db, settings):
    """No job worker running: the figures are never older than METRICS_SNAPSHOT_MAX_AGE_SECONDS."""
    settings.METRICS_SNAPSHOT_MAX_AGE_SECONDS = 300
    refresh_supervisor_figures()
    MetricsSnapshot.objects.update(computed_at=timezone.now() - timedelta(seconds=301))
    make_supervisor(make_contract("new"), state=SupervisorStatus.IDLE)
    samples, queries = scrape_counting()
    assert value(samples, "makima_supervisors", state="idle") == 1
    assert value(samples, "makima_supervisor_figures_age_seconds") < 5
    assert queries == QUERIES_PER_SCRAPE + 2


def test_refresh_jobs_that_piled_up_while_no_worker_ran_do_the_pass_once(db, settings):
    from supervisors import jobs

    settings.METRICS_REFRESH_SECONDS = 15
    MetricsSnapshot.objects.all().delete()
    make_supervisor(make_contract("a"), state=SupervisorStatus.WORKING)
    results = [jobs.refresh_metrics.call() for _ in range(4)]
    assert [r.get("skipped", 0) for r in results] == [0, 1, 1, 1]
    assert MetricsSnapshot.objects.get(name=NAME).figures["by_state"] == {"working": 1}
