"""The service's state as Prometheus gauges, read from the database when ``/metrics`` is scraped.

Computed per scrape rather than kept in each process: every worker process
answers the same, restorations done by a job worker or a command count as much
as the API's, and no multiprocess bookkeeping is needed. Each source below is
one small function; :data:`DOMAIN_SOURCES` lists them and :data:`QUERIES_PER_SCRAPE`
is how many statements they send together (asserted by the tests). To add a
figure (as the outbox's backlog and dead letters were), write a source that sends
its statement(s) and returns its metric families, add it to ``DOMAIN_SOURCES``
and raise ``QUERIES_PER_SCRAPE``: nothing else changes.

Cost at scale (bench/metrics_bench.py): every statement a scrape sends reads a
small table or an index (``started_at`` of the restoration log and of the
watchdog runs, the job queue's partial index on ready jobs, the snapshot's
primary key). The one computation that grows with the number of supervisors,
a pass over all of ``supervisor_states`` (by state, stale, pending questions,
the oldest question), costs about 0.8 us of database CPU per row (0.4 s at a
million rows on the bench machine; PostgreSQL spreads it over its parallel
workers), so it is not done per scrape: a background job does it
(:mod:`.snapshot`), asked for by the scrapes themselves, and the scrape reads
its result. It could not be made cheap with an index: ``state`` and
``last_activity`` are rewritten by every heartbeat, and an index on them would
stop PostgreSQL from making heartbeat updates HOT
(shared/reference/supervisor_states.sql); nor does the service add indexes to
makima's tables (README, "Pointing the service at makima's database").

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
from django.utils.dateparse import parse_datetime
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from supervisors.enums import DeliveryStatus, RestorationOutcome, RestorationSource, SupervisorStatus
from supervisors.models import Daemon, DaemonEvent, Delivery, RestorationLog, SupervisorEvent, WatchdogRun
from supervisors.services.claims import CLAIM_REASON
from supervisors.services.ownership import daemon_gone_q

from .snapshot import current_supervisor_figures

logger = logging.getLogger(__name__)

#: States whose supervisor waits for a person to act (not just to answer a question).
NEEDS_PERSON_STATES = (SupervisorStatus.BLOCKED, SupervisorStatus.FAILED)

# --- supervisors and questions: the snapshot of one pass over supervisor_states ------------------


def supervisor_figures(now: datetime) -> list[Metric]:
    """Supervisors by state, stale ones, those needing a person; pending questions and the oldest one's age."""
    figures, _how = current_supervisor_figures(now)
    by_state = GaugeMetricFamily("makima_supervisors", "Supervisors by state.", labels=["state"])
    counts = {state: 0 for state in SupervisorStatus.values} | figures.by_state
    for state, n in sorted(counts.items()):
        by_state.add_metric([state], n)
    needing = sum(counts.get(state, 0) for state in NEEDS_PERSON_STATES)
    oldest = figures.oldest_asked_at
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return [
        by_state,
        GaugeMetricFamily(
            "makima_supervisors_stale",
            "Supervisors in an active state silent longer than SUPERVISOR_STALE_AFTER_SECONDS.",
            value=figures.stale,
        ),
        GaugeMetricFamily(
            "makima_supervisors_needing_person",
            "Supervisors that wait for a person to act: blocked (e.g. ManualIntervention) or failed.",
            value=needing,
        ),
        GaugeMetricFamily(
            "makima_pending_questions", "Questions waiting for a human's answer.", value=figures.pending_questions
        ),
        GaugeMetricFamily(
            "makima_supervisors_with_pending_questions",
            "Supervisors with at least one question waiting for an answer.",
            value=figures.with_questions,
        ),
        GaugeMetricFamily(
            "makima_pending_question_oldest_age_seconds",
            "How long the oldest pending question has waited (0 when none is pending).",
            value=age,
        ),
        GaugeMetricFamily(
            "makima_supervisor_figures_age_seconds",
            "How old the supervisor figures above are (computed by a job every METRICS_REFRESH_SECONDS).",
            value=max(0.0, (now - figures.computed_at).total_seconds()),
        ),
        GaugeMetricFamily(
            "makima_supervisor_figures_duration_seconds",
            "How long computing the supervisor figures took (one pass over supervisor_states).",
            value=figures.duration_ms / 1000,
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
    """Jobs waiting to run per queue, and how long the oldest has waited (django-tasks-db's ready jobs).

    Only ready jobs: they have a partial index, while finished results (kept for days) would make
    counting running ones a scan of the whole results table.
    """
    rows = (
        DBTaskResult.objects.filter(status=TaskResultStatus.READY)
        .order_by()
        .values("queue_name")
        .annotate(n=Count("pk"), oldest=Min("enqueued_at"))
    )
    depth = GaugeMetricFamily("makima_jobs_ready", "Background jobs waiting to be run, by queue.", labels=["queue"])
    age = GaugeMetricFamily(
        "makima_jobs_oldest_ready_age_seconds",
        "How long the oldest waiting job has waited since it was enqueued, by queue (workers down or behind).",
        labels=["queue"],
    )
    seen: dict[str, tuple[int, float]] = {"default": (0, 0.0)}
    for row in rows:
        waited = max(0.0, (now - row["oldest"]).total_seconds()) if row["oldest"] is not None else 0.0
        seen[row["queue_name"]] = (row["n"], waited)
    for queue, (n, waited) in sorted(seen.items()):
        depth.add_metric([queue], n)
        age.add_metric([queue], waited)
    return [depth, age]


# --- notifications: the outbox and the deliveries (docs/notifications.md) -------------------------


def outbox_figures(now: datetime) -> list[Metric]:
    """Events not yet dispatched, deliveries waiting (and the oldest's age), dead letters: one statement.

    Every count reads a partial index (undispatched events, pending and dead deliveries), so the cost
    follows the backlog, not the history kept.
    """
    events = SupervisorEvent._meta.db_table
    daemon_events = DaemonEvent._meta.db_table
    deliveries = Delivery._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT count(*) FROM {events} WHERE dispatched_at IS NULL), "
            f"(SELECT count(*) FROM {daemon_events} WHERE dispatched_at IS NULL), "
            f"(SELECT count(*) FROM {deliveries} WHERE status = %s), "
            f"(SELECT min(created_at) FROM {deliveries} WHERE status = %s), "
            f"(SELECT count(*) FROM {deliveries} WHERE status = %s)",
            [DeliveryStatus.PENDING, DeliveryStatus.PENDING, DeliveryStatus.DEAD],
        )
        supervisor_backlog, daemon_backlog, pending, oldest, dead = cursor.fetchone()
    if isinstance(oldest, str):  # SQLite returns the text it stores: UTC, without a zone
        oldest = parse_datetime(oldest)
        oldest = oldest.replace(tzinfo=UTC) if oldest is not None and oldest.tzinfo is None else oldest
    return [
        GaugeMetricFamily(
            "makima_outbox_undispatched_events",
            "Events written but not yet fanned out to subscriptions (the dispatcher is behind or stopped).",
            value=supervisor_backlog + daemon_backlog,
        ),
        GaugeMetricFamily(
            "makima_notifications_pending", "Notification deliveries waiting to be sent or retried.", value=pending
        ),
        GaugeMetricFamily(
            "makima_notifications_oldest_pending_age_seconds",
            "How long the oldest waiting delivery has waited since it was made (a receiver down, workers stopped).",
            value=max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0,
        ),
        GaugeMetricFamily(
            "makima_notifications_dead_letters",
            "Deliveries given up after NOTIFICATIONS_RETRY_FOR_SECONDS, waiting for staff to retry or discard.",
            value=dead,
        ),
    ]


# --- the collector --------------------------------------------------------------------------------

#: (name, source): every figure /metrics reads from the database. One place to add a figure.
DOMAIN_SOURCES: tuple[tuple[str, Callable[[datetime], list[Metric]]], ...] = (
    ("supervisors", supervisor_figures),
    ("daemons", daemon_figures),
    ("restorations", restoration_figures),
    ("watchdog", watchdog_figures),
    ("jobs", job_queue_figures),
    ("notifications", outbox_figures),
)

#: Statements one scrape sends: 1 + 1 + 1 + 2 + 1 + 1 (tests/metrics assert it). When the supervisor figures
#: are due for a refresh, one more (claiming the refresh) and the job's enqueueing (one INSERT with the
#: database job backend); when there are none yet or they are too old, they are computed in the scrape.
QUERIES_PER_SCRAPE = 7


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
