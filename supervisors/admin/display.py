"""Small HTML pieces shared by the admin's pages: state badge, progress bar, stale marker, daemon liveness."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.template.defaultfilters import date as date_filter
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

from supervisors.enums import SupervisorStatus
from supervisors.models import Daemon
from supervisors.services.ownership import is_daemon_gone, lease_expires_at

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


def daemon_liveness(daemon: Daemon | None) -> SafeString:
    """Alive or gone, computed from the lease (never the stored status, which can lie), and until or since when."""
    if daemon is None:
        return format_html('<span class="sv-state sv-bad">{}</span>', "no daemon")
    expires = lease_expires_at(daemon)
    if not is_daemon_gone(daemon):
        return format_html('<span class="sv-state sv-ok">alive</span> lease until {}', f"{expires:%Y-%m-%d %H:%M:%S}")
    if expires is None:
        said = f"{daemon.last_heartbeat_at:%Y-%m-%d %H:%M:%S}"
        return format_html('<span class="sv-state sv-bad">gone</span> said it was leaving at {}', said)
    heard = daemon.last_heartbeat_at
    since = f"silent since {heard:%Y-%m-%d %H:%M:%S}" if heard else "never heard from"
    return format_html('<span class="sv-state sv-bad">gone</span> {}', since)


def age(moment: datetime, now: datetime | None = None) -> str:
    """How long ago, in words ("under a minute ago", "3 hours, 2 minutes ago")."""
    now = now or timezone.now()
    if moment > now:
        return f"in {timesince(now, moment)}"
    if (now - moment).total_seconds() < 60:
        return "under a minute ago"
    return f"{timesince(moment, now)} ago"


def readable(moment: datetime | None) -> str:
    """A time in the site's time zone and one format (to the second), the same on every admin page."""
    if moment is None:
        return "—"
    return date_filter(timezone.localtime(moment), "Y-m-d H:i:s T")


def when(moment: datetime | None) -> SafeString | str:
    """A readable time with its age, the exact ISO time on hover: "2026-11-29 17:53:10 UTC (4 minutes ago)"."""
    if moment is None:
        return "—"
    return format_html('<span title="{}">{} ({})</span>', moment.isoformat(), readable(moment), age(moment))
