"""The watchdog: after a daemon crash, nobody has to notice for its supervisors to be marked interrupted.

Run periodically as a job (``supervisors.jobs.watchdog``, every
``WATCHDOG_INTERVAL_SECONDS``), :func:`run_watchdog`

(a) marks ``disconnected`` the daemons gone by the lease whose stored status
    still says ``connected`` (one UPDATE), with a ``daemon_gone`` event each for
    the notifications (one INSERT);
(b) sets ``interrupted`` the active supervisors (initializing, idle, working,
    waiting_for_tasks) whose owner is gone (one UPDATE): a supervisor waiting
    for a person, blocked, finished or already interrupted is left alone;
(c) counts the stale supervisors, and records a ``stale`` event for each new
    stale episode (once per silence, not every run);

and records the run (a :class:`WatchdogRun` row, in the same transaction as
the changes, so a change is never without its record) and logs what it did.

Several watchdogs may run at once (several workers, several machines): each
UPDATE is guarded by the row's own state, so a row already changed no longer
matches, and on PostgreSQL the supervisors are locked with SKIP LOCKED, so two
runs never wait on (or deadlock with) each other and never interrupt one
supervisor twice; what one run skips because another holds it, that other run
does. The number of queries is the same for ten supervisors or a million.

Interruptions are not restorations, so they are not written to the
restoration log: each interrupted supervisor gets an ``interrupted`` event
with the reason (its daemon and since when it is silent) in its timeline, one
INSERT ... SELECT for the whole run; the run's record also keeps the first
``WATCHDOG_RECORDED_IDS`` of them, and the log has one line per gone daemon.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import QuerySet
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from supervisors.enums import DaemonStatus, SupervisorStatus
from supervisors.models import Daemon, SupervisorState, Task, WatchdogRun
from supervisors.selectors import stale_supervisors

from .actors import Actor
from .events import record_daemons_gone, record_interruptions, record_stale_episodes
from .ownership import daemon_gone_q, epoch_unchanged_q, gone_after, orphaned_q

logger = logging.getLogger("supervisors.watchdog")

#: Who the watchdog's changes are recorded as.
WATCHDOG_ACTOR = Actor.system("watchdog")

#: States in which a supervisor is running on its daemon: when the daemon is gone, it is interrupted.
#: Waiting for a person, blocked, completed, failed and interrupted are not running and stay as they are.
INTERRUPTIBLE_STATES: tuple[str, ...] = (
    SupervisorStatus.INITIALIZING,
    SupervisorStatus.IDLE,
    SupervisorStatus.WORKING,
    SupervisorStatus.WAITING_FOR_TASKS,
)


@dataclass
class WatchdogReport:
    """What one run did: the numbers the admin shows, and the record it wrote."""

    started_at: datetime
    finished_at: datetime | None = None
    daemons_marked_gone: list[str] = field(default_factory=list)
    #: ``{"contract_id", "reason"}`` per interrupted supervisor, the first WATCHDOG_RECORDED_IDS.
    interrupted: list[dict[str, str]] = field(default_factory=list)
    supervisors_interrupted: int = 0
    stale: int = 0
    #: Stale episodes this run recorded as events (new silences only).
    stale_recorded: int = 0
    run_id: int | None = None


def _update_returning(queryset: QuerySet, values: dict[str, Any], returning: list[str]) -> list[tuple]:
    """``queryset.update(**values)`` that also answers which rows it changed (``RETURNING``).

    PostgreSQL and SQLite (3.35+) both support ``UPDATE ... RETURNING``; the
    WHERE clause is the ORM's, so the rules (``daemon_gone_q`` and friends)
    keep their one home. The queryset must filter on its own table only (use
    subqueries), so the guard conditions stay on the updated row itself, where
    PostgreSQL re-checks them against a row another transaction just changed.
    """
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    using = queryset.db
    sql, params = query.get_compiler(using).as_sql()
    connection = connections[using]
    fields = [queryset.model._meta.get_field(name) for name in returning]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {columns}", params)
        rows = cursor.fetchall()
    # Raw values as the driver gives them (SQLite: a UUID is 32 hex digits): the fields' Python values.
    return [tuple(f.to_python(value) for f, value in zip(fields, row, strict=True)) for row in rows]


def mark_gone_daemons_disconnected(now: datetime) -> list[str]:
    """Daemons gone by the lease but still stored as connected become ``disconnected``; their names.

    The status shown for a daemon then agrees with its lease. The WHERE clause
    is the lease itself, on the daemon's own row: a daemon heard from while
    this runs no longer matches and stays connected.
    """
    gone = Daemon.objects.filter(daemon_gone_q(now), status=DaemonStatus.CONNECTED)
    rows = _update_returning(gone, {"status": DaemonStatus.DISCONNECTED}, ["id", "name", "last_heartbeat_at"])
    # Each one's ``daemon_gone`` event for the notifications, in this transaction: one INSERT.
    record_daemons_gone(rows, at=now)
    return [name for _, name, _ in rows]


def interruptible_orphans(now: datetime) -> QuerySet[SupervisorState]:
    """Active supervisors whose owner (the daemon of their supervisor task) is gone, or that have none."""
    return SupervisorState.objects.filter(orphaned_q(now), state__in=INTERRUPTIBLE_STATES)


def interrupt_orphaned_supervisors(now: datetime) -> list[tuple[Any, Any, Any]]:
    """Set ``interrupted`` on the active supervisors whose daemon is gone; (contract_id, task_id, id) of each.

    One UPDATE. The candidates are locked with SKIP LOCKED (PostgreSQL), and
    the UPDATE re-checks on each row its state and its epoch: a row that
    another watchdog interrupted, or that a daemon claimed (a restoration
    moves the epoch), while this statement ran is left alone.
    """
    candidates = interruptible_orphans(now).filter(epoch_unchanged_q())
    if connections[candidates.db].features.has_select_for_update_skip_locked:
        candidates = candidates.select_for_update(skip_locked=True, of=("self",))
    guarded = SupervisorState.objects.filter(pk__in=candidates.values("pk"), state__in=INTERRUPTIBLE_STATES).filter(
        epoch_unchanged_q()
    )
    return _update_returning(
        guarded,
        {"state": SupervisorStatus.INTERRUPTED, "updated_at": timezone.now()},
        ["contract_id", "task_id", "id"],
    )


def _reasons(rows: list[tuple[Any, Any, Any]]) -> tuple[list[dict[str, str]], dict[str, list[str]]]:
    """Why each (of the first WATCHDOG_RECORDED_IDS) was interrupted, and the contracts per daemon: one query."""
    recorded = rows[: max(0, settings.WATCHDOG_RECORDED_IDS)]
    owners = {
        row["id"]: row
        for row in Task.objects.filter(pk__in=[task_id for _, task_id, _ in recorded]).values(
            "id", "daemon__name", "daemon__last_heartbeat_at", "daemon__created_at"
        )
    }
    entries: list[dict[str, str]] = []
    by_daemon: dict[str, list[str]] = defaultdict(list)
    for contract_id, task_id, _ in recorded:
        owner = owners.get(task_id) or {}
        name = owner.get("daemon__name")
        if name is None:
            reason = "its supervisor task has no daemon"
        else:
            since = owner.get("daemon__last_heartbeat_at") or owner.get("daemon__created_at")
            reason = f"daemon {name} gone since {since.isoformat(timespec='seconds') if since else 'ever'}"
        entries.append({"contract_id": str(contract_id), "reason": reason})
        by_daemon[reason].append(str(contract_id))
    return entries, by_daemon


def run_watchdog(*, now: datetime | None = None) -> WatchdogReport:
    """One watchdog pass (see the module's docstring); records and returns what it did.

    ``now`` is the moment the lease is judged at (tests move it). The changes
    and their record commit together; a run that fails records its error in a
    run of its own, logs it, and raises, so the job shows as failed.
    """
    now = now or timezone.now()
    report = WatchdogReport(started_at=timezone.now())
    using = router.db_for_write(WatchdogRun)
    try:
        with transaction.atomic(using=using):
            report.daemons_marked_gone = mark_gone_daemons_disconnected(now)
            rows = interrupt_orphaned_supervisors(now)
            report.supervisors_interrupted = len(rows)
            report.interrupted, by_reason = _reasons(rows)
            # Each one's event, with its reason: one INSERT ... SELECT while the UPDATE's row locks are held.
            record_interruptions([pk for _, _, pk in rows], actor=WATCHDOG_ACTOR, at=now)
            report.stale = stale_supervisors(now).count()
            report.stale_recorded = record_stale_episodes(now=now, actor=WATCHDOG_ACTOR)
            report.finished_at = timezone.now()
            cap = max(0, settings.WATCHDOG_RECORDED_IDS)
            run = WatchdogRun.objects.create(
                started_at=report.started_at,
                finished_at=report.finished_at,
                daemons_marked_gone=len(report.daemons_marked_gone),
                gone_daemon_names=report.daemons_marked_gone[:cap],
                supervisors_interrupted=report.supervisors_interrupted,
                interrupted=report.interrupted,
                stale=report.stale,
            )
            report.run_id = run.pk
            # The record of runs stays small: one DELETE of the runs older than WATCHDOG_KEEP_RUNS_DAYS.
            keep = timedelta(days=settings.WATCHDOG_KEEP_RUNS_DAYS)
            WatchdogRun.objects.filter(started_at__lt=report.started_at - keep).delete()
    except Exception as exc:
        WatchdogRun.objects.create(started_at=report.started_at, finished_at=timezone.now(), error=repr(exc)[:2000])
        logger.exception("watchdog run failed; nothing it would have changed was changed")
        raise
    _log(report, by_reason)
    return report


def _log(report: WatchdogReport, by_reason: dict[str, list[str]]) -> None:
    """One line per gone daemon and per reason, and a summary: what staff read in the logs."""
    for name in report.daemons_marked_gone:
        logger.warning("watchdog: daemon %s is gone by its lease (%ss silent); marked disconnected", name,
                       int(gone_after().total_seconds()))  # fmt: skip
    for reason, contracts in by_reason.items():
        logger.warning(
            "watchdog: interrupted %d supervisor(s), actor %s, reason: %s; contracts %s",
            len(contracts),
            WATCHDOG_ACTOR.label,
            reason,
            ", ".join(contracts[:20]) + (" ..." if len(contracts) > 20 else ""),
        )
    if report.supervisors_interrupted > len(report.interrupted):
        logger.warning(
            "watchdog: %d more supervisor(s) interrupted than recorded one by one (WATCHDOG_RECORDED_IDS)",
            report.supervisors_interrupted - len(report.interrupted),
        )
    logger.info(
        "watchdog run: %d daemon(s) marked gone, %d supervisor(s) interrupted, %d stale",
        len(report.daemons_marked_gone),
        report.supervisors_interrupted,
        report.stale,
    )


def last_watchdog_run() -> WatchdogRun | None:
    """The newest recorded run, for the dashboard."""
    return WatchdogRun.objects.order_by("-started_at", "-id").first()
