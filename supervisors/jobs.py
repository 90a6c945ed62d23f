"""Background jobs: thin wrappers, ids in, one service call, a JSON-able summary out (STYLE.md, section 3).

They run on Django's tasks framework (the ``django-tasks`` backport): by
default queued in the database and run by ``manage.py db_worker`` processes
(README, "Background jobs"). Periodic ones are enqueued by
``manage.py run_scheduler`` (``supervisors.services.scheduler``).
"""

from __future__ import annotations

from typing import Any

from django_tasks import task

from supervisors.services.restore_jobs import rescue_stalled_restore_jobs, run_restore_job
from supervisors.services.watchdog import run_watchdog


@task()
def watchdog() -> dict[str, int]:
    """Mark gone daemons, interrupt their running supervisors, count the stale ones (the watchdog service)."""
    report = run_watchdog()
    return {
        "run_id": report.run_id or 0,
        "daemons_marked_gone": len(report.daemons_marked_gone),
        "supervisors_interrupted": report.supervisors_interrupted,
        "stale": report.stale,
    }


@task()
def prune_supervisor_events() -> dict[str, int]:
    """Keep the newest SUPERVISOR_EVENTS_KEEP events of each supervisor (one DELETE)."""
    from supervisors.services.events import prune_daemon_events
    from supervisors.services.events import prune_supervisor_events as prune

    return {"events_deleted": prune(), "daemon_events_deleted": prune_daemon_events()}


@task()
def restore_job(job_id: int) -> dict[str, Any]:
    """Work on a restore job queued from the admin for one slice (the restore jobs service)."""
    return run_restore_job(job_id).as_dict()


@task()
def rescue_restore_jobs() -> dict[str, Any]:
    """Enqueue again the restore jobs whose worker died, forget old finished ones (periodic)."""
    report = rescue_stalled_restore_jobs()
    return {"rescued": report.rescued, "given_up": report.given_up, "forgotten": report.forgotten}


@task()
def refresh_metrics() -> dict[str, int]:
    """Compute the supervisor figures /metrics serves (one pass over supervisor_states); scrapes ask for it."""
    from supervisors.metrics.snapshot import refresh_supervisor_figures_if_due

    figures = refresh_supervisor_figures_if_due()
    if figures is None:
        return {"skipped": 1}  # another run refreshed them moments ago
    return {"duration_ms": figures.duration_ms, "supervisors": sum(figures.by_state.values())}


@task()
def refresh_attention() -> dict[str, int]:
    """Recompute the needs-attention index (one pass over supervisor_states); the page asks for it."""
    from supervisors.attention import refresh_attention_if_due

    snapshot = refresh_attention_if_due()
    if snapshot is None:
        return {"skipped": 1}  # another run refreshed it moments ago
    return {"duration_ms": snapshot.duration_ms, "supervisors": sum(snapshot.counts.values())}


@task()
def dispatch_notifications() -> dict[str, int]:
    """Fan the new events out to the matching subscriptions as deliveries (periodic; the notifications service)."""
    from supervisors.services.notifications import dispatch_new_events

    report = dispatch_new_events()
    return {"events": report.events, "deliveries": report.deliveries, "busy": int(report.busy)}


@task()
def deliver_notifications() -> dict[str, int]:
    """Send the due deliveries: webhooks and emails, retried with backoff (periodic, and after a dispatch)."""
    from supervisors.services.notifications import deliver_due_notifications

    report = deliver_due_notifications()
    return {"delivered": report.delivered, "failed": report.failed, "dead": report.dead}
