"""Restore jobs in the admin: the job list, a job's page (progress, results, Cancel), and a daemon's supervisors.

A restore, start-fresh or mark-interrupted of more than a page of supervisors
is queued as a restore job (``actions.confirm_or_run``); staff land on the
job's page, which refreshes itself while the job runs. The daemon list's
actions and the daemon page's buttons act on every supervisor of a daemon
through the same confirmation. Everything goes through
``supervisors.services.restore_jobs``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from supervisors.enums import RestoreJobItemStatus, RestoreJobStatus
from supervisors.models import Contract, Daemon, RestoreJob, RestoreJobItem, SupervisorState
from supervisors.selectors import restore_job_progress
from supervisors.services.actors import Actor
from supervisors.services.errors import ServiceError
from supervisors.services.restore_jobs import cancel_restore_job

from .actions import MODES, RESTORE_PERMISSION, _list_hidden, confirm_or_run
from .base import ReadOnlyAdmin

#: Per-supervisor results per page on a job's page.
RESULTS_PER_PAGE = 50
#: Seconds between the job page's reloads while the job runs.
REFRESH_SECONDS = 2

STATUS_TONES = {
    RestoreJobStatus.QUEUED: "info",
    RestoreJobStatus.RUNNING: "ok",
    RestoreJobStatus.CANCELLING: "warn",
    RestoreJobStatus.CANCELLED: "muted",
    RestoreJobStatus.DONE: "done",
    RestoreJobStatus.FAILED: "bad",
}


def status_badge(job: RestoreJob):
    return format_html(
        '<span class="sv-state sv-{}">{}</span>', STATUS_TONES.get(job.status, "bad"), job.get_status_display()
    )


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@admin.register(RestoreJob)
class RestoreJobAdmin(ReadOnlyAdmin):
    """Jobs are queued from the supervisor and daemon pages, never added here; a job's page is its own view."""

    list_display = ("job", "kind", "status_display", "total", "remaining", "requested_by_label", "created_at",
                    "finished_at")  # fmt: skip
    list_display_links = ("job",)
    list_filter = ("status", "kind")
    list_per_page = 50
    show_full_result_count = False

    class Media:
        css = {"all": ("supervisors/admin.css",)}

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(RESTORE_PERMISSION) or super().has_view_permission(request, obj)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def get_queryset(self, request: HttpRequest):
        pending = (
            RestoreJobItem.objects.filter(job=OuterRef("pk"), status=RestoreJobItemStatus.PENDING)
            .order_by()
            .values("job")
            .annotate(n=Count("id"))
            .values("n")
        )
        return (
            super().get_queryset(request).annotate(pending=Coalesce(Subquery(pending, output_field=IntegerField()), 0))
        )

    @admin.display(description="job", ordering="id")
    def job(self, obj: RestoreJob) -> str:
        return f"#{obj.pk}"

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: RestoreJob):
        return status_badge(obj)

    @admin.display(description="remaining")
    def remaining(self, obj: RestoreJob) -> int:
        return obj.pending

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/cancel/", wrap(self.cancel_view), name="supervisors_restorejob_cancel"),
            *super().get_urls(),
        ]

    def _job_or_404(self, request: HttpRequest, object_id: str) -> RestoreJob:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = RestoreJob.objects.select_related("daemon").filter(pk=_int(object_id) or 0).first()
        if job is None:
            raise Http404("No such restore job.")
        return job

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        """The job's page: progress while it runs, then the result per supervisor, paginated."""
        job = self._job_or_404(request, object_id)
        progress = restore_job_progress(job)
        status = request.GET.get("status", "")
        items = RestoreJobItem.objects.filter(job=job).order_by("id")
        if status in RestoreJobItemStatus.values:
            items = items.filter(status=status)
        else:
            status = ""
        page = Paginator(items, RESULTS_PER_PAGE).get_page(request.GET.get("page"))
        contract_ids = [item.contract_id for item in page]
        names = dict(Contract.objects.filter(id__in=contract_ids).values_list("id", "name"))
        supervisors = dict(
            SupervisorState.objects.filter(contract_id__in=contract_ids).values_list("contract_id", "id")
        )
        rows = [
            {
                "item": item,
                "name": names.get(item.contract_id, str(item.contract_id)),
                "url": reverse("admin:supervisors_supervisorstate_change", args=[supervisors[item.contract_id]])
                if item.contract_id in supervisors
                else "",
            }
            for item in page
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Restore job #{job.pk}",
            "subtitle": None,
            "opts": self.opts,
            "job": job,
            "badge": status_badge(job),
            "progress": progress,
            "rows": rows,
            "page": page,
            "status_filter": status,
            "item_statuses": RestoreJobItemStatus.choices,
            "can_cancel": not job.is_finished
            and job.status != RestoreJobStatus.CANCELLING
            and request.user.has_perm(RESTORE_PERMISSION),
            "refresh": None if job.is_finished else REFRESH_SECONDS,
            "daemon_url": reverse("admin:supervisors_daemon_change", args=[job.daemon_id]) if job.daemon_id else "",
            "media": self.media,
        }
        return TemplateResponse(request, "admin/supervisors/restorejob/job.html", context)

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(RESTORE_PERMISSION):
            raise PermissionDenied
        job = self._job_or_404(request, object_id)
        try:
            cancelled = cancel_restore_job(job.pk, actor=Actor.staff(request.user))
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.WARNING)
        else:
            text = (
                f"Restore job #{job.pk} cancelled: no further supervisor is restored."
                if cancelled.status == RestoreJobStatus.CANCELLED
                else f"Restore job #{job.pk} is being cancelled: the supervisors a worker holds now are finished, "
                "no others."
            )
            self.message_user(request, text, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:supervisors_restorejob_change", args=[job.pk]))


# --- every supervisor of a daemon ------------------------------------------------------------------

#: The daemon actions and buttons: mark interrupted, restore.
DAEMON_MODES = ("interrupt", "restore")


def daemon_supervisors(daemon_ids: list[Any]) -> QuerySet[SupervisorState]:
    """The supervisors whose supervisor task runs on these daemons (the ownership rule's owner)."""
    return SupervisorState.objects.filter(task__daemon_id__in=daemon_ids)


def _daemon_names(daemons: QuerySet[Daemon]) -> str:
    names = list(daemons.order_by("name").values_list("name", flat=True)[:6])
    return ", ".join(names[:5]) + (" …" if len(names) > 5 else "")


def _daemon_action(modeladmin, request: HttpRequest, daemons: QuerySet[Daemon], mode_key: str, action: str):
    mode = MODES[mode_key]
    ids = list(daemons.values_list("pk", flat=True))
    single = Daemon.objects.filter(pk=ids[0]).first() if len(ids) == 1 else None
    return confirm_or_run(
        modeladmin,
        request,
        daemon_supervisors(ids),
        mode=mode,
        hidden=_list_hidden(request, daemons, action),
        cancel_url=request.get_full_path(),
        description=f"every supervisor of daemon{'s' if len(ids) != 1 else ''} {_daemon_names(daemons)}",
        daemon=single,
    )


@admin.action(description="Mark every supervisor of the selected daemons interrupted…", permissions=["restore"])
def interrupt_daemons_supervisors(modeladmin, request, queryset):
    return _daemon_action(modeladmin, request, queryset, "interrupt", "interrupt_daemons_supervisors")


@admin.action(description="Restore every supervisor of the selected daemons…", permissions=["restore"])
def restore_daemons_supervisors(modeladmin, request, queryset):
    return _daemon_action(modeladmin, request, queryset, "restore", "restore_daemons_supervisors")


DAEMON_ACTIONS = [interrupt_daemons_supervisors, restore_daemons_supervisors]


def daemon_supervisors_view(modeladmin, request: HttpRequest, object_id: str, kind: str) -> HttpResponse:
    """The daemon page's "Mark its supervisors interrupted…" and "Restore its supervisors…"."""
    if not request.user.has_perm(RESTORE_PERMISSION):
        raise PermissionDenied
    if kind not in DAEMON_MODES:
        raise Http404("No such action.")
    daemon = modeladmin.get_object(request, object_id)
    if daemon is None:
        raise Http404("No such daemon.")
    change_url = reverse("admin:supervisors_daemon_change", args=[daemon.pk])
    response = confirm_or_run(
        modeladmin,
        request,
        daemon_supervisors([daemon.pk]),
        mode=MODES[kind],
        hidden=[("post", "yes")],
        cancel_url=change_url,
        description=f"every supervisor of daemon {daemon.name}",
        daemon=daemon,
        done_url=change_url,
    )
    return response or HttpResponseRedirect(change_url)
