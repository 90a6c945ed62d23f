"""The supervisor figures: one pass over ``supervisor_states``, done by a job, read by each scrape.

A scrape reads the last computation (one row of ``metrics_snapshots``). When it
is older than ``METRICS_REFRESH_SECONDS`` the scrape asks for a new one: one
conditional UPDATE claims the request (so of many scrapes and worker processes
only one enqueues), then the ``refresh_metrics`` job computes and stores it.
Until then the scrape serves what it read; ``makima_supervisor_figures_age_seconds``
says how old that is. When there is no computation yet, or it is older than
``METRICS_SNAPSHOT_MAX_AGE_SECONDS`` (no job worker ran the refresh: the job
queue gauges say why), the scrape computes the figures itself: slower at a
large table, never wrong by more than that bound.

The statement is one pass: on PostgreSQL a parallel aggregate with no join and
no correlated subquery (either would make PostgreSQL join every row or
aggregate in one process); the oldest question is dated by the PARALLEL SAFE
function ``makima_oldest_question_asked_at`` (migration 0012), called only for
rows holding questions; an ``askedAt`` it cannot read is counted, not dated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from supervisors import snapshots
from supervisors.enums import ACTIVE_STATES
from supervisors.models import MetricsSnapshot
from supervisors.selectors import stale_threshold

NAME = "supervisors"

_HAS_QUESTIONS = "s.pending_questions <> '[]'::jsonb AND jsonb_typeof(s.pending_questions) = 'array'"

_STATEMENT = {
    "postgresql": f"""
SELECT s.state,
       count(*),
       count(*) FILTER (WHERE s.state = ANY(%s) AND s.last_activity < %s),
       coalesce(sum(jsonb_array_length(s.pending_questions)) FILTER (WHERE {_HAS_QUESTIONS}), 0),
       count(*) FILTER (WHERE {_HAS_QUESTIONS}),
       min(makima_oldest_question_asked_at(s.pending_questions)) FILTER (WHERE {_HAS_QUESTIONS})
FROM supervisor_states s
GROUP BY s.state
""",
    # SQLite (small databases): each supervisor joined with its questions (one row when it has none,
    # e.key NULL; json_each's key is the 0-based index); julianday() reads RFC 3339 with its offset.
    "sqlite": """
SELECT s.state,
       sum(CASE WHEN e.key IS NULL OR e.key = 0 THEN 1 ELSE 0 END),
       sum(CASE WHEN (e.key IS NULL OR e.key = 0) AND s.state IN ({active}) AND s.last_activity < %s
                THEN 1 ELSE 0 END),
       count(e.key),
       sum(CASE WHEN e.key = 0 THEN 1 ELSE 0 END),
       min(CASE WHEN e.type = 'object' AND json_type(e.value, '$.askedAt') = 'text'
                THEN julianday(json_extract(e.value, '$.askedAt')) END)
FROM supervisor_states s
LEFT JOIN json_each(CASE WHEN json_type(s.pending_questions) = 'array' THEN s.pending_questions ELSE '[]' END) e
GROUP BY s.state
""",
}


@dataclass(frozen=True)
class SupervisorFigures:
    """What one pass over supervisor_states found, and when."""

    by_state: dict[str, int]
    stale: int
    pending_questions: int
    with_questions: int
    oldest_asked_at: datetime | None
    computed_at: datetime
    duration_ms: int

    def as_json(self) -> dict[str, Any]:
        return {
            "by_state": self.by_state,
            "stale": self.stale,
            "pending_questions": self.pending_questions,
            "with_questions": self.with_questions,
            "oldest_asked_at": self.oldest_asked_at.isoformat() if self.oldest_asked_at else None,
        }

    @classmethod
    def from_row(cls, figures: dict[str, Any], computed_at: datetime, duration_ms: int) -> SupervisorFigures:
        oldest = figures.get("oldest_asked_at")
        return cls(
            by_state={str(k): int(v) for k, v in (figures.get("by_state") or {}).items()},
            stale=int(figures.get("stale") or 0),
            pending_questions=int(figures.get("pending_questions") or 0),
            with_questions=int(figures.get("with_questions") or 0),
            oldest_asked_at=parse_datetime(oldest) if oldest else None,
            computed_at=computed_at,
            duration_ms=duration_ms,
        )


def _as_datetime(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromtimestamp((float(value) - 2440587.5) * 86400, tz=UTC)  # a Julian day (SQLite)
    except (ValueError, OverflowError, OSError):
        return None  # a date SQLite reads but Python cannot hold (year 0 and before): counted, not dated


def compute_supervisor_figures(now: datetime | None = None) -> SupervisorFigures:
    """One pass over supervisor_states (see the module docstring); nothing is written."""
    now = now or timezone.now()
    started = time.perf_counter()
    active = sorted(ACTIVE_STATES)
    stale_before = stale_threshold(now)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_STATEMENT["postgresql"], [active, stale_before])
        else:
            sql = _STATEMENT["sqlite"].format(active=", ".join(["%s"] * len(active)))
            cursor.execute(sql, [*active, connection.ops.adapt_datetimefield_value(stale_before)])
        rows = cursor.fetchall()
    by_state: dict[str, int] = {}
    stale = questions = with_questions = 0
    oldest: datetime | None = None
    for state, supervisors, stale_n, questions_n, with_n, oldest_n in rows:
        by_state[state] = by_state.get(state, 0) + int(supervisors or 0)
        stale += int(stale_n or 0)
        questions += int(questions_n or 0)
        with_questions += int(with_n or 0)
        asked = _as_datetime(oldest_n)
        if asked is not None and (oldest is None or asked < oldest):
            oldest = asked
    return SupervisorFigures(
        by_state=by_state,
        stale=stale,
        pending_questions=questions,
        with_questions=with_questions,
        oldest_asked_at=oldest,
        computed_at=now,
        duration_ms=round((time.perf_counter() - started) * 1000),
    )


def refresh_supervisor_figures() -> SupervisorFigures:
    """Compute the figures and store them (one statement each way); what the refresh job runs."""
    figures = compute_supervisor_figures()
    snapshots.store(NAME, figures.as_json(), figures.computed_at, figures.duration_ms)
    return figures


def refresh_supervisor_figures_if_due() -> SupervisorFigures | None:
    """The job's entry: refresh unless another run just did (jobs queued while no worker ran pile up)."""
    if snapshots.refreshed_moments_ago(NAME, settings.METRICS_REFRESH_SECONDS):
        return None
    return refresh_supervisor_figures()


def current_supervisor_figures(now: datetime) -> tuple[SupervisorFigures, str]:
    """The figures a scrape serves and how they were had: ``snapshot`` (asking for a refresh when due) or ``live``."""
    row = MetricsSnapshot.objects.filter(name=NAME).values("figures", "computed_at", "duration_ms").first()
    if row is None or now - row["computed_at"] > timedelta(seconds=settings.METRICS_SNAPSHOT_MAX_AGE_SECONDS):
        return refresh_supervisor_figures(), "live"
    figures = SupervisorFigures.from_row(row["figures"], row["computed_at"], row["duration_ms"])
    if now - figures.computed_at >= timedelta(seconds=settings.METRICS_REFRESH_SECONDS):
        request_refresh(now)
    return figures, "snapshot"


def request_refresh(now: datetime) -> bool:
    """Enqueue the refresh job unless another scrape just did (a request not served in a while is renewed)."""
    from supervisors import jobs

    return snapshots.request_refresh(NAME, jobs.refresh_metrics.enqueue, now, settings.METRICS_REFRESH_SECONDS)
