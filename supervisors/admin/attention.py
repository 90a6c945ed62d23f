"""The needs-attention page: every supervisor needing a person or a restore, worst first, with why in words."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from supervisors.attention import BY_KEY, KINDS, current_attention, explain, live_rows, stored_page_ids, without_jit

from .display import state_badge, when

if TYPE_CHECKING:
    from .supervisor import SupervisorStateAdmin

ROWS_PER_PAGE = 50


def attention_view(model_admin: SupervisorStateAdmin, request: HttpRequest) -> TemplateResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    now = timezone.now()
    kind = BY_KEY.get(request.GET.get("kind", ""))
    stored = current_attention(now)
    # The total is the stored count: the paginator does not count again.
    total = stored.counts[kind] if kind else sum(stored.counts.values())
    paginator = Paginator(stored_page_ids(kind), ROWS_PER_PAGE)
    paginator.count = total
    page = paginator.get_page(request.GET.get("page"))
    with without_jit():
        supervisors, resolved = live_rows(list(page.object_list), now)
        explained = explain(supervisors, now)
    here = reverse("admin:supervisors_supervisorstate_attention")
    rows = [
        {
            "row": row,
            "badge": state_badge(row.supervisor.state),
            "url": reverse("admin:supervisors_supervisorstate_change", args=[row.supervisor.pk]),
            "restore_url": reverse("admin:supervisors_supervisorstate_restore", args=[row.supervisor.pk]),
        }
        for row in explained
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Supervisors needing attention",
        "subtitle": None,
        "opts": model_admin.opts,
        "rows": rows,
        "page": page,
        "total": total,
        "resolved": resolved,
        "computed_at": when(stored.computed_at),
        "kinds": [
            {"kind": k, "count": stored.counts[k], "url": f"{here}?kind={k.key}", "selected": k == kind} for k in KINDS
        ],
        "all_url": here,
        "kind": kind,
        "now": now,
    }
    return TemplateResponse(request, "admin/supervisors/supervisorstate/attention.html", context)
