"""Reads shared by the admin, the API and the management commands.

Grouped by area; each group says which part of the service owns it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from supervisors.enums import ACTIVE_STATES
from supervisors.models import QuestionAnswer, RestorationLog, SupervisorEvent, SupervisorState
from supervisors.services.ownership import orphaned_q
from supervisors.services.validation import conversation_checks_sql, json_type_sql
from supervisors.validators import parse_aware_datetime

# --- Persistence: questions and answers ---------------------------------------


def unacknowledged_answers(contract_id: uuid.UUID | str) -> QuerySet[QuestionAnswer]:
    """Answers the contract's daemon has not yet acknowledged, oldest first."""
    return QuestionAnswer.objects.filter(supervisor__contract_id=contract_id, acknowledged_at__isnull=True).order_by(
        "answered_at", "id"
    )


def get_supervisors_with_pending_questions() -> QuerySet[SupervisorState]:
    """Supervisors with at least one pending question, conversation left unloaded (the seed's query)."""
    return (
        SupervisorState.objects.exclude(pending_questions=[])
        .defer("conversation_history")
        .select_related("contract")
        .order_by("last_activity", "id")
    )


def pending_questions_overview(supervisors: QuerySet[SupervisorState] | None = None) -> list[dict[str, Any]]:
    """Every pending question across supervisors, oldest first, with where it comes from.

    Each item: ``contract_id``, ``contract_name``, ``supervisor_id``, ``state``,
    ``phase`` and ``question`` (the PendingQuestion dict as stored).
    ``supervisors`` narrows it (the API: a daemon's own) in the same query.
    """
    rows = get_supervisors_with_pending_questions()
    if supervisors is not None:
        rows = rows.filter(pk__in=supervisors.values("pk"))
    rows = rows.values("id", "contract_id", "contract__name", "state", "phase", "pending_questions")
    items = [
        {
            "contract_id": row["contract_id"],
            "contract_name": row["contract__name"],
            "supervisor_id": row["id"],
            "state": row["state"],
            "phase": row["phase"],
            "question": question,
        }
        for row in rows
        for question in row["pending_questions"] or []
        if isinstance(question, dict)
    ]
    items.sort(key=lambda item: (_asked_at(item["question"]), str(item["question"].get("id"))))
    return items


def _asked_at(question: dict[str, Any]) -> datetime:
    """When a question was asked, comparable across time zones; unreadable times sort first."""
    return parse_aware_datetime(question.get("askedAt")) or datetime.min.replace(tzinfo=UTC)


# --- Restoration: stale supervisors, gone daemons, batch selection ------------------------------


def stale_threshold(now: datetime | None = None, stale_after: timedelta | None = None) -> datetime:
    """The moment before which an active supervisor's last activity makes it stale."""
    now = now or timezone.now()
    if stale_after is None:
        stale_after = timedelta(seconds=settings.SUPERVISOR_STALE_AFTER_SECONDS)
    return now - stale_after


def stale_q(now: datetime | None = None, stale_after: timedelta | None = None) -> Q:
    """The stale condition as a filter, so selections can combine it with others.

    Only active states count: a supervisor waiting for a human is not stale
    because the human is slow, and a blocked or failed one is not expected to
    make progress by itself.
    """
    return Q(state__in=sorted(ACTIVE_STATES), last_activity__lt=stale_threshold(now, stale_after))


def stale_supervisors(now: datetime | None = None, stale_after: timedelta | None = None) -> QuerySet[SupervisorState]:
    """Supervisors silent longer than SUPERVISOR_STALE_AFTER_SECONDS in an active state, oldest first."""
    return SupervisorState.objects.filter(stale_q(now, stale_after)).order_by("last_activity", "id")


def is_stale(supervisor: SupervisorState, now: datetime | None = None, stale_after: timedelta | None = None) -> bool:
    """The same rule as ``stale_supervisors`` for one row already in memory."""
    return supervisor.state in ACTIVE_STATES and supervisor.last_activity < stale_threshold(now, stale_after)


@dataclass(frozen=True)
class SupervisorSelection:
    """Which supervisors a batch command works on; every given criterion must hold.

    ``all_supervisors`` must be asked for explicitly so that a command run with
    no option at all does nothing rather than everything.
    """

    contract_ids: tuple[uuid.UUID, ...] = ()
    states: tuple[str, ...] = ()
    stale: bool = False
    all_supervisors: bool = False
    stale_after: timedelta | None = None
    #: Leave out supervisors restored at or after this moment (finishing an interrupted run).
    not_restored_since: datetime | None = None
    #: Supervisors whose task runs on one of these daemons (after a daemon crashed).
    daemon_ids: tuple[uuid.UUID, ...] = ()
    #: Supervisors whose owner is gone by the lease (or that have none).
    orphaned: bool = False

    @property
    def is_empty(self) -> bool:
        return not (
            self.contract_ids or self.states or self.stale or self.all_supervisors or self.daemon_ids or self.orphaned
        )

    def q(self, now: datetime | None = None) -> Q:
        condition = Q()
        if self.contract_ids:
            condition &= Q(contract_id__in=list(self.contract_ids))
        if self.states:
            condition &= Q(state__in=list(self.states))
        if self.stale:
            condition &= stale_q(now, self.stale_after)
        if self.daemon_ids:
            condition &= Q(task__daemon_id__in=list(self.daemon_ids))
        if self.orphaned:
            condition &= orphaned_q()
        if self.not_restored_since is not None:
            condition &= Q(last_restored_at__isnull=True) | Q(last_restored_at__lt=self.not_restored_since)
        return condition

    def queryset(self, now: datetime | None = None) -> QuerySet[SupervisorState]:
        if self.is_empty:
            return SupervisorState.objects.none()
        return SupervisorState.objects.filter(self.q(now))

    def describe(self) -> str:
        parts = []
        if self.contract_ids:
            parts.append(f"contract in ({', '.join(str(c) for c in self.contract_ids)})")
        if self.states:
            parts.append(f"state in ({', '.join(self.states)})")
        if self.stale:
            parts.append("stale")
        if self.daemon_ids:
            parts.append(f"on daemon ({', '.join(str(d) for d in self.daemon_ids)})")
        if self.orphaned:
            parts.append("orphaned (daemon gone)")
        return " and ".join(parts) or ("all supervisors" if self.all_supervisors else "nothing")


def selection_id_batches(
    selection: SupervisorSelection, *, batch_size: int, now: datetime | None = None
) -> Iterable[list[uuid.UUID]]:
    """Ids of the selected supervisors in keyset pages, without locking.

    Keyset paging (``id > last``) keeps each page one cheap index scan however
    far the run has gone, and rows restored meanwhile by someone else are
    re-checked under the lock by the caller.
    """
    last: uuid.UUID | None = None
    base = selection.queryset(now).order_by("id").values_list("id", flat=True)
    while True:
        page = base.filter(id__gt=last) if last is not None else base
        ids = list(page[:batch_size])
        if not ids:
            return
        yield ids
        last = ids[-1]


# --- Admin: estimated counts, conversation pages, dashboard figures -----------------------------


def estimated_row_count(table: str) -> int | None:
    """The planner's row estimate for ``table`` (PostgreSQL ``pg_class.reltuples``), or None.

    None on other databases and for a table never analysed (reltuples is -1
    then), so the caller falls back to an exact count. Exact ``COUNT(*)`` on a
    large PostgreSQL table reads every visible row; the estimate costs one
    catalogue lookup and is what the planner itself believes.
    """
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:
        return None
    return int(row[0])


def distinct_phases(limit: int = 100) -> list[str]:
    """The phases supervisors are in, in order, at most ``limit`` of them (the admin's phase filter).

    ``SELECT DISTINCT phase`` reads the whole table (0.6 s at a million rows);
    on PostgreSQL the phases are found by walking the phase index one value at
    a time (a "loose index scan"), one index probe per distinct phase.
    """
    if connection.vendor != "postgresql":
        return list(SupervisorState.objects.order_by("phase").values_list("phase", flat=True).distinct()[:limit])
    with connection.cursor() as cursor:
        cursor.execute(
            """
WITH RECURSIVE phases (phase, n) AS (
    (SELECT phase, 1 FROM supervisor_states ORDER BY phase LIMIT 1)
    UNION ALL
    SELECT (SELECT s.phase FROM supervisor_states s WHERE s.phase > p.phase ORDER BY s.phase LIMIT 1), p.n + 1
    FROM phases p WHERE p.phase IS NOT NULL AND p.n < %s
)
SELECT phase FROM phases WHERE phase IS NOT NULL
""",
            [limit],
        )
        return [row[0] for row in cursor.fetchall()]


def estimated_query_rows(queryset: QuerySet) -> int | None:
    """How many rows the planner expects ``queryset`` to return (``EXPLAIN``, nothing run), or None.

    A filter matching a quarter of a million rows is counted exactly only by
    reading them all; the admin shows the planner's figure for such a list
    instead, and says it is an estimate. None on other databases.
    """
    if connection.vendor != "postgresql":
        return None
    plan = queryset.order_by().explain(format="json")
    if not plan:
        return 0  # a condition Django knows matches nothing (``pk__in=[]``): no query was sent
    return int(json.loads(plan)[0]["Plan"]["Plan Rows"])


@dataclass(frozen=True)
class ConversationPage:
    """A slice of a conversation history, read without loading the whole history into Python."""

    total: int | None  # number of messages; None when the history is not a JSON array
    json_type: str  # "array" for a well-formed history
    offset: int
    messages: list[Any]
    raw_preview: str = ""  # the start of the stored JSON when it is not an array
    # What conversation_checks answers (the value's kind as Python names it, the first message without a
    # role), read in the same pass as the length when asked for (``with_checks``).
    history_kind: str | None = None
    history_bad_index: int | None = None


RAW_PREVIEW_CHARS = 20_000


def conversation_page(
    supervisor_id: uuid.UUID, *, offset: int | None, limit: int, with_checks: bool = False
) -> ConversationPage:
    """Messages ``offset .. offset+limit-1`` of a supervisor's conversation history; ``None``: the newest page.

    The database slices the JSON (``jsonb_path_query_array`` on PostgreSQL,
    ``json_each`` on SQLite), so a 5 MB history costs the page a few kilobytes
    of transfer and parsing instead of five megabytes. The newest page starts
    at a multiple of ``limit``, so its numbering agrees with the other pages';
    an offset past the end reads the newest page too. ``with_checks`` adds the
    history's checks (``history_kind``, ``history_bad_index``) to the query
    that reads its length: one decompression of a large history fewer than a
    query of their own (the supervisor page's 5 MB history: about 15 ms).
    """
    pk = SupervisorState._meta.pk.get_db_prep_value(supervisor_id, connection)
    postgres = connection.vendor == "postgresql"
    col = "s.conversation_history"
    if postgres:
        # The type computed once, in a sub-select kept apart (OFFSET 0): each use of the history would
        # decompress it again (a 5 MB history: about 5 ms each).
        json_type = "x.t"
        source = f"supervisor_states s CROSS JOIN LATERAL (SELECT jsonb_typeof({col}) AS t OFFSET 0) x"
    else:
        json_type, source = json_type_sql(col), "supervisor_states s"
    length = "jsonb_array_length" if postgres else "json_array_length"
    checks = ", ".join(conversation_checks_sql(col, json_type)) if with_checks else "NULL, NULL"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {json_type}, CASE WHEN {json_type} = 'array' THEN {length}({col}) END, {checks}"
            f" FROM {source} WHERE s.id = %s",
            [pk],
        )
        row = cursor.fetchone()
        if row is None:
            return ConversationPage(total=0, json_type="missing", offset=0, messages=[])
        json_type, total, kind, bad_index = row[0] or "null", row[1], row[2], row[3]
        checked = {"history_kind": kind, "history_bad_index": bad_index}
        if json_type != "array":
            preview_sql = (
                "SELECT left(conversation_history::text, %s) FROM supervisor_states WHERE id = %s"
                if postgres
                else "SELECT substr(conversation_history, 1, %s) FROM supervisor_states WHERE id = %s"
            )
            cursor.execute(preview_sql, [RAW_PREVIEW_CHARS, pk])
            preview = cursor.fetchone()
            return ConversationPage(
                total=None,
                json_type=json_type,
                offset=0,
                messages=[],
                raw_preview=(preview[0] or "") if preview else "",
                **checked,
            )
        newest = max(0, ((total - 1) // limit) * limit)
        offset = newest if offset is None or offset >= total else max(0, offset)
        end = min(total, offset + limit) - 1
        if end < offset:
            return ConversationPage(total=total, json_type=json_type, offset=offset, messages=[], **checked)
        if postgres:
            cursor.execute(
                "SELECT jsonb_path_query_array(conversation_history, %s::jsonpath)::text"
                " FROM supervisor_states WHERE id = %s",
                [f"$[{offset} to {end}]", pk],
            )
            messages = json.loads(cursor.fetchone()[0])
        else:
            cursor.execute(
                "SELECT e.value, e.type FROM supervisor_states s, json_each(s.conversation_history) e"
                " WHERE s.id = %s AND e.key BETWEEN %s AND %s ORDER BY e.key",
                [pk, offset, end],
            )
            messages = [
                json.loads(value) if kind in ("object", "array") else _sqlite_scalar(value, kind)
                for value, kind in cursor.fetchall()
            ]
    return ConversationPage(total=total, json_type=json_type, offset=offset, messages=messages, **checked)


@dataclass(frozen=True)
class ConversationMatch:
    index: int
    role: str | None
    snippet: str


#: Characters shown around a search match.
MATCH_CONTEXT_CHARS = 80


def conversation_search(supervisor_id: uuid.UUID, text: str, *, limit: int = 50) -> list[ConversationMatch]:
    """Messages whose content contains ``text`` (case-insensitive), oldest first, at most ``limit``.

    The database walks the array and returns only the matches' indexes and
    snippets: a 5 MB history is searched without being loaded into Python.
    A message whose ``content`` is not a string is searched as its JSON text.
    """
    pk = SupervisorState._meta.pk.get_db_prep_value(supervisor_id, connection)
    needle = text.lower()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "WITH m AS (SELECT e.ordinality - 1 AS idx, e.value ->> 'role' AS role,"
                " coalesce(e.value ->> 'content', e.value::text) AS body"
                " FROM supervisor_states s, jsonb_array_elements(CASE WHEN jsonb_typeof(s.conversation_history)"
                " = 'array' THEN s.conversation_history ELSE '[]'::jsonb END) WITH ORDINALITY e WHERE s.id = %s)"
                " SELECT idx, role, substr(body, greatest(1, strpos(lower(body), %s) - %s), %s)"
                " FROM m WHERE strpos(lower(body), %s) > 0 ORDER BY idx LIMIT %s",
                [pk, needle, MATCH_CONTEXT_CHARS, 2 * MATCH_CONTEXT_CHARS + len(text), needle, limit],
            )
        else:
            cursor.execute(
                "WITH m AS (SELECT CAST(e.key AS INTEGER) AS idx,"
                " CASE WHEN e.type = 'object' THEN json_extract(e.value, '$.role') END AS role,"
                " CASE WHEN e.type = 'object' AND json_type(e.value, '$.content') = 'text'"
                " THEN json_extract(e.value, '$.content') ELSE e.value END AS body"
                " FROM supervisor_states s, json_each(CASE WHEN json_type(s.conversation_history) = 'array'"
                " THEN s.conversation_history ELSE '[]' END) e WHERE s.id = %s)"
                " SELECT idx, role, substr(body, max(1, instr(lower(body), %s) - %s), %s)"
                " FROM m WHERE instr(lower(body), %s) > 0 ORDER BY idx LIMIT %s",
                [pk, needle, MATCH_CONTEXT_CHARS, 2 * MATCH_CONTEXT_CHARS + len(text), needle, limit],
            )
        return [
            ConversationMatch(index=int(idx), role=role if isinstance(role, str) else None, snippet=snippet or "")
            for idx, role, snippet in cursor.fetchall()
        ]


def _sqlite_scalar(value: Any, kind: str) -> Any:
    if kind == "null":
        return None
    if kind in ("true", "false"):
        return kind == "true"
    return value


def restorations_since(since: datetime) -> list[dict[str, Any]]:
    """Restorations logged since ``since``, counted by source and outcome (``RestorationOutcome``)."""
    return list(
        RestorationLog.objects.filter(started_at__gte=since)
        .order_by()
        .values("source", "outcome")
        .annotate(n=Count("id"))
        .order_by("source", "outcome")
    )


@dataclass(frozen=True)
class TimelinePage:
    """One page of a supervisor's events, newest first, and how many match in all (None: not counted)."""

    events: list[SupervisorEvent]
    total: int | None


def supervisor_timeline(
    supervisor_id: uuid.UUID, *, kinds: Sequence[str] = (), offset: int = 0, limit: int = 50, count: bool = True
) -> TimelinePage:
    """A supervisor's events (of ``kinds``, or all), newest first: two queries (one without ``count``).

    Retention bounds a supervisor's events (``SUPERVISOR_EVENTS_KEEP``), so the
    count reads at most that many index entries. An offset past the end reads
    nothing more.
    """
    events = SupervisorEvent.objects.filter(supervisor_id=supervisor_id)
    if kinds:
        events = events.filter(kind__in=list(kinds))
    total = events.count() if count else None
    if total is not None and offset >= total:
        return TimelinePage([], total)
    page = list(events.select_related("actor_user").order_by("-sequence")[offset : offset + limit])
    return TimelinePage(page, total)


# --- Restore jobs: progress and results for the admin's job pages --------------------------------


@dataclass(frozen=True)
class RestoreJobProgress:
    """How far a restore job is: items by status, the restorations' outcomes, the rate so far."""

    total: int
    done: int
    failed: int
    skipped: int
    remaining: int
    by_outcome: dict[str, int]
    #: Supervisors settled per second between the job's start and its last progress (None before any).
    rate: float | None

    @property
    def settled(self) -> int:
        return self.done + self.failed + self.skipped

    @property
    def percent(self) -> int:
        return int(100 * self.settled / self.total) if self.total else 100

    @property
    def seconds_left(self) -> int | None:
        return int(self.remaining / self.rate) if self.rate and self.remaining else None


def restore_job_progress(job: Any) -> RestoreJobProgress:
    """Two grouped counts over the job's items (its index), whatever the job's size."""
    from supervisors.models import RestoreJobItem

    items = RestoreJobItem.objects.filter(job_id=job.pk).order_by()
    by_status = dict(items.values_list("status").annotate(n=Count("id")))
    by_outcome = dict(items.exclude(outcome="").values_list("outcome").annotate(n=Count("id")).order_by("outcome"))
    done, failed, skipped = (by_status.get(s, 0) for s in ("done", "failed", "skipped"))
    rate = None
    if job.started_at and job.last_progress_at and done + failed + skipped:
        seconds = (job.last_progress_at - job.started_at).total_seconds()
        rate = (done + failed + skipped) / seconds if seconds > 0 else None
    return RestoreJobProgress(
        total=sum(by_status.values()),
        done=done,
        failed=failed,
        skipped=skipped,
        remaining=by_status.get("pending", 0),
        by_outcome=by_outcome,
        rate=rate,
    )
