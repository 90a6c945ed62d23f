"""Small HTML pieces shared by the list and the supervisor page: state badge, progress bar, stale marker."""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString

from supervisors.enums import SupervisorStatus

#: Colour family per state; the CSS (static/supervisors/admin.css) maps them to colours.
STATE_TONES = {
    SupervisorStatus.INITIALIZING: "info",
    SupervisorStatus.IDLE: "muted",
    SupervisorStatus.WORKING: "ok",
    SupervisorStatus.WAITING_FOR_USER: "attention",
    SupervisorStatus.WAITING_FOR_TASKS: "info",
    SupervisorStatus.BLOCKED: "bad",
    SupervisorStatus.COMPLETED: "done",
    SupervisorStatus.FAILED: "bad",
    SupervisorStatus.INTERRUPTED: "warn",
}


def state_badge(state: str) -> SafeString:
    try:
        label = SupervisorStatus(state).label
    except ValueError:
        label = f"unknown: {state}"
    return format_html('<span class="sv-state sv-{}">{}</span>', STATE_TONES.get(state, "bad"), label)


def progress_bar(progress: Any) -> SafeString:
    value = progress if isinstance(progress, int) and not isinstance(progress, bool) else 0
    width = max(0, min(100, value))
    return format_html(
        '<span class="sv-progress" title="{}%"><span style="width:{}%"></span></span> <span class="sv-pct">{}%</span>',
        progress,
        width,
        progress,
    )


def stale_marker(stale: bool) -> SafeString:
    return (
        format_html('<span class="sv-stale" title="{}">stale</span>', "silent too long in an active state")
        if stale
        else ""
    )


def bar(value: int, maximum: int) -> SafeString:
    """A horizontal bar for the dashboard's small charts (pure CSS)."""
    width = round(100 * value / maximum) if maximum else 0
    return format_html('<span class="sv-bar"><span style="width:{}%"></span></span>', width)
