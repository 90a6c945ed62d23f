"""Figures the metrics endpoint serves without scanning a large table per scrape."""

from __future__ import annotations

from django.db import models


class MetricsSnapshot(models.Model):
    """The last computation of a set of figures (``name``: e.g. ``supervisors``), refreshed by a job.

    ``supervisor_states`` is read whole to count supervisors by state, stale ones and pending
    questions; at a million rows that is more than a scrape may take, so a background job
    computes them (supervisors/metrics/snapshot.py) and each scrape reads this row.
    """

    name = models.CharField(max_length=50, primary_key=True)
    figures = models.JSONField()
    computed_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    #: A scrape asked for a fresh computation at this moment (the job clears it); None: nobody asked.
    refresh_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "metrics_snapshots"

    def __str__(self) -> str:
        return f"{self.name} figures of {self.computed_at:%Y-%m-%d %H:%M:%S}"
