"""Which supervisors need a person or a restore, how badly, and why: the admin's needs-attention page.

Membership and order are decided by the database in one expression
(``attention_queryset``). Evaluating it means reading every supervisor (the
columns it depends on are the ones heartbeats rewrite, so no index may serve
it, and time passing changes the answer), which at a million supervisors takes
seconds: so a job (``refresh_attention``, asked for by the page when its figures
are older than ``ATTENTION_REFRESH_SECONDS``) stores the answer in the small,
indexed ``supervisor_attention`` table in one set-based statement that writes
only the rows that changed. The page reads one page of that table through its
index and re-evaluates those rows live, so a row's "why" is never older than
the request, and a supervisor restored since the refresh drops out at once.
When the stored answer is older than ``ATTENTION_MAX_AGE_SECONDS`` (no job
worker) the page refreshes it itself: slower at a large table, never stale.

The words of the "why" column are written in Python for the rows of one page
only, with their saved state validated in the batched way restorations use
(``load_worlds``: a fixed number of queries).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone
from django.utils.timesince import timesince

from supervisors import snapshots
from supervisors.enums import ContractStatus, RecoveryAction, SupervisorStatus
from supervisors.models import Daemon, MetricsSnapshot, SupervisorAttention, SupervisorState
from supervisors.selectors import stale_q
from supervisors.services.ownership import daemon_gone_q, is_daemon_gone
from supervisors.services.validation import conversation_checks, load_worlds, validate_with_world
from supervisors.validators import parse_aware_datetime


@contextmanager
def without_jit() -> Iterator[None]:
    """Run the block's queries in one transaction with PostgreSQL's JIT compiler off.

    The attention query's CASE with sub-plans is costed high enough for JIT,
    which then spends ~0.5 s compiling 80 functions for a query that runs in
    tens of milliseconds (measured: bench/admin_bench.py). ``SET LOCAL`` lasts
    until the transaction ends, so it is safe behind PgBouncer in transaction
    mode (a connection-level setting would not be).
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
        yield


@dataclass(frozen=True)
class AttentionKind:
    severity: int
    key: str
    label: str


#: Most severe first; a supervisor shows under the first kind it matches.
MANUAL = AttentionKind(1, "manual", "Needs manual intervention")
DAEMON_GONE = AttentionKind(2, "daemon_gone", "Daemon gone")
FAILED = AttentionKind(3, "failed", "Failed")
BLOCKED = AttentionKind(4, "blocked", "Blocked")
STALE = AttentionKind(5, "stale", "Stale")
INTERRUPTED = AttentionKind(6, "interrupted", "Interrupted")
WAITING = AttentionKind(7, "waiting", "Waiting for a human")
KINDS: tuple[AttentionKind, ...] = (MANUAL, DAEMON_GONE, FAILED, BLOCKED, STALE, INTERRUPTED, WAITING)
BY_SEVERITY = {kind.severity: kind for kind in KINDS}
BY_KEY = {kind.key: kind for kind in KINDS}

#: States nobody needs to look at unless something else is wrong with them.
_SETTLED = [SupervisorStatus.COMPLETED]


def _conditions(now: datetime) -> list[tuple[AttentionKind, Q]]:
    """Each kind's condition, in severity order (the CASE picks the first that holds)."""
    known_states = list(SupervisorStatus.values)
    return [
        (
            MANUAL,
            ~Q(state__in=known_states)
            | Q(contract__status=ContractStatus.ARCHIVED) & ~Q(state__in=_SETTLED)
            | (Q(task__isnull=True) | Q(task__is_supervisor=False) | ~Q(task__contract_id=F("contract_id")))
            & ~Q(state__in=_SETTLED),
        ),
        (DAEMON_GONE, _orphaned_on_the_joined_task(now) & ~Q(state__in=[*_SETTLED, SupervisorStatus.FAILED])),
        (FAILED, Q(state=SupervisorStatus.FAILED)),
        (BLOCKED, Q(state=SupervisorStatus.BLOCKED)),
        (STALE, stale_q(now)),
        (INTERRUPTED, Q(state=SupervisorStatus.INTERRUPTED)),
        (WAITING, Q(state=SupervisorStatus.WAITING_FOR_USER) | ~Q(pending_questions=[]) & ~Q(state__in=_SETTLED)),
    ]


def _annotated(now: datetime) -> QuerySet[SupervisorState]:
    """Every supervisor with ``attention``: the severity of the first kind it matches, or None."""
    severity = Case(
        *(When(condition, then=Value(k.severity)) for k, condition in _conditions(now)),
        default=Value(None),
        output_field=IntegerField(),
    )
    return (
        SupervisorState.objects.annotate(attention=severity)
        .defer("conversation_history")
        .select_related("contract", "task__daemon")
    )


def _orphaned_on_the_joined_task(now: datetime) -> Q:
    """``ownership.orphaned_q`` read from the supervisor task already joined, not a subquery per row.

    The same rule (the row's own task is its contract's supervisor task, with no
    daemon or a gone one): evaluated as a correlated EXISTS it ran an index scan
    per supervisor, most of a refresh's time at a million supervisors. The gone
    daemons are a small set, hashed once.
    """
    gone = Daemon.objects.filter(daemon_gone_q(now)).values("pk")
    return Q(task__is_supervisor=True, task__contract_id=F("contract_id")) & (
        Q(task__daemon_id__isnull=True) | Q(task__daemon_id__in=gone)
    )


def attention_queryset(now: datetime | None = None, kind: AttentionKind | None = None) -> QuerySet[SupervisorState]:
    """Supervisors needing attention, annotated with ``attention`` (a severity), worst and longest-silent first.

    Evaluated over the whole table: what the refresh stores, and what tests compare the page with.
    """
    rows = _annotated(now or timezone.now()).filter(attention__isnull=False)
    if kind is not None:
        rows = rows.filter(attention=kind.severity)
    return rows.order_by("attention", "last_activity", "id")


def attention_counts(now: datetime | None = None) -> dict[AttentionKind, int]:
    """How many supervisors need attention per kind, in one GROUP BY over the whole table."""
    rows = attention_queryset(now).order_by().values("attention").annotate(n=Count("id"))
    return _by_kind({row["attention"]: row["n"] for row in rows})


def _by_kind(counts: dict[int, int]) -> dict[AttentionKind, int]:
    return {kind: counts.get(kind.severity, 0) for kind in KINDS}


# --- The stored answer: supervisor_attention, refreshed by a job -----------------------------------

SNAPSHOT = "attention"
#: Refreshes are serialised on PostgreSQL (two upserts over the same rows in different orders deadlock).
_LOCK_KEY = 0x6D616B696D61_0A


@dataclass(frozen=True)
class AttentionSnapshot:
    """The last refresh: how many supervisors per kind, and when it was computed."""

    counts: dict[AttentionKind, int]
    computed_at: datetime
    duration_ms: int


def refresh_attention(now: datetime | None = None) -> AttentionSnapshot:
    """Recompute ``supervisor_attention`` and its counts in one transaction; only changed rows are written."""
    now = now or timezone.now()
    started = timezone.now()
    # One read of every supervisor (on PostgreSQL a parallel plan, which a data-modifying statement
    # cannot have) finds what differs from the stored rows: the supervisors whose kind or last activity
    # changed (attention set) and those that no longer need attention (NULL). Only those are written:
    # an upsert of every row, even one that changes nothing, locks (so writes) each of them, 65 s a pass
    # at a million supervisors. Rows of deleted supervisors went with them (ON DELETE CASCADE).
    select, params = _annotated(now).order_by().values_list("id", "attention", "last_activity").query.sql_with_params()
    with without_jit(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        cursor.execute(
            f"""
CREATE TEMPORARY TABLE attention_changes AS
SELECT c.id, c.attention, c.last_activity
FROM ({select}) c LEFT JOIN supervisor_attention a ON a.supervisor_id = c.id
WHERE CASE WHEN c.attention IS NULL THEN a.supervisor_id IS NOT NULL
           ELSE a.supervisor_id IS NULL OR a.severity <> c.attention OR a.since <> c.last_activity END
""",
            params,
        )
        cursor.execute(
            "DELETE FROM supervisor_attention WHERE supervisor_id IN "
            "(SELECT id FROM attention_changes WHERE attention IS NULL)"
        )
        cursor.execute(
            """
INSERT INTO supervisor_attention (supervisor_id, severity, since)
SELECT id, attention, last_activity FROM attention_changes WHERE attention IS NOT NULL
ON CONFLICT (supervisor_id) DO UPDATE SET severity = excluded.severity, since = excluded.since
"""
        )
        cursor.execute("DROP TABLE attention_changes")
        counts = dict(SupervisorAttention.objects.order_by().values_list("severity").annotate(n=Count("supervisor_id")))
        snapshot = AttentionSnapshot(
            counts=_by_kind(counts),
            computed_at=now,
            duration_ms=round((timezone.now() - started).total_seconds() * 1000),
        )
        snapshots.store(SNAPSHOT, {str(k): n for k, n in counts.items()}, now, snapshot.duration_ms)
    return snapshot


def refresh_attention_if_due() -> AttentionSnapshot | None:
    """The job's entry: refresh unless another run just did (jobs queued while no worker ran pile up)."""
    if snapshots.refreshed_moments_ago(SNAPSHOT, settings.ATTENTION_REFRESH_SECONDS):
        return None
    return refresh_attention()


def current_attention(now: datetime) -> AttentionSnapshot:
    """The stored answer for the page, asking for a refresh when due, refreshing here when too old."""
    from supervisors import jobs

    row = MetricsSnapshot.objects.filter(name=SNAPSHOT).values("figures", "computed_at", "duration_ms").first()
    if row is None or now - row["computed_at"] > timedelta(seconds=settings.ATTENTION_MAX_AGE_SECONDS):
        return refresh_attention(now)
    if now - row["computed_at"] >= timedelta(seconds=settings.ATTENTION_REFRESH_SECONDS):
        snapshots.request_refresh(SNAPSHOT, jobs.refresh_attention.enqueue, now, settings.ATTENTION_REFRESH_SECONDS)
    counts = {int(k): int(n) for k, n in row["figures"].items()}
    return AttentionSnapshot(_by_kind(counts), row["computed_at"], row["duration_ms"])


def stored_page_ids(kind: AttentionKind | None) -> QuerySet:
    """The stored order's supervisor ids (sliced by the paginator: one index range scan per page)."""
    entries = SupervisorAttention.objects.order_by("severity", "since", "supervisor_id")
    if kind is not None:
        entries = entries.filter(severity=kind.severity)
    return entries.values_list("supervisor_id", flat=True)


def live_rows(ids: Sequence[Any], now: datetime) -> tuple[list[SupervisorState], int]:
    """The page's supervisors re-evaluated now, in the stored order; and how many no longer need attention."""
    found = {s.pk: s for s in _annotated(now).filter(pk__in=list(ids))}
    rows = [found[pk] for pk in ids if pk in found and found[pk].attention is not None]
    return rows, len(ids) - len(rows)


@dataclass(frozen=True)
class AttentionRow:
    supervisor: SupervisorState
    kind: AttentionKind
    why: str
    #: The validation's recovery action when the saved state is not valid, else None.
    recovery_action: str | None


def explain(supervisors: Sequence[SupervisorState], now: datetime | None = None) -> list[AttentionRow]:
    """The "why" in words for one page of ``attention_queryset``, validation included."""
    now = now or timezone.now()
    checked = {
        s.pk: s
        for s in conversation_checks(
            SupervisorState.objects.filter(pk__in=[s.pk for s in supervisors]).select_related("contract"),
            "conversation_history",
        )
    }
    worlds = load_worlds(list(checked.values()))
    rows = []
    for supervisor in supervisors:
        kind = BY_SEVERITY[supervisor.attention]
        reasons = [_why(kind, supervisor, now)]
        action = None
        full = checked.get(supervisor.pk)
        if full is not None:
            result = validate_with_world(full, worlds[full.pk])
            if not result.is_valid:
                action = result.recovery_action
                first = result.issues[0] if result.issues else "invalid"
                more = f" (and {len(result.issues) - 1} more)" if len(result.issues) > 1 else ""
                reasons.insert(0, f"Saved state invalid: {first}{more}; recovery: {RecoveryAction(action).label}.")
        rows.append(AttentionRow(supervisor, kind, " ".join(reasons), action))
    return rows


def _ago(moment: datetime | None, now: datetime) -> str:
    return f"{timesince(moment, now)} ago" if moment else "never"


def _why(kind: AttentionKind, supervisor: SupervisorState, now: datetime) -> str:
    error = (supervisor.error_message or "").strip()
    error_text = f": {error[:300]}" if error else " (no error message saved)"
    if kind is MANUAL:
        if supervisor.state not in SupervisorStatus.values:
            return f"Saved state {supervisor.state!r} is not a state this service knows; correct it before restoring."
        if supervisor.task_id is None:
            return "No supervisor task: nothing can run it until staff assign one or start fresh."
        task = supervisor.task
        if not task.is_supervisor or task.contract_id != supervisor.contract_id:
            return "It points at a task that is not its contract's supervisor task: no daemon owns it; correct it."
        return "Its contract is archived while the supervisor is not completed."
    if kind is DAEMON_GONE:
        task = supervisor.task
        daemon = task.daemon if task else None
        if daemon is None:
            return "Its supervisor task has no daemon: waiting for a daemon to claim it, or restore it."
        heard = daemon.last_heartbeat_at
        gone = "gone" if is_daemon_gone(daemon, now) else "leaving"
        return (
            f"Daemon {daemon.name} {gone}, last heard {_ago(heard, now)}: "
            "waiting for a live daemon to claim it, or restore it."
        )
    if kind is FAILED:
        return f"Failed{error_text}."
    if kind is BLOCKED:
        return f"Blocked{error_text}."
    if kind is STALE:
        return f"Silent for {timesince(supervisor.last_activity, now)} while {supervisor.state.replace('_', ' ')}."
    if kind is INTERRUPTED:
        return "Interrupted: waiting for a daemon to claim it, or restore it."
    questions = [q for q in supervisor.pending_questions or [] if isinstance(q, dict)]
    asked = [t for t in (parse_aware_datetime(q.get("askedAt")) for q in questions) if t is not None]
    if not questions:
        return f"Waiting for a human for {timesince(supervisor.last_activity, now)}, with no question pending."
    oldest = f", the oldest asked {_ago(min(asked), now)}" if asked else ""
    return f"{len(questions)} question(s) waiting for a human{oldest}."
