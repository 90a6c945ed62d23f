"""Notifications in the admin: subscriptions (with "send a test event"), deliveries and dead letters.

Thin: the form parses, the actions call ``services.notifications``. A
delivery is never edited by hand; staff retry it (due now, a fresh retry
window) or discard it (given up; the later ones of its supervisor go on).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from supervisors.enums import DeliveryStatus, NotificationType
from supervisors.models import Contract, Delivery, Subscription
from supervisors.services.notifications import (
    discard_deliveries,
    is_allowed_url,
    retry_deliveries,
    send_test_event,
)

from .base import ReadOnlyAdmin
from .display import when

#: The types a subscription can pick (a test is sent to every subscription on request).
PICKABLE_TYPES = [(value, label) for value, label in NotificationType.choices if value != NotificationType.TEST]

STATUS_TONES = {
    DeliveryStatus.PENDING: "warn",
    DeliveryStatus.DELIVERED: "ok",
    DeliveryStatus.DEAD: "bad",
    DeliveryStatus.DISCARDED: "muted",
}


class SubscriptionForm(forms.ModelForm):
    event_types = forms.MultipleChoiceField(
        choices=PICKABLE_TYPES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every type in this list.",
    )
    webhook_url = forms.URLField(
        required=False,
        max_length=2000,
        assume_scheme="https",
        help_text="http:// or https:// only.",
        widget=forms.URLInput(attrs={"size": 80}),
    )
    contract_ids = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Contracts",
        help_text="Contract ids, one per line; empty: every contract.",
    )

    class Meta:
        model = Subscription
        fields = ["name", "enabled", "event_types", "contract_ids", "webhook_url", "secret", "email"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["contract_ids"] = "\n".join(self.instance.contract_ids or [])

    def clean_contract_ids(self) -> list[str]:
        raw = [line.strip() for line in self.cleaned_data.get("contract_ids", "").splitlines() if line.strip()]
        ids, bad = [], []
        for line in raw:
            try:
                ids.append(str(uuid.UUID(line)))
            except ValueError:
                bad.append(line[:60])
        if bad:
            raise forms.ValidationError(f"Not contract ids: {', '.join(bad[:5])}.")
        if len(ids) > 1000:
            raise forms.ValidationError("At most 1,000 contracts; leave it empty for every contract.")
        unknown = set(ids) - {str(pk) for pk in Contract.objects.filter(pk__in=ids).values_list("pk", flat=True)}
        if unknown:
            raise forms.ValidationError(f"No such contract: {', '.join(sorted(unknown)[:5])}.")
        return list(dict.fromkeys(ids))

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data.get("webhook_url", "")
        if url and not is_allowed_url(url):
            raise forms.ValidationError("Only http:// and https:// URLs.")
        return url

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if bool(data.get("webhook_url")) == bool(data.get("email")):
            raise forms.ValidationError("Give a webhook URL or an email address (one of them).")
        return data


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    form = SubscriptionForm
    list_display = ["name", "enabled", "target_display", "types_display", "contracts_display", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "webhook_url", "email"]
    actions = ["send_test_event"]

    @admin.display(description="target")
    def target_display(self, obj: Subscription) -> str:
        return obj.target

    @admin.display(description="event types")
    def types_display(self, obj: Subscription) -> str:
        return ", ".join(obj.event_types) if obj.event_types else "every type"

    @admin.display(description="contracts")
    def contracts_display(self, obj: Subscription) -> str:
        return f"{len(obj.contract_ids)} contract(s)" if obj.contract_ids else "every contract"

    @admin.action(description="Send a test event to the selected subscriptions", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        sent = [send_test_event(s, actor=f"staff:{request.user.get_username()}") for s in queryset[:100]]
        self.message_user(
            request,
            f"Test event queued for {len(sent)} subscription(s); see Deliveries for the outcome.",
            messages.SUCCESS,
        )


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "event_type",
        "contract_display",
        "subscription",
        "status_display",
        "attempts",
        "next_attempt_display",
        "last_error",
        "created_display",
    ]
    list_filter = ["status", "event_type", "subscription"]
    list_select_related = ["subscription"]
    search_fields = ["event_id"]
    actions = ["retry", "discard"]

    class Media:
        css = {"all": ("supervisors/admin.css",)}

    fields = [
        "event_id",
        "event_type",
        "subscription",
        "status",
        "attempts",
        "created_at",
        "last_attempt_at",
        "next_attempt_at",
        "give_up_at",
        "delivered_at",
        "last_error",
        "payload_display",
    ]
    readonly_fields = fields

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        """Search by event id; anything that is not one finds nothing (never an error)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(event_id=uuid.UUID(term)), False
        except ValueError:
            return queryset.none(), False

    @admin.display(description="contract")
    def contract_display(self, obj: Delivery) -> str:
        contract = (obj.payload or {}).get("contract") or {}
        return contract.get("name") or contract.get("id") or "-"

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: Delivery):
        return format_html(
            '<span class="sv-state sv-{}">{}</span>', STATUS_TONES.get(obj.status, "info"), obj.get_status_display()
        )

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt_display(self, obj: Delivery):
        return when(obj.next_attempt_at) if obj.status == DeliveryStatus.PENDING else "-"

    @admin.display(description="created", ordering="created_at")
    def created_display(self, obj: Delivery):
        return when(obj.created_at)

    @admin.display(description="payload")
    def payload_display(self, obj: Delivery):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    def has_act_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("supervisors.change_delivery")

    @admin.action(description="Retry the selected deliveries now", permissions=["act"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        changed = retry_deliveries(list(queryset.values_list("pk", flat=True)[:10_000]))
        self.message_user(request, f"{changed} delivery(ies) will be retried now.", messages.SUCCESS)

    @admin.action(description="Discard the selected deliveries (give up)", permissions=["act"])
    def discard(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        changed = discard_deliveries(list(queryset.values_list("pk", flat=True)[:10_000]))
        self.message_user(request, f"{changed} delivery(ies) discarded.", messages.SUCCESS)
