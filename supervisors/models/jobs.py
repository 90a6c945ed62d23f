"""What the background jobs leave behind: each watchdog run, and the periodic jobs' next due times."""

from __future__ import annotations

from django.db import models


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
