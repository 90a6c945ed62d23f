"""Periodic jobs: which job is due, enqueued by exactly one of any number of schedulers.

The job library (django-tasks) has no scheduler of its own, and the
schedulers built for it (django-crontask) need Redis to keep two schedulers
from firing the same slot. This one keeps that lock in the database the
service already has: each periodic job has a row (:class:`PeriodicJob`) with
its next due time, and a scheduler enqueues a job only after moving that time
on with one conditional UPDATE (``... WHERE name = %s AND next_run_at <= now``).
Of several schedulers racing for a slot, exactly one sees its UPDATE change a
row; the others do nothing. A scheduler may die at any point: the next due
time is in the database, so any other scheduler (or the restarted one) takes
over; at worst a slot whose UPDATE committed while the enqueue did not is
skipped, and the job runs at the next slot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from supervisors.models import PeriodicJob

logger = logging.getLogger("supervisors.scheduler")


@dataclass(frozen=True)
class Periodic:
    """A job enqueued every ``interval()`` seconds (read from settings each time, so tests can change it)."""

    name: str
    task: Callable[[], object]
    interval: Callable[[], float]


def periodic_jobs() -> list[Periodic]:
    """Every periodic job of the service; the job modules are imported here, not at start-up."""
    from supervisors import jobs

    return [
        Periodic("watchdog", lambda: jobs.watchdog, lambda: settings.WATCHDOG_INTERVAL_SECONDS),
        Periodic(
            "prune_supervisor_events",
            lambda: jobs.prune_supervisor_events,
            lambda: settings.SUPERVISOR_EVENTS_PRUNE_INTERVAL_SECONDS,
        ),
        Periodic(
            "rescue_restore_jobs",
            lambda: jobs.rescue_restore_jobs,
            lambda: settings.RESTORE_JOB_RESCUE_INTERVAL_SECONDS,
        ),
        Periodic(
            "dispatch_notifications",
            lambda: jobs.dispatch_notifications,
            lambda: settings.NOTIFICATIONS_DISPATCH_INTERVAL_SECONDS,
        ),
        Periodic(
            "deliver_notifications",
            lambda: jobs.deliver_notifications,
            lambda: settings.NOTIFICATIONS_DELIVER_INTERVAL_SECONDS,
        ),
    ]


def enqueue_due_jobs(now: datetime | None = None) -> list[str]:
    """Enqueue each periodic job whose time has come, unless another scheduler just did; the names enqueued.

    Two statements per job when nothing is due (create-if-missing, UPDATE),
    whatever the number of schedulers. The job is enqueued when the UPDATE
    commits (jobs are enqueued on commit).
    """
    now = now or timezone.now()
    jobs = periodic_jobs()
    PeriodicJob.objects.bulk_create(
        [PeriodicJob(name=job.name, next_run_at=now) for job in jobs], ignore_conflicts=True
    )
    enqueued: list[str] = []
    for job in jobs:
        with transaction.atomic():
            took_slot = PeriodicJob.objects.filter(name=job.name, next_run_at__lte=now).update(
                next_run_at=now + timedelta(seconds=max(0.1, job.interval())), last_enqueued_at=now
            )
            if took_slot:
                transaction.on_commit(lambda job=job: _enqueue(job))
                enqueued.append(job.name)
    return enqueued


def _enqueue(job: Periodic) -> None:
    result = job.task().enqueue()
    logger.info("scheduler: enqueued %s (job %s)", job.name, result.id)
