"""makima's world (contracts, tasks, daemons) and this project's records around supervisors.

Foreign keys use raw-id widgets so no page loads a whole table into a
``<select>``. Records the services write (checkpoints, answers, the
restoration log, keys, idempotency records) are read-only here: writing
them by hand would bypass the rules the services keep.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

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


class ReadOnlyAdmin(admin.ModelAdmin):
    """Visible to staff, written only by the services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Contract)
class ContractAdmin(admin.ModelAdmin):
    list_display = ("name", "phase", "status", "created_at", "updated_at")
    list_filter = ("status", "phase")
    search_fields = ("name", "=id")
    show_full_result_count = False


@admin.register(Daemon)
class DaemonAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "last_heartbeat_at", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "=id")


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("name", "contract", "status", "is_supervisor", "daemon", "created_at", "completed_at")
    list_filter = ("status", "is_supervisor")
    search_fields = ("name", "=id", "=contract__id")
    raw_id_fields = ("contract", "parent_task", "daemon")
    list_select_related = ("contract", "daemon")
    show_full_result_count = False


@admin.register(SupervisorCheckpoint)
class SupervisorCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("id", "supervisor_id", "reason", "state", "phase", "progress", "created_at")
    list_filter = ("reason", "state")
    search_fields = ("=supervisor__contract__id",)
    raw_id_fields = ("supervisor", "conversation")
    show_full_result_count = False


@admin.register(ConversationSnapshot)
class ConversationSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("id", "supervisor_id", "message_count", "size_bytes", "created_at")
    exclude = ("messages",)
    raw_id_fields = ("supervisor",)
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).defer("messages")


@admin.register(QuestionAnswer)
class QuestionAnswerAdmin(ReadOnlyAdmin):
    list_display = ("question_id", "supervisor_id", "answer", "answered_by_user", "answered_at", "acknowledged_at")
    list_filter = ("acknowledged_at",)
    search_fields = ("=question_id", "=supervisor__contract__id", "answer")
    raw_id_fields = ("supervisor", "answered_by_user", "answered_by_daemon")
    list_select_related = ("answered_by_user",)
    show_full_result_count = False


@admin.register(RestorationLog)
class RestorationLogAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "contract_id", "source", "recovery_action", "success", "actor_label", "reason")
    list_filter = ("source", "recovery_action", "success", "actor_kind")
    search_fields = ("=contract_id", "actor_label", "reason")
    raw_id_fields = ("supervisor", "actor_user", "actor_daemon", "checkpoint")
    date_hierarchy = "started_at"
    show_full_result_count = False


@admin.register(DaemonApiKey)
class DaemonApiKeyAdmin(ReadOnlyAdmin):
    """Keys are created and revoked through the world services (the API branch's create/revoke_daemon_key)."""

    list_display = ("prefix", "daemon", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    exclude = ("key_hash",)
    raw_id_fields = ("daemon",)
    list_select_related = ("daemon",)


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ("key", "daemon", "response_status", "created_at")
    raw_id_fields = ("daemon", "supervisor")
    list_select_related = ("daemon",)
    show_full_result_count = False
