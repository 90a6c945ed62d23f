"""What the background jobs leave behind: watchdog runs, periodic jobs' due times, restore jobs and their items."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from supervisors.enums import RESTORE_JOB_FINISHED, RestoreJobItemStatus, RestoreJobKind, RestoreJobStatus

from .world import Daemon


class WatchdogRun(models.Model):
    """One run of the watchdog and what it found: the admin's dashboard shows the last one.

    Each interrupted supervisor also gets an ``interrupted`` event in its
    timeline (``SupervisorEvent``); the run keeps the first
    ``WATCHDOG_RECORDED_IDS`` contracts it interrupted, with the reason, for
    the dashboard. An interruption is not a restoration and stays out of the
    restoration log.
    """

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    daemons_marked_gone = models.IntegerField(default=0)
    supervisors_interrupted = models.IntegerField(default=0)
    stale = models.IntegerField(default=0)
    #: The supervisors this run interrupted, the first WATCHDOG_RECORDED_IDS:
    #: ``{"contract_id": ..., "reason": "daemon X gone since ..."}``; the actor is the watchdog.
    interrupted = models.JSONField(default=list, blank=True)
    #: Names of the daemons this run marked disconnected (the first WATCHDOG_RECORDED_IDS).
    gone_daemon_names = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "watchdog_runs"
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["-started_at"], name="watchdog_runs_started_idx")]

    def __str__(self) -> str:
        return f"watchdog run at {self.started_at:%Y-%m-%d %H:%M:%S}"


class PeriodicJob(models.Model):
    """When a periodic job is next due; the scheduler's conditional UPDATE of this row is its lock.

    A scheduler enqueues a job only after moving ``next_run_at`` forward with
    ``UPDATE ... WHERE name = %s AND next_run_at <= now``: of several
    schedulers racing for one slot, exactly one sees a changed row.
    """

    name = models.CharField(max_length=100, primary_key=True)
    next_run_at = models.DateTimeField()
    last_enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "periodic_jobs"

    def __str__(self) -> str:
        return self.name


class RestoreJob(models.Model):
    """An admin restore (or start-fresh, or mark-interrupted) over more than a page, run by a worker.

    Its supervisors are :class:`RestoreJobItem` rows, written when the job is
    queued; a worker restores them chunk by chunk and marks each item in the
    same transaction as its restoration (``supervisors.services.restore_jobs``).
    """

    kind = models.CharField(max_length=20, choices=RestoreJobKind.choices)
    status = models.CharField(max_length=20, choices=RestoreJobStatus.choices, default=RestoreJobStatus.QUEUED)
    #: What was selected, in words ("37,000 supervisors selected in the list (state = working)").
    description = models.TextField(blank=True, default="")
    #: The daemon whose supervisors were selected ("act on everything of this daemon"), if that is how.
    daemon = models.ForeignKey(Daemon, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    reason = models.TextField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    #: Who asked, as text (survives the user's deletion); the restoration log's actor label.
    requested_by_label = models.TextField(blank=True, default="")
    #: The confirmation form's one-time token: a second submit of the same form finds this job.
    token = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    total = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    #: The last moment a worker committed a chunk (or took the job up): a job without progress is rescued.
    last_progress_at = models.DateTimeField(default=timezone.now)
    #: Times the job was enqueued again since its last progress (``RESTORE_JOB_MAX_RESCUES``, then failed).
    rescues = models.IntegerField(default=0)
    cancelled_by_label = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "restore_jobs"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "last_progress_at"], name="restore_jobs_status_idx")]

    def __str__(self) -> str:
        return f"restore job #{self.pk} ({self.get_kind_display().lower()}, {self.total} supervisors)"

    @property
    def is_finished(self) -> bool:
        return self.status in RESTORE_JOB_FINISHED


class RestoreJobItem(models.Model):
    """One supervisor of a restore job, and how it ended.

    ``contract_id`` names the supervisor (as the restoration log does) without
    a foreign key: deleting a contract does not rewrite a job's record.
    """

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(RestoreJob, on_delete=models.CASCADE, related_name="items")
    contract_id = models.UUIDField()
    status = models.CharField(max_length=20, choices=RestoreJobItemStatus.choices, default=RestoreJobItemStatus.PENDING)
    #: The restoration's outcome (restored, needs_person, ...), ``interrupted``, ``cancelled``, ``not_found``.
    outcome = models.CharField(max_length=32, blank=True, default="")
    message = models.TextField(blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "restore_job_items"
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["job", "contract_id"], name="restore_job_item_once")]
        indexes = [models.Index(fields=["job", "status", "id"], name="restore_job_items_todo")]

    def __str__(self) -> str:
        return f"{self.contract_id}: {self.status}"
