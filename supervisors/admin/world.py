"""makima's world (contracts, tasks, daemons) and this project's records around supervisors.

Foreign keys use raw-id widgets so no page loads a whole table into a
``<select>``. Records the services write (checkpoints, answers, the
restoration log, keys, idempotency records) are read-only here: writing
them by hand would bypass the rules the services keep.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse

from supervisors.models import (
    Contract,
    ConversationSnapshot,
    Daemon,
    DaemonApiKey,
    IdempotencyKey,
    QuestionAnswer,
    RestorationLog,
    SupervisorCheckpoint,
    Task,
)

from . import keys
from .actions import RESTORE_PERMISSION
from .base import CheckedSelectionMixin, ContractNamedAdmin, ReadOnlyAdmin
from .daemon_page import daemon_panels
from .display import daemon_liveness, when
from .filters import DaemonLivenessFilter
from .restore_jobs import DAEMON_ACTIONS, daemon_supervisors_view


@admin.register(Contract)
class ContractAdmin(admin.ModelAdmin):
    list_display = ("name", "phase", "status", "created_at", "updated_at")
    list_filter = ("status", "phase")
    search_fields = ("name", "=id")
    show_full_result_count = False


@admin.register(Daemon)
class DaemonAdmin(CheckedSelectionMixin, admin.ModelAdmin):
    list_display = ("name", "liveness", "last_heartbeat_at", "created_at")
    list_filter = (DaemonLivenessFilter,)
    search_fields = ("name", "=id")
    # The lease is the daemon's own to renew (any request of its); typing it in would fake liveness.
    readonly_fields = ("liveness", "status", "last_heartbeat_at")
    actions = DAEMON_ACTIONS

    def has_restore_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RESTORE_PERMISSION)

    @admin.display(description="liveness")
    def liveness(self, obj: Daemon):
        return daemon_liveness(obj)

    change_form_template = "admin/supervisors/daemon/change_form.html"

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/issue-key/", wrap(self.issue_key_view), name="supervisors_daemon_issue_key"),
            path(
                "<path:object_id>/supervisors/<str:kind>/",
                wrap(self.supervisors_view),
                name="supervisors_daemon_supervisors",
            ),
            *super().get_urls(),
        ]

    def issue_key_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return keys.issue_key_view(self, request, object_id)

    def supervisors_view(self, request: HttpRequest, object_id: str, kind: str) -> HttpResponse:
        return daemon_supervisors_view(self, request, object_id, kind)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        daemon = self.get_object(request, object_id)
        extra = {
            **(daemon_panels(daemon) if daemon is not None else {}),
            "can_issue_key": request.user.has_perm(keys.ISSUE_PERMISSION),
            "can_restore": self.has_restore_permission(request),
            "keys_url": reverse("admin:supervisors_daemonapikey_changelist") + f"?daemon__id__exact={object_id}",
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("name", "contract", "status", "is_supervisor", "daemon", "created_at", "completed_at")
    list_filter = ("status", "is_supervisor")
    search_fields = ("name", "=id", "=contract__id")
    raw_id_fields = ("contract", "parent_task", "daemon")
    list_select_related = ("contract", "daemon")
    show_full_result_count = False


@admin.register(SupervisorCheckpoint)
class SupervisorCheckpointAdmin(ContractNamedAdmin):
    list_display = ("id", "contract", "reason", "state", "phase", "progress", "when_display")
    list_filter = ("reason", "state")
    search_fields = ("=supervisor__contract__id",)
    raw_id_fields = ("supervisor", "conversation")
    show_full_result_count = False


@admin.register(ConversationSnapshot)
class ConversationSnapshotAdmin(ContractNamedAdmin):
    list_display = ("id", "contract", "message_count", "size_bytes", "when_display")
    exclude = ("messages",)
    raw_id_fields = ("supervisor",)
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).defer("messages")


@admin.register(QuestionAnswer)
class QuestionAnswerAdmin(ContractNamedAdmin):
    list_display = ("contract", "question_id", "answer", "answered_by_user", "when_display", "acknowledged")
    when_field = "answered_at"
    list_filter = ("acknowledged_at",)
    search_fields = ("=question_id", "=supervisor__contract__id", "answer")
    raw_id_fields = ("supervisor", "answered_by_user", "answered_by_daemon")
    list_select_related = ("answered_by_user",)
    show_full_result_count = False

    @admin.display(description="acknowledged", ordering="acknowledged_at")
    def acknowledged(self, obj: QuestionAnswer):
        return when(obj.acknowledged_at) if obj.acknowledged_at else "not yet"


@admin.register(RestorationLog)
class RestorationLogAdmin(ContractNamedAdmin):
    contract_path = None  # the log keeps the contract's id even when the supervisor row is gone
    when_field = "started_at"
    list_display = (
        "when_display",
        "contract",
        "source",
        "outcome",
        "recovery_action",
        "previous_state",
        "previous_error_message",
        "actor_label",
        "reason",
    )
    list_filter = ("outcome", "source", "recovery_action", "actor_kind")
    search_fields = ("=contract_id", "actor_label", "reason")
    raw_id_fields = ("supervisor", "actor_user", "actor_daemon", "previous_daemon", "checkpoint")
    date_hierarchy = "started_at"
    show_full_result_count = False


@admin.register(DaemonApiKey)
class DaemonApiKeyAdmin(ReadOnlyAdmin):
    """Keys are issued (from a daemon's page) and revoked (the action here) through the world services."""

    list_display = ("prefix", "daemon", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "daemon__name")
    exclude = ("key_hash",)
    raw_id_fields = ("daemon",)
    list_select_related = ("daemon",)
    actions = [keys.revoke_keys]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(keys.REVOKE_PERMISSION)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The daemon page links to its keys with ?daemon__id__exact=<id>.
        return lookup == "daemon__id__exact" or super().lookup_allowed(lookup, value, request)


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ("key", "daemon", "response_status", "created_at")
    raw_id_fields = ("daemon", "supervisor")
    list_select_related = ("daemon",)
    show_full_result_count = False
