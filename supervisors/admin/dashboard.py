"""The dashboard: supervisors by state, stale ones, pending questions, restorations of the last 24 hours.

The supervisor figures are the ones /metrics serves: one pass over
``supervisor_states`` made by the ``refresh_metrics`` job and stored
(supervisors/metrics/snapshot.py), so the dashboard opens as fast over a
million supervisors as over ten and says how old the figures are. The rest is
a handful of aggregate queries over small or indexed tables.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from supervisors.enums import RESTORED_OUTCOMES, RestorationOutcome, RestorationSource, SupervisorStatus
from supervisors.metrics.snapshot import current_supervisor_figures
from supervisors.selectors import restorations_since
from supervisors.services.watchdog import last_watchdog_run

from .display import bar, state_badge, when

if TYPE_CHECKING:
    from .supervisor import SupervisorStateAdmin


def dashboard_view(model_admin: SupervisorStateAdmin, request: HttpRequest):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    now = timezone.now()
    changelist = reverse("admin:supervisors_supervisorstate_changelist")
    figures, _how = current_supervisor_figures(now)
    counts = figures.by_state
    ordered = [s for s in SupervisorStatus.values if s in counts] + sorted(set(counts) - set(SupervisorStatus.values))
    top = max(counts.values(), default=0)
    by_state = [
        {
            "state": state,
            "badge": state_badge(state),
            "count": counts[state],
            "bar": bar(counts[state], top),
            "url": f"{changelist}?state__exact={state}",
        }
        for state in ordered
    ]
    restorations = restorations_since(now - timedelta(hours=24))
    top_restorations = max((r["n"] for r in restorations), default=0)
    labels = dict(RestorationSource.choices)
    outcomes = dict(RestorationOutcome.choices)
    restoration_rows = [
        {
            "source": labels.get(r["source"], r["source"]),
            "outcome": r["outcome"],
            "outcome_label": outcomes.get(r["outcome"], r["outcome"]),
            "success": r["outcome"] in RESTORED_OUTCOMES or r["outcome"] == RestorationOutcome.SKIPPED_COMPLETED,
            "count": r["n"],
            "bar": bar(r["n"], top_restorations),
        }
        for r in restorations
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Supervisors dashboard",
        "subtitle": None,
        "opts": model_admin.opts,
        "total": sum(counts.values()),
        "by_state": by_state,
        "stale_count": figures.stale,
        "stale_url": f"{changelist}?stale=yes",
        "questions": {
            "questions": figures.pending_questions,
            "supervisors": figures.with_questions,
            "oldest_asked_at": figures.oldest_asked_at,
        },
        "figures_computed_at": when(figures.computed_at),
        "questions_url": reverse("admin:supervisors_supervisorstate_questions"),
        "restorations": restoration_rows,
        "restorations_total": sum(r["n"] for r in restorations),
        "restorations_by_outcome": restoration_counts(restorations),
        "watchdog": watchdog_panel(now),
        "media": model_admin.media,
    }
    return TemplateResponse(request, "admin/supervisors/supervisorstate/dashboard.html", context)


def restoration_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Every outcome (zeros included) with its count, in the enum's order: the command's summary, the same words."""
    counts = {outcome: 0 for outcome in RestorationOutcome.values}
    for row in rows:
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + row["n"]
    return counts


def watchdog_panel(now) -> dict[str, Any] | None:
    """The last watchdog run and what it found (one query); ``overdue`` when no run for three intervals.

    Overdue means no worker or no scheduler is running: staff then know the
    failover they rely on is not happening.
    """
    run = last_watchdog_run()
    if run is None:
        return None
    interval = timedelta(seconds=settings.WATCHDOG_INTERVAL_SECONDS)
    return {
        "run": run,
        "interrupted": run.interrupted[:20],
        "more": max(0, run.supervisors_interrupted - 20),
        "overdue": run.started_at < now - 3 * interval,
    }
