"""A supervisor's timeline: its events (``SupervisorEvent``), newest first, paged, filtered by kind.

Read-only. The page costs a fixed number of queries whatever the number of
events (the supervisor with its contract, a count, one page with the staff
users who acted); a bad querystring (an unknown kind, NUL, a page number that
is not one or lies past the end) gives an empty page and a message saying why,
never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator

from supervisors.enums import ActorKind, EventKind, RestorationOutcome, RestorationSource
from supervisors.models import SupervisorEvent, SupervisorState
from supervisors.selectors import supervisor_timeline
from supervisors.validators import parse_aware_datetime

from .display import age, readable

if TYPE_CHECKING:
    from .supervisor import SupervisorStateAdmin

#: Events per page of the timeline.
PAGE_SIZE = 50
#: Events shown on the supervisor's own page, above the link to the whole timeline.
RECENT = 10
#: The largest page number the timeline reads (a supervisor keeps at most SUPERVISOR_EVENTS_KEEP events).
MAX_PAGE = 100_000

#: Colour family of each kind (the state badges' CSS classes in static/supervisors/admin.css).
TONES = {
    EventKind.INTERRUPTED: "warn",
    EventKind.STALE: "warn",
    EventKind.RESTORATION_REFUSED: "bad",
    EventKind.QUESTION_ASKED: "attention",
    EventKind.QUESTIONS_REDELIVERED: "attention",
    EventKind.RESTORED: "ok",
    EventKind.CHECKPOINT_RESTORED: "ok",
    EventKind.TAKEN_OVER: "ok",
    EventKind.CLAIMED: "ok",
    EventKind.CORRECTED: "info",
}


@dataclass(frozen=True)
class EventRow:
    """One event as the timeline shows it."""

    event: SupervisorEvent
    label: str
    tone: str
    text: str
    actor: str
    when: str
    age: str


def row_of(event: SupervisorEvent, now: datetime) -> EventRow:
    try:
        label = EventKind(event.kind).label
    except ValueError:
        label = event.kind
    return EventRow(
        event=event,
        label=label,
        tone=TONES.get(event.kind, "muted"),
        text=describe(event),
        actor=event.actor_label or event.get_actor_kind_display(),
        when=readable(event.occurred_at),
        age=age(event.occurred_at, now),
    )


def _when_text(value: Any) -> str:
    parsed = parse_aware_datetime(value)  # details may hold anything: an impossible date is not a 500
    return readable(parsed) if parsed is not None else str(value or "an unknown time")


def _quoted(value: Any) -> str:
    return f"“{Truncator(str(value or '')).chars(120)}”" if value else ""


def _source(value: Any) -> str:
    try:
        return RestorationSource(value).label.lower()
    except ValueError:
        return str(value)


def _outcome(value: Any) -> str:
    try:
        return RestorationOutcome(value).label.lower()
    except ValueError:
        return str(value)


def describe(event: SupervisorEvent) -> str:
    """What happened, in one sentence, from the event's details (which may hold anything: read defensively)."""
    d = event.details if isinstance(event.details, dict) else {}
    kind = event.kind
    if kind == EventKind.CREATED:
        return f"Supervisor created in state {d.get('state')}, phase {d.get('phase')}."
    if kind == EventKind.STATE_SAVED:
        changed = [f"{f} was {d[f + 'Before']}" for f in ("state", "phase") if f + "Before" in d]
        tail = f" ({'; '.join(changed)})" if changed else ""
        return f"Full state saved: state {d.get('state')}, phase {d.get('phase')}{tail}."
    if kind in (EventKind.STATE_UPDATED, EventKind.CORRECTED):
        fields = d.get("fields") if isinstance(d.get("fields"), list) else []
        moves = [f"{f} {d[f].get('from')} → {d[f].get('to')}" for f in ("state", "phase") if isinstance(d.get(f), dict)]
        verb = "Corrected" if kind == EventKind.CORRECTED else "Updated"
        return f"{verb} {', '.join(map(str, fields)) or 'nothing'}" + (f" ({'; '.join(moves)})" if moves else "") + "."
    if kind == EventKind.TASK_SPAWNED:
        waits = " and waits on it" if d.get("waiting") else ""
        again = "" if d.get("new", True) else " (already spawned)"
        return f"Spawned task {d.get('taskId')}{waits}{again}."
    if kind == EventKind.PHASE_CHANGED:
        return f"Phase changed from {d.get('from')} to {d.get('to')}."
    if kind == EventKind.QUESTION_ASKED:
        kind_of_question = d.get("questionType") or "general"
        return f"Asked {_quoted(d.get('question'))} ({kind_of_question}; question {d.get('questionId')})."
    if kind == EventKind.QUESTION_ANSWERED:
        return f"Answered by {d.get('answeredBy') or event.actor_label}: {_quoted(d.get('question'))}."
    if kind == EventKind.QUESTION_WITHDRAWN:
        return f"Question withdrawn without an answer: {_quoted(d.get('question'))}."
    if kind == EventKind.ANSWER_ACKNOWLEDGED:
        return f"The daemon picked up the answer to question {d.get('questionId')}."
    if kind == EventKind.QUESTIONS_REDELIVERED:
        count = d.get("count", 0)
        return f"{count} pending question{'s' if count != 1 else ''} delivered to the human again."
    if kind in (EventKind.RESTORED, EventKind.CHECKPOINT_RESTORED, EventKind.TAKEN_OVER, EventKind.CLAIMED):
        return _restoration_text(kind, d)
    if kind == EventKind.RESTORATION_REFUSED:
        return f"Restoration ({_source(d.get('source'))}) refused: the supervisor is completed."
    if kind == EventKind.INTERRUPTED:
        if event.actor_kind == ActorKind.STAFF:
            return f"Marked interrupted by staff: {d.get('reason') or 'no reason given'}."
        return f"Interrupted by the watchdog: {d.get('reason') or 'its daemon is gone'}."
    if kind == EventKind.STALE:
        return (
            f"Silent since {_when_text(d.get('lastActivity'))} while {d.get('state')}, "
            f"longer than the stale threshold ({d.get('staleAfterSeconds')} s)."
        )
    return str(d)[:300]


def _restoration_text(kind: str, d: dict[str, Any]) -> str:
    moved = ""
    if kind == EventKind.CLAIMED:
        head = f"Claimed by daemon {d.get('toDaemon')}"
        moved = f" from daemon {d.get('fromDaemon')} (gone)" if d.get("fromDaemon") else " (it had no daemon)"
    elif kind == EventKind.TAKEN_OVER:
        head = f"Taken over by daemon {d.get('toDaemon')}"
        moved = f" from daemon {d.get('fromDaemon')}" if d.get("fromDaemon") else " (it had no daemon)"
    elif kind == EventKind.CHECKPOINT_RESTORED:
        head = f"Restored from checkpoint #{d.get('checkpointId')}"
    else:
        head = "Restored"
    reason = f"; reason: {_quoted(d.get('reason'))}" if d.get("reason") else ""
    return (
        f"{head}{moved} ({_source(d.get('source'))}): {_outcome(d.get('outcome'))}, "
        f"{d.get('previousState')} → {d.get('newState')}, epoch {d.get('epoch')}{reason}."
    )


def recent_events(supervisor: SupervisorState) -> list[EventRow]:
    """The newest few events, for the supervisor's own page: one query."""
    now = timezone.now()
    page = supervisor_timeline(supervisor.pk, limit=RECENT, offset=0, count=False)
    return [row_of(event, now) for event in page.events]


def _page_number(raw: str | None) -> tuple[int | None, str]:
    """The page asked for (1 when none), or None with the reason it is not a page."""
    if raw is None or raw == "":
        return 1, ""
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 6 or int(text) < 1 or int(text) > MAX_PAGE:
        shown = Truncator(raw.replace("\x00", "\\0")).chars(20)
        return None, f"“{shown}” is not a page number (1 to {MAX_PAGE:,}); nothing to show."
    return int(text), ""


def _kinds(values: list[str]) -> tuple[list[str], list[str]]:
    """The known kinds asked for, and the unknown ones (shown escaped and cut)."""
    known = [v for v in values if v in EventKind.values]
    unknown = [Truncator(v.replace("\x00", "\\0")).chars(40) for v in values if v not in EventKind.values]
    return known, unknown


def timeline_view(model_admin: SupervisorStateAdmin, request: HttpRequest, object_id: str) -> TemplateResponse:
    """``.../supervisorstate/<id>/timeline/?kind=...&page=N``."""
    supervisor = model_admin._object_or_404(request, object_id)
    wanted = [k for k in request.GET.getlist("kind")[:50] if k != ""]
    kinds, unknown = _kinds(wanted)
    number, page_problem = _page_number(request.GET.get("page"))
    problems = []
    if unknown:
        problems.append(f"Unknown event kind{'s' if len(unknown) > 1 else ''}: {', '.join(unknown[:5])}.")
    rows: list[EventRow] = []
    total, pages = 0, 1
    if page_problem:
        problems.append(page_problem)
    elif not (unknown and not kinds):  # only unknown kinds asked for: an empty result, not every event
        assert number is not None
        page = supervisor_timeline(supervisor.pk, kinds=kinds, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        total = page.total or 0
        pages = max(1, -(-total // PAGE_SIZE))
        now = timezone.now()
        rows = [row_of(event, now) for event in page.events]
        if number > pages:
            problems.append(f"Page {number} is past the last page ({pages}).")
    query = "".join(f"&kind={k}" for k in kinds)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Timeline of {supervisor.contract.name}",
        "subtitle": None,
        "opts": model_admin.opts,
        "original": supervisor,
        "rows": rows,
        "total": total,
        "number": number or 1,
        "pages": pages,
        "previous_url": f"?page={number - 1}{query}" if number and 1 < number <= pages else "",
        "next_url": f"?page={number + 1}{query}" if number and number < pages else "",
        "kinds": [(k.value, k.label, k.value in kinds) for k in EventKind],
        "filtered": bool(kinds),
        "problems": problems,
        "change_url": reverse("admin:supervisors_supervisorstate_change", args=[supervisor.pk]),
    }
    return TemplateResponse(request, "admin/supervisors/supervisorstate/timeline.html", context)
