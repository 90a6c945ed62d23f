"""The watchdog: a crashed daemon's running supervisors become interrupted without anyone clicking.

What a user notices: the daemon shows disconnected, its running supervisors
show interrupted (once, also with several watchdogs at once), a live
daemon's supervisors and supervisors waiting for a person are untouched, the
run is recorded with the reason, and a run costs the same few queries over
ten supervisors or two hundred.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from supervisors.enums import DaemonStatus, TaskStatus
from supervisors.models import Contract, Daemon, RestorationLog, SupervisorState, Task, WatchdogRun
from supervisors.services.watchdog import run_watchdog
from tests.concurrency import run_together

LONG_AGO = timedelta(hours=1)


def fleet(daemon: Daemon | None, states: list[str], prefix: str) -> list[SupervisorState]:
    contracts = Contract.objects.bulk_create(
        [Contract(name=f"{prefix}-{i}", phase="build") for i in range(len(states))]
    )
    tasks = Task.objects.bulk_create(
        [
            Task(contract=c, name="supervisor", is_supervisor=True, daemon=daemon, status=TaskStatus.RUNNING)
            for c in contracts
        ]
    )
    return SupervisorState.objects.bulk_create(
        [
            SupervisorState(contract=c, task=t, phase="build", state=s)
            for c, t, s in zip(contracts, tasks, states, strict=True)
        ]
    )


def crashed_daemon(name: str = "crashed") -> Daemon:
    """A daemon whose stored status still says connected, silent for an hour: gone by the lease."""
    daemon = Daemon.objects.create(name=name)
    Daemon.objects.filter(pk=daemon.pk).update(
        status=DaemonStatus.CONNECTED, last_heartbeat_at=timezone.now() - LONG_AGO
    )
    return daemon


def live_daemon(name: str = "alive") -> Daemon:
    daemon = Daemon.objects.create(name=name)
    Daemon.objects.filter(pk=daemon.pk).update(status=DaemonStatus.CONNECTED, last_heartbeat_at=timezone.now())
    return daemon


def states_of(rows: list[SupervisorState]) -> list[str]:
    by_id = dict(SupervisorState.objects.filter(pk__in=[r.pk for r in rows]).values_list("pk", "state"))
    return [by_id[r.pk] for r in rows]


ALL_STATES = ["initializing", "idle", "working", "waiting_for_tasks", "waiting_for_user", "blocked", "completed",
              "failed", "interrupted"]  # fmt: skip
AFTER = ["interrupted"] * 4 + ["waiting_for_user", "blocked", "completed", "failed", "interrupted"]


@pytest.mark.django_db
def test_a_crashed_daemons_running_supervisors_are_interrupted_and_a_live_daemons_are_untouched():
    crashed, alive = crashed_daemon(), live_daemon()
    orphans = fleet(crashed, ALL_STATES, "orphan")
    kept = fleet(alive, ALL_STATES, "kept")

    report = run_watchdog()

    assert states_of(orphans) == AFTER
    assert states_of(kept) == ALL_STATES
    assert Daemon.objects.get(pk=crashed.pk).status == DaemonStatus.DISCONNECTED
    assert Daemon.objects.get(pk=alive.pk).status == DaemonStatus.CONNECTED
    assert report.daemons_marked_gone == ["crashed"]
    assert report.supervisors_interrupted == 4
    run = WatchdogRun.objects.get()
    assert (run.daemons_marked_gone, run.supervisors_interrupted, run.error) == (1, 4, "")
    assert run.gone_daemon_names == ["crashed"]
    assert sorted(e["contract_id"] for e in run.interrupted) == sorted(str(s.contract_id) for s in orphans[:4])
    assert all(e["reason"].startswith("daemon crashed gone since ") for e in run.interrupted)
    # An interruption is not a restoration: the restoration log stays empty, the epoch unchanged.
    assert not RestorationLog.objects.exists()
    assert set(SupervisorState.objects.values_list("restoration_count", flat=True)) == {0}


@pytest.mark.django_db
def test_a_second_run_finds_nothing_more_to_do_and_says_so():
    fleet(crashed_daemon(), ["working", "idle"], "orphan")
    first, second = run_watchdog(), run_watchdog()
    assert (first.supervisors_interrupted, len(first.daemons_marked_gone)) == (2, 1)
    assert (second.supervisors_interrupted, len(second.daemons_marked_gone)) == (0, 0)
    assert WatchdogRun.objects.count() == 2


@pytest.mark.django_db
def test_a_supervisor_task_without_a_daemon_is_orphaned_too():
    rows = fleet(None, ["working"], "nobody")
    report = run_watchdog()
    assert states_of(rows) == ["interrupted"]
    assert report.interrupted[0]["reason"] == "its supervisor task has no daemon"


@pytest.mark.django_db
def test_stale_supervisors_of_live_daemons_are_counted_not_changed(settings):
    settings.SUPERVISOR_STALE_AFTER_SECONDS = 60
    rows = fleet(live_daemon(), ["working", "working"], "slow")
    SupervisorState.objects.filter(pk=rows[0].pk).update(last_activity=timezone.now() - LONG_AGO)
    report = run_watchdog()
    assert report.stale == 1
    assert states_of(rows) == ["working", "working"]
    assert WatchdogRun.objects.get().stale == 1


@pytest.mark.django_db
def test_a_run_costs_the_same_queries_over_ten_supervisors_as_over_two_hundred():
    alive = live_daemon()
    counts = []
    for size in (10, 200):
        orphans = fleet(crashed_daemon(f"crashed-{size}"), ["working"] * size, f"orphan-{size}")
        fleet(alive, ["working"] * size, f"kept-{size}")
        with CaptureQueriesContext(connection) as queries:
            report = run_watchdog()
        assert report.supervisors_interrupted == size
        assert states_of(orphans) == ["interrupted"] * size
        counts.append(len(queries))
    # Two of them record the timeline: the interruptions' events and the new stale episodes' (one INSERT each).
    assert counts[0] == counts[1] <= 11, counts


@pytest.mark.django_db
def test_runs_older_than_a_week_are_forgotten():
    WatchdogRun.objects.create(started_at=timezone.now() - timedelta(days=8))
    WatchdogRun.objects.create(started_at=timezone.now() - timedelta(days=6))
    run_watchdog()
    assert WatchdogRun.objects.count() == 2


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_watchdogs_racing_interrupt_each_supervisor_exactly_once():
    """Rounds of two watchdogs let loose together on the same orphans: every orphan interrupted once, none twice."""
    alive = live_daemon()
    kept = fleet(alive, ["working"] * 50, "kept")
    for round_ in range(5):
        crashed = crashed_daemon(f"crashed-{round_}")
        orphans = fleet(crashed, ["working", "idle", "initializing", "waiting_for_tasks"] * 100, f"r{round_}")
        reports = run_together(run_watchdog, run_watchdog)
        assert len(reports) == 2
        assert sum(r.supervisors_interrupted for r in reports) == len(orphans), [
            r.supervisors_interrupted for r in reports
        ]
        assert sum(len(r.daemons_marked_gone) for r in reports) == 1
        recorded = [e["contract_id"] for r in reports for e in r.interrupted]
        assert len(recorded) == len(set(recorded))
        assert states_of(orphans) == ["interrupted"] * len(orphans)
        assert states_of(kept) == ["working"] * len(kept)
    runs = WatchdogRun.objects.filter(error="")
    assert runs.count() == 10
    assert sum(runs.values_list("supervisors_interrupted", flat=True)) == 5 * 400
