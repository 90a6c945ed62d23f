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


class SupervisorAttention(models.Model):
    """One supervisor needing attention, as the last refresh found it: the needs-attention page's index.

    Which supervisors need a person depends on columns heartbeats rewrite many
    times a minute (``state``, ``last_activity``) and on time passing, so no
    index on ``supervisor_states`` can serve the page without costing every
    heartbeat its HOT update. A job recomputes this table in one set-based
    statement (``supervisors/attention.py``), writing only rows that changed;
    the page reads one page of it through the index below and re-checks those
    rows live. A row goes with its supervisor (``ON DELETE CASCADE`` in the
    database, migration 0016: makima deletes supervisors with SQL), so a
    refresh only compares the supervisors there are with their stored rows.
    """

    supervisor = models.OneToOneField(
        "supervisors.SupervisorState",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="attention_entry",
    )
    #: The attention kind's severity (supervisors/attention.py: 1 most severe).
    severity = models.SmallIntegerField()
    #: The supervisor's last activity when computed: within a kind, the longest silent first.
    since = models.DateTimeField()

    class Meta:
        db_table = "supervisor_attention"
        indexes = [models.Index(fields=["severity", "since", "supervisor"], name="supervisor_attention_order")]

    def __str__(self) -> str:
        return f"attention {self.severity} for {self.supervisor_id}"
