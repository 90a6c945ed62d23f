"""The domain gauges of /metrics agree with the database, at a fixed number of queries per scrape."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from supervisors.enums import ActorKind, RecoveryAction, RestorationOutcome, RestorationSource, SupervisorStatus
from supervisors.metrics.domain import QUERIES_PER_SCRAPE
from supervisors.models import Daemon, RestorationLog, SupervisorState, WatchdogRun
from supervisors.selectors import stale_supervisors
from supervisors.services.claims import CLAIM_REASON
from supervisors.services.ownership import is_daemon_gone
from tests.factories import make_contract, make_daemon, make_question, make_supervisor
from tests.metrics.conftest import value

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def _log(source: str, outcome: str, *, minutes_ago: float, reason: str = "") -> RestorationLog:
    return RestorationLog.objects.create(
        contract_id=uuid.uuid4(),
        started_at=NOW - timedelta(minutes=minutes_ago),
        source=source,
        actor_kind=ActorKind.DAEMON if source != RestorationSource.MANUAL else ActorKind.STAFF,
        reason=reason,
        recovery_action=RecoveryAction.PROCEED,
        success=outcome != RestorationOutcome.FAILED,
        outcome=outcome,
    )


def _job(status: str, *, minutes_ago: float, queue: str = "default") -> None:
    job = DBTaskResult.objects.create(
        status=status,
        args_kwargs={"args": [], "kwargs": {}},
        task_path="supervisors.jobs.run_watchdog",
        queue_name=queue,
        backend_name="default",
        run_after=NOW,
        exception_class_path="",
        traceback="",
    )
    DBTaskResult.objects.filter(pk=job.pk).update(enqueued_at=NOW - timedelta(minutes=minutes_ago))


@pytest.fixture
def world():
    """Supervisors in every interesting condition, daemons alive and gone, logs, watchdog runs, jobs."""
    global NOW
    NOW = timezone.now()  # the tests' "now", not the module's import time
    alive = make_daemon("alive", last_heartbeat_at=NOW, status="connected")
    make_daemon("silent", last_heartbeat_at=NOW - timedelta(hours=1), status="connected")
    make_daemon("left", last_heartbeat_at=NOW, status="disconnected")
    long_ago = NOW - timedelta(hours=2)
    make_supervisor(make_contract("working"), daemon=alive, state=SupervisorStatus.WORKING, last_activity=NOW)
    make_supervisor(make_contract("stale"), daemon=alive, state=SupervisorStatus.WORKING, last_activity=long_ago)
    make_supervisor(make_contract("stale tasks"), state=SupervisorStatus.WAITING_FOR_TASKS, last_activity=long_ago)
    # Waiting for a human for hours is not stale; its oldest question is asked in another time zone.
    oldest = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    make_supervisor(
        make_contract("asking"),
        state=SupervisorStatus.WAITING_FOR_USER,
        last_activity=long_ago,
        pending_questions=[
            make_question("first", askedAt="2026-01-02T05:04:05+02:00"),  # == oldest
            make_question("second", askedAt=(oldest + timedelta(hours=1)).isoformat()),
        ],
    )
    make_supervisor(
        make_contract("asking too"),
        state=SupervisorStatus.WAITING_FOR_USER,
        pending_questions=[make_question("third", askedAt="2026-03-01T00:00:00Z")],
    )
    # A question whose askedAt no clock can read is still counted as pending.
    make_supervisor(
        make_contract("garbled"),
        state=SupervisorStatus.BLOCKED,
        error_message="x",
        pending_questions=[make_question("fourth", askedAt="yesterday")],
    )
    make_supervisor(make_contract("failed"), state=SupervisorStatus.FAILED, error_message="boom")
    make_supervisor(make_contract("done"), state=SupervisorStatus.COMPLETED)
    _log(RestorationSource.DAEMON_RESTART, RestorationOutcome.RESTORED, minutes_ago=5)
    _log(RestorationSource.DAEMON_RESTART, RestorationOutcome.RESTORED, minutes_ago=6)
    _log(RestorationSource.TASK_REASSIGNMENT, RestorationOutcome.RESTORED, minutes_ago=1, reason=CLAIM_REASON)
    _log(RestorationSource.TASK_REASSIGNMENT, RestorationOutcome.NEEDS_PERSON, minutes_ago=2, reason=CLAIM_REASON)
    _log(RestorationSource.TASK_REASSIGNMENT, RestorationOutcome.STARTED_FRESH, minutes_ago=3, reason="resume")
    _log(RestorationSource.MANUAL, RestorationOutcome.FAILED, minutes_ago=10)
    _log(RestorationSource.MANUAL, RestorationOutcome.RESTORED, minutes_ago=24 * 60)  # outside the window
    WatchdogRun.objects.create(started_at=NOW - timedelta(minutes=30), finished_at=NOW - timedelta(minutes=30))
    WatchdogRun.objects.create(started_at=NOW - timedelta(minutes=20), error="OperationalError: gone")
    WatchdogRun.objects.create(
        started_at=NOW - timedelta(seconds=20),
        finished_at=NOW - timedelta(seconds=19),
        daemons_marked_gone=2,
        supervisors_interrupted=3,
    )
    _job(TaskResultStatus.READY, minutes_ago=7)
    _job(TaskResultStatus.READY, minutes_ago=1)
    _job(TaskResultStatus.RUNNING, minutes_ago=1)
    _job(TaskResultStatus.SUCCESSFUL, minutes_ago=30)
    _job(TaskResultStatus.READY, minutes_ago=2, queue="mail")


def test_supervisor_gauges_agree_with_the_database(world, scrape):
    samples = scrape()
    for state in SupervisorStatus.values:
        assert value(samples, "makima_supervisors", state=state) == SupervisorState.objects.filter(state=state).count()
    assert value(samples, "makima_supervisors_stale") == stale_supervisors().count() == 2
    needing = SupervisorState.objects.filter(state__in=["blocked", "failed"]).count()
    assert value(samples, "makima_supervisors_needing_person") == needing == 2
    assert value(samples, "makima_pending_questions") == 4
    assert value(samples, "makima_supervisors_with_pending_questions") == 3
    expected_age = (timezone.now() - datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)).total_seconds()
    assert value(samples, "makima_pending_question_oldest_age_seconds") == pytest.approx(expected_age, abs=5)
    for source in ("supervisors", "daemons", "restorations", "watchdog", "jobs"):
        assert value(samples, "makima_metrics_source_up", source=source) == 1


def test_no_pending_question_means_an_age_of_zero(db, scrape):
    make_supervisor(make_contract("quiet"), state=SupervisorStatus.WORKING)
    samples = scrape()
    assert value(samples, "makima_pending_questions") == 0
    assert value(samples, "makima_pending_question_oldest_age_seconds") == 0


def test_daemons_alive_and_gone_follow_the_lease_rule(world, scrape):
    samples = scrape()
    gone = sum(is_daemon_gone(daemon) for daemon in Daemon.objects.all())
    assert value(samples, "makima_daemons", liveness="gone") == gone == 2
    assert value(samples, "makima_daemons", liveness="alive") == Daemon.objects.count() - gone == 1


def test_restorations_and_claims_of_the_window_by_source_and_outcome(world, scrape):
    samples = scrape()

    def restorations(source, outcome):
        return value(samples, "makima_restorations_recent", source=source, outcome=outcome)

    assert restorations("daemon_restart", "restored") == 2
    assert restorations("task_reassignment", "restored") == 1
    assert restorations("task_reassignment", "needs_person") == 1
    assert restorations("task_reassignment", "started_fresh") == 1
    assert restorations("manual", "failed") == 1
    assert restorations("manual", "restored") == 0  # a day ago: outside METRICS_RECENT_WINDOW_SECONDS
    assert value(samples, "makima_claims_recent", outcome="restored") == 1
    assert value(samples, "makima_claims_recent", outcome="needs_person") == 1
    assert value(samples, "makima_claims_recent", outcome="started_fresh") == 0  # a resume, not a claim


def test_watchdog_figures_are_the_last_run_and_the_windows_runs(world, scrape):
    samples = scrape()
    last = WatchdogRun.objects.order_by("-started_at").first()
    assert value(samples, "makima_watchdog_last_run_timestamp_seconds") == pytest.approx(last.finished_at.timestamp())
    assert value(samples, "makima_watchdog_last_run_failed") == 0
    assert value(samples, "makima_watchdog_last_run_daemons_marked_gone") == 2
    assert value(samples, "makima_watchdog_last_run_supervisors_interrupted") == 3
    assert value(samples, "makima_watchdog_runs_recent", result="ok") == 2
    assert value(samples, "makima_watchdog_runs_recent", result="error") == 1


def test_job_queue_depth_and_the_oldest_ready_job(world, scrape):
    samples = scrape()
    assert value(samples, "makima_jobs_ready", queue="default") == 2  # not the running or finished ones
    assert value(samples, "makima_jobs_ready", queue="mail") == 1
    assert value(samples, "makima_jobs_oldest_ready_age_seconds", queue="default") == pytest.approx(7 * 60, abs=30)


def test_a_scrape_costs_the_same_few_queries_however_big_the_world(world, client):
    assert client.get("/metrics").status_code == 200  # the first computes the supervisor figures (no snapshot yet)
    with CaptureQueriesContext(connection) as small:
        assert client.get("/metrics").status_code == 200
    for n in range(30):
        make_supervisor(make_contract(f"more {n}"), pending_questions=[make_question()])
        _log(RestorationSource.MANUAL, RestorationOutcome.RESTORED, minutes_ago=1)
        make_daemon(f"more {n}")
    with CaptureQueriesContext(connection) as large:
        assert client.get("/metrics").status_code == 200
    assert len(small.captured_queries) == len(large.captured_queries) == QUERIES_PER_SCRAPE
    assert not any("supervisor_states" in query["sql"] for query in large.captured_queries)


def test_a_failing_source_is_reported_and_the_rest_still_served(world, monkeypatch, scrape):
    from supervisors.metrics import domain

    def broken(now):
        raise RuntimeError("the figures are away")

    monkeypatch.setattr(domain, "DOMAIN_SOURCES", (("broken", broken), *domain.DOMAIN_SOURCES))
    samples = scrape()
    assert value(samples, "makima_metrics_source_up", source="broken") == 0
    assert value(samples, "makima_metrics_source_up", source="supervisors") == 1
    assert value(samples, "makima_supervisors_stale") == 2


@pytest.mark.postgres_only
def test_questions_whose_date_cannot_be_read_are_counted_but_not_dated(db, scrape):
    """Dates that look like RFC 3339 but are no day of the calendar never fail the scrape (PostgreSQL casts)."""
    unreadable = [
        "2026-02-30T00:00:00Z",
        "2025-02-29T10:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-01-01T00:00:00+20:00",
        "yesterday",
        "",
    ]
    questions = [make_question(f"q{i}", askedAt=text) for i, text in enumerate(unreadable)]
    questions.append(make_question("readable", askedAt="2024-02-29T12:00:00+01:00"))
    make_supervisor(make_contract("odd dates"), state=SupervisorStatus.WAITING_FOR_USER, pending_questions=questions)
    make_supervisor(make_contract("not a list"), state=SupervisorStatus.WAITING_FOR_USER, pending_questions={"id": "x"})
    samples = scrape()
    assert value(samples, "makima_metrics_source_up", source="supervisors") == 1
    assert value(samples, "makima_pending_questions") == len(questions)
    expected = (timezone.now() - datetime(2024, 2, 29, 11, 0, tzinfo=UTC)).total_seconds()
    assert value(samples, "makima_pending_question_oldest_age_seconds") == pytest.approx(expected, abs=5)


def test_outbox_backlog_pending_deliveries_and_dead_letters_agree_with_the_database(db, scrape):
    from supervisors.models import Delivery, Subscription, SupervisorEvent
    from supervisors.services.notifications import dispatch_new_events
    from supervisors.services.questions import add_supervisor_pending_question

    hook = Subscription.objects.create(name="hook", webhook_url="http://127.0.0.1:9/x")
    supervisors = [make_supervisor(make_contract(f"asks {n}")) for n in range(3)]
    for supervisor in supervisors:
        add_supervisor_pending_question(supervisor.contract_id, {"question": "Ship?", "choices": ["yes", "no"]})
    samples = scrape()
    undispatched = SupervisorEvent.objects.filter(dispatched_at__isnull=True).count()
    assert undispatched >= 3
    assert value(samples, "makima_outbox_undispatched_events") == undispatched
    assert value(samples, "makima_notifications_pending") == 0
    dispatch_new_events()
    pending = Delivery.objects.filter(subscription=hook, status="pending")
    assert pending.count() == 3
    Delivery.objects.filter(pk=pending.first().pk).update(status="dead")
    Delivery.objects.filter(status="pending").update(created_at=timezone.now() - timedelta(minutes=9))
    samples = scrape()
    assert value(samples, "makima_outbox_undispatched_events") == 0
    assert value(samples, "makima_notifications_pending") == 2
    assert value(samples, "makima_notifications_dead_letters") == 1
    assert value(samples, "makima_notifications_oldest_pending_age_seconds") == pytest.approx(9 * 60, abs=30)
