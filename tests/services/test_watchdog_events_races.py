"""Two watchdogs at once on PostgreSQL: every interrupted supervisor has exactly one "interrupted" event.

Rounds of two runs let loose together (a barrier) over fresh orphans and stale
supervisors; afterwards the database is read: one interrupted event per
orphan, one stale event per stale supervisor, each supervisor's events
numbered 1, 2, ... without a gap or a repeat.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Count, Max
from django.utils import timezone

from supervisors.enums import EventKind
from supervisors.models import SupervisorEvent, SupervisorState
from supervisors.services.watchdog import run_watchdog
from tests.concurrency import run_together

from .test_watchdog import crashed_daemon, fleet, live_daemon

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


def test_two_watchdogs_write_one_interrupted_event_per_supervisor_and_one_stale_event_per_silence(settings):
    settings.SUPERVISOR_STALE_AFTER_SECONDS = 60
    alive = live_daemon()
    all_orphans: list[SupervisorState] = []
    all_quiet: list[SupervisorState] = []
    for round_ in range(5):
        orphans = fleet(
            crashed_daemon(f"crashed-{round_}"), ["working", "idle", "waiting_for_tasks"] * 60, f"r{round_}"
        )
        quiet = fleet(alive, ["working"] * 40, f"quiet-{round_}")
        SupervisorState.objects.filter(pk__in=[s.pk for s in quiet]).update(
            last_activity=timezone.now() - timedelta(minutes=10)
        )
        run_together(run_watchdog, run_watchdog)
        all_orphans += orphans
        all_quiet += quiet
        interrupted = SupervisorEvent.objects.filter(kind=EventKind.INTERRUPTED)
        per_supervisor = dict(interrupted.values_list("supervisor_id").annotate(n=Count("id")))
        assert per_supervisor == {s.pk: 1 for s in all_orphans}
        stale = SupervisorEvent.objects.filter(kind=EventKind.STALE)
        per_quiet = dict(stale.values_list("supervisor_id").annotate(n=Count("id")))
        assert per_quiet == {s.pk: 1 for s in all_quiet}
    numbering = SupervisorEvent.objects.values("supervisor_id").annotate(n=Count("id"), top=Max("sequence"))
    assert all(row["n"] == row["top"] for row in numbering)
    reasons = set(SupervisorEvent.objects.filter(kind=EventKind.INTERRUPTED).values_list("details__daemon", flat=True))
    assert reasons == {f"crashed-{r}" for r in range(5)}
