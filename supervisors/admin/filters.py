"""List filters that are not plain field filters: phase, stale, has pending questions, daemon liveness."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet

from supervisors.selectors import distinct_phases, stale_q
from supervisors.services.ownership import daemon_gone_q


class PhaseFilter(admin.SimpleListFilter):
    """The phases there are, read from the phase index (Django's own filter reads the whole table)."""

    title = "phase"
    parameter_name = "phase"

    def lookups(self, request, model_admin):
        return [(phase, phase) for phase in distinct_phases()]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() is not None:
            return queryset.filter(phase=self.value())
        return queryset


class StaleFilter(admin.SimpleListFilter):
    """Silent longer than SUPERVISOR_STALE_AFTER_SECONDS in an active state (the restore branch's rule)."""

    title = "stale"
    parameter_name = "stale"

    def lookups(self, request, model_admin):
        return [("yes", "Stale"), ("no", "Not stale")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(stale_q())
        if self.value() == "no":
            return queryset.exclude(stale_q())
        return queryset


class PendingQuestionsFilter(admin.SimpleListFilter):
    """Supervisors a human has to answer."""

    title = "pending questions"
    parameter_name = "has_questions"

    def lookups(self, request, model_admin):
        return [("yes", "Has pending questions"), ("no", "No pending questions")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.exclude(pending_questions=[])
        if self.value() == "no":
            return queryset.filter(pending_questions=[])
        return queryset


class DaemonLivenessFilter(admin.SimpleListFilter):
    """Alive or gone by the lease (``ownership.daemon_gone_q``), the rule takeovers use."""

    title = "liveness"
    parameter_name = "liveness"

    def lookups(self, request, model_admin):
        return [("alive", "Alive"), ("gone", "Gone")]

    def queryset(self, request, queryset):
        if self.value() == "gone":
            return queryset.filter(daemon_gone_q())
        if self.value() == "alive":
            return queryset.exclude(daemon_gone_q())
        return queryset
