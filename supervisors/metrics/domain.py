"""The service's state as Prometheus gauges, read from the database when ``/metrics`` is scraped.

Computed per scrape rather than kept in each process: every worker process
answers the same, restorations done by a job worker or a command count as much
as the API's, and no multiprocess bookkeeping is needed. Each source below is
one small function; :data:`DOMAIN_SOURCES` lists them and :data:`QUERIES_PER_SCRAPE`
is how many statements they send together (asserted by the tests). To add a
figure (e.g. the outbox's backlog and dead letters), write a source that sends
its statement(s) and returns its metric families, add it to ``DOMAIN_SOURCES``
and raise ``QUERIES_PER_SCRAPE``: nothing else changes.

Cost at scale (bench/metrics_bench.py): the only statement that grows with the
number of supervisors is :func:`supervisor_figures`, a single pass over
``supervisor_states`` that counts states, stale supervisors and pending
questions and finds the oldest question at once (a parallel sequential scan on
PostgreSQL). It needs no index, on purpose: the columns it reads are the ones
heartbeats rewrite, and an index on them would stop PostgreSQL from making
heartbeat updates HOT (shared/reference/supervisor_states.sql); the service
also adds no index to makima's tables. The other statements read small tables
or use the indexes those tables have (``started_at`` of the restoration log
and the watchdog runs, the job queue's partial index on ready jobs).

A source that fails (a statement error) does not take the scrape down: its
figures are left out and ``makima_metrics_source_up{source=...}`` is 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Q
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from supervisors.enums import ACTIVE_STATES, RestorationOutcome, RestorationSource, SupervisorStatus
from supervisors.models import Daemon, RestorationLog, WatchdogRun
from supervisors.selectors import stale_threshold
from supervisors.services.claims import CLAIM_REASON
from supervisors.services.ownership import daemon_gone_q

logger = logging.getLogger(__name__)

#: States whose supervisor waits for a person to act (not just to answer a question).
NEEDS_PERSON_STATES = (SupervisorStatus.BLOCKED, SupervisorStatus.FAILED)

# --- supervisors and questions: one pass over supervisor_states ------------------------------------

#: An RFC 3339 timestamp PostgreSQL can cast: questions whose askedAt is not one are counted, not dated.
_TIMESTAMP_RE = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?"
    r"([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)

# Each supervisor joined with its pending questions (one row when it has none, e.n NULL), so one
# scan counts supervisors (e.n IS NULL OR e.n = 1), questions (count(e.n)) and the oldest askedAt.
_SUPERVISORS_SQL = {
    "postgresql": f"""
SELECT s.state,
       count(*) FILTER (WHERE e.n IS NULL OR e.n = 1),
       count(*) FILTER (WHERE (e.n IS NULL OR e.n = 1) AND s.state = ANY(%s) AND s.last_activity < %s),
       count(e.n),
       count(*) FILTER (WHERE e.n = 1),
       min(CASE WHEN jsonb_typeof(e.q) = 'object' AND e.q->>'askedAt' ~ '{_TIMESTAMP_RE}'
                THEN (e.q->>'askedAt')::timestamptz END)
FROM supervisor_states s
LEFT JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(s.pending_questions) = 'array' THEN s.pending_questions ELSE '[]'::jsonb END
) WITH ORDINALITY AS e(q, n) ON true
GROUP BY s.state
""",
    # SQLite: json_each's key is the 0-based index; julianday() reads RFC 3339 with its offset (NULL if not).
    "sqlite": """
SELECT s.state,
       sum(CASE WHEN e.key IS NULL OR e.key = 0 THEN 1 ELSE 0 END),
       sum(CASE WHEN (e.key IS NULL OR e.key = 0) AND s.state IN ({active}) AND s.last_activity < %s
                THEN 1 ELSE 0 END),
       count(e.key),
       sum(CASE WHEN e.key = 0 THEN 1 ELSE 0 END),
       min(CASE WHEN e.type = 'object' THEN julianday(json_extract(e.value, '$.askedAt')) END)
FROM supervisor_states s
LEFT JOIN json_each(CASE WHEN json_type(s.pending_questions) = 'array' THEN s.pending_questions ELSE '[]' END) e
GROUP BY s.state
""",
}


def _oldest_asked(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromtimestamp((float(value) - 2440587.5) * 86400, tz=UTC)  # a Julian day (SQLite)


def supervisor_figures(now: datetime) -> list[Metric]:
    """Supervisors by state, stale ones, those needing a person; pending questions and the oldest one's age."""
    stale_before = stale_threshold(now)
    active = sorted(ACTIVE_STATES)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_SUPERVISORS_SQL["postgresql"], [active, stale_before])
        else:
            sql = _SUPERVISORS_SQL["sqlite"].format(active=", ".join(["%s"] * len(active)))
            cursor.execute(sql, [*active, connection.ops.adapt_datetimefield_value(stale_before)])
        rows = cursor.fetchall()
    by_state = GaugeMetricFamily("makima_supervisors", "Supervisors by state.", labels=["state"])
    counts = {state: 0 for state in SupervisorStatus.values}
    stale = questions = waiting = 0
    oldest: datetime | None = None
    for state, supervisors, stale_n, questions_n, waiting_n, oldest_n in rows:
        counts[state] = counts.get(state, 0) + int(supervisors or 0)
        stale += int(stale_n or 0)
        questions += int(questions_n or 0)
        waiting += int(waiting_n or 0)
        asked = _oldest_asked(oldest_n)
        if asked is not None and (oldest is None or asked < oldest):
            oldest = asked
    for state, n in sorted(counts.items()):
        by_state.add_metric([state], n)
    needing = sum(counts.get(state, 0) for state in NEEDS_PERSON_STATES)
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return [
        by_state,
        GaugeMetricFamily(
            "makima_supervisors_stale",
            "Supervisors in an active state silent longer than SUPERVISOR_STALE_AFTER_SECONDS.",
            value=stale,
        ),
        GaugeMetricFamily(
            "makima_supervisors_needing_person",
            "Supervisors that wait for a person to act: blocked (e.g. ManualIntervention) or failed.",
            value=needing,
        ),
        GaugeMetricFamily("makima_pending_questions", "Questions waiting for a human's answer.", value=questions),
        GaugeMetricFamily(
            "makima_supervisors_with_pending_questions",
            "Supervisors with at least one question waiting for an answer.",
            value=waiting,
        ),
        GaugeMetricFamily(
            "makima_pending_question_oldest_age_seconds",
            "How long the oldest pending question has waited (0 when none is pending).",
            value=age,
        ),
    ]


# --- daemons ------------------------------------------------------------------------------------


def daemon_figures(now: datetime) -> list[Metric]:
    """Daemons alive and gone, by the lease rule of supervisors.services.ownership."""
    row = Daemon.objects.aggregate(total=Count("pk"), gone=Count("pk", filter=daemon_gone_q(now)))
    total, gone = row["total"] or 0, row["gone"] or 0
    family = GaugeMetricFamily(
        "makima_daemons", "Daemons by liveness (the lease: DAEMON_GONE_AFTER_SECONDS).", labels=["liveness"]
    )
    family.add_metric(["alive"], total - gone)
    family.add_metric(["gone"], gone)
    return [family]


# --- restorations and claims ---------------------------------------------------------------------


def recent_window() -> timedelta:
    return timedelta(seconds=settings.METRICS_RECENT_WINDOW_SECONDS)


def restoration_figures(now: datetime) -> list[Metric]:
    """Restorations and claims logged in the recent window, by source and outcome (RestorationLog)."""
    rows = (
        RestorationLog.objects.filter(started_at__gte=now - recent_window())
        .order_by()
        .values("source", "outcome")
        .annotate(total=Count("pk"), claims=Count("pk", filter=Q(reason=CLAIM_REASON)))
    )
    restorations = GaugeMetricFamily(
        "makima_restorations_recent",
        "Restorations logged in the last METRICS_RECENT_WINDOW_SECONDS, by source and outcome (claims included).",
        labels=["source", "outcome"],
    )
    claims = GaugeMetricFamily(
        "makima_claims_recent",
        "Supervisors taken over by a claim (failover) in the last METRICS_RECENT_WINDOW_SECONDS, by outcome.",
        labels=["outcome"],
    )
    seen: dict[tuple[str, str], int] = {(s, o): 0 for s in RestorationSource.values for o in RestorationOutcome.values}
    claimed: dict[str, int] = dict.fromkeys(RestorationOutcome.values, 0)
    for row in rows:
        seen[(row["source"], row["outcome"])] = seen.get((row["source"], row["outcome"]), 0) + row["total"]
        claimed[row["outcome"]] = claimed.get(row["outcome"], 0) + row["claims"]
    for (source, outcome), n in sorted(seen.items()):
        restorations.add_metric([source, outcome], n)
    for outcome, n in sorted(claimed.items()):
        claims.add_metric([outcome], n)
    return [restorations, claims]


# --- the watchdog ---------------------------------------------------------------------------------


def watchdog_figures(now: datetime) -> list[Metric]:
    """The last watchdog run (when, what it found, whether it failed) and the runs of the recent window."""
    last = (
        WatchdogRun.objects.order_by("-started_at", "-id")
        .values("started_at", "finished_at", "daemons_marked_gone", "supervisors_interrupted", "error")
        .first()
    )
    recent = WatchdogRun.objects.filter(started_at__gte=now - recent_window()).aggregate(
        total=Count("pk"), failed=Count("pk", filter=~Q(error=""))
    )
    runs = GaugeMetricFamily(
        "makima_watchdog_runs_recent",
        "Watchdog runs started in the last METRICS_RECENT_WINDOW_SECONDS, by result.",
        labels=["result"],
    )
    runs.add_metric(["ok"], (recent["total"] or 0) - (recent["failed"] or 0))
    runs.add_metric(["error"], recent["failed"] or 0)
    families: list[Metric] = [runs]
    if last is not None:
        finished = last["finished_at"] or last["started_at"]
        families += [
            GaugeMetricFamily(
                "makima_watchdog_last_run_timestamp_seconds",
                "When the last watchdog run finished (started, if it never finished), Unix time.",
                value=finished.timestamp(),
            ),
            GaugeMetricFamily(
                "makima_watchdog_last_run_failed",
                "1 when the last watchdog run failed.",
                value=int(bool(last["error"])),
            ),
            GaugeMetricFamily(
                "makima_watchdog_last_run_daemons_marked_gone",
                "Daemons the last watchdog run marked gone.",
                value=last["daemons_marked_gone"],
            ),
            GaugeMetricFamily(
                "makima_watchdog_last_run_supervisors_interrupted",
                "Supervisors the last watchdog run interrupted (their daemon was gone).",
                value=last["supervisors_interrupted"],
            ),
        ]
    return families


# --- the job queue (django-tasks-db) ----------------------------------------------------------------


def job_queue_figures(now: datetime) -> list[Metric]:
    """Jobs waiting and running per queue, and how long the oldest waiting one has waited."""
    rows = (
        DBTaskResult.objects.filter(status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING])
        .order_by()
        .values("queue_name", "status")
        .annotate(n=Count("pk"), oldest=Min("enqueued_at"))
    )
    depth = GaugeMetricFamily(
        "makima_jobs", "Background jobs waiting (ready) or running, by queue.", labels=["queue", "status"]
    )
    age = GaugeMetricFamily(
        "makima_jobs_oldest_ready_age_seconds",
        "How long the oldest ready job has waited since it was enqueued, by queue (workers down or behind).",
        labels=["queue"],
    )
    seen: dict[tuple[str, str], int] = {("default", "ready"): 0, ("default", "running"): 0}
    oldest: dict[str, float] = {"default": 0.0}
    for row in rows:
        status = row["status"].lower()
        seen[(row["queue_name"], status)] = row["n"]
        if status == "ready" and row["oldest"] is not None:
            oldest[row["queue_name"]] = max(0.0, (now - row["oldest"]).total_seconds())
    for (queue, status), n in sorted(seen.items()):
        depth.add_metric([queue, status], n)
    for queue, seconds in sorted(oldest.items()):
        age.add_metric([queue], seconds)
    return [depth, age]


# --- the collector --------------------------------------------------------------------------------

#: (name, source): every figure /metrics reads from the database. One place to add a figure.
DOMAIN_SOURCES: tuple[tuple[str, Callable[[datetime], list[Metric]]], ...] = (
    ("supervisors", supervisor_figures),
    ("daemons", daemon_figures),
    ("restorations", restoration_figures),
    ("watchdog", watchdog_figures),
    ("jobs", job_queue_figures),
)

#: Statements one scrape sends: 1 + 1 + 1 + 2 + 1 (tests/metrics assert it).
QUERIES_PER_SCRAPE = 6


class DomainCollector(Collector):
    """Collects :data:`DOMAIN_SOURCES` at scrape time; a failing source is reported, not fatal."""

    def __init__(self, sources: Iterable[tuple[str, Callable[[datetime], list[Metric]]]] | None = None) -> None:
        self.sources = tuple(sources) if sources is not None else None

    def describe(self) -> list[Metric]:
        return []  # registering must not query the database

    def collect(self) -> Iterable[Metric]:
        now = timezone.now()
        up = GaugeMetricFamily(
            "makima_metrics_source_up", "1 when the figures of this source were read at this scrape.", labels=["source"]
        )
        for name, source in self.sources if self.sources is not None else DOMAIN_SOURCES:
            try:
                families = source(now)
            except Exception:
                logger.exception("metrics: the %s figures could not be read", name)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up
