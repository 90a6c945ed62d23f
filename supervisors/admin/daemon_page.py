"""What a daemon's page shows below its fields: the supervisors it runs, its tasks, its keys.

A crashed daemon's page is where staff start: which supervisors went down
with it, in which state, and whether they need a person. Each panel reads a
bounded page of ids (with the supervisors' total as a window count in the same
pass), then those rows with what they join, whatever the fleet.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Window
from django.urls import reverse
from django.utils import timezone

from supervisors.models import Daemon, DaemonApiKey, SupervisorState, Task
from supervisors.selectors import is_stale
from supervisors.services.ownership import owned_supervisors

from .display import state_badge

#: Rows per panel; the rest are a link to the filtered list.
PANEL_ROWS = 50


def daemon_panels(daemon: Daemon) -> dict[str, Any]:
    now = timezone.now()
    # The panel's ids first (and the total in the same pass, a window count), then those rows with
    # their contract: joined before the LIMIT, PostgreSQL hashed all million contracts to keep 50
    # (0.6-0.9 s for a daemon of 10,000 supervisors).
    first = list(
        owned_supervisors(daemon.pk)
        .order_by("last_activity", "id")
        .annotate(total=Window(Count("pk")))
        .values_list("pk", "total")[:PANEL_ROWS]
    )
    ids = [pk for pk, _total in first]
    supervisor_total = first[0][1] if first else 0
    rows = SupervisorState.objects.defer("conversation_history").select_related("contract").in_bulk(ids)
    supervisor_rows = [
        {
            "supervisor": s,
            "badge": state_badge(s.state),
            "stale": is_stale(s, now),
            "url": reverse("admin:supervisors_supervisorstate_change", args=[s.pk]),
        }
        for s in (rows[pk] for pk in ids if pk in rows)
    ]
    task_counts = {
        row["status"]: row["n"]
        for row in Task.objects.filter(daemon=daemon).order_by().values("status").annotate(n=Count("id"))
    }
    task_ids = list(
        Task.objects.filter(daemon=daemon).order_by("-created_at").values_list("pk", flat=True)[:PANEL_ROWS]
    )
    by_id = Task.objects.select_related("contract").in_bulk(task_ids)
    tasks = [by_id[pk] for pk in task_ids if pk in by_id]
    keys = list(DaemonApiKey.objects.filter(daemon=daemon).order_by("revoked_at", "-created_at")[:PANEL_ROWS])
    return {
        "supervisor_rows": supervisor_rows,
        "supervisor_total": supervisor_total,
        "supervisors_url": reverse("admin:supervisors_supervisorstate_changelist") + f"?q={daemon.pk}",
        "task_counts": sorted(task_counts.items()),
        "task_total": sum(task_counts.values()),
        "tasks": tasks,
        "tasks_url": reverse("admin:supervisors_task_changelist") + f"?daemon__id__exact={daemon.pk}",
        "daemon_keys": keys,
    }
