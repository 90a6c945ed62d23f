"""What the admin's model pages have in common."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import F, OuterRef, Subquery
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext

from supervisors.models import Contract

from .display import when


class ReadOnlyAdmin(admin.ModelAdmin):
    """Visible to staff, written only by the services (through actions and pages of their own)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ContractNamedAdmin(ReadOnlyAdmin):
    """A record list that names the contract (and keeps its id copyable) instead of showing a bare id.

    The name is one column annotated onto the list's query (a join on the
    supervisor's contract, or a sub-select by ``contract_id``), never the
    supervisor row itself, whose conversation can weigh megabytes.
    """

    #: Path from the record to its supervisor's contract; None: the record's own ``contract_id``.
    contract_path: str | None = "supervisor__contract"

    def get_queryset(self, request: HttpRequest):
        if self.contract_path:
            name, key = F(f"{self.contract_path}__name"), F(f"{self.contract_path}_id")
        else:
            name = Subquery(Contract.objects.filter(pk=OuterRef("contract_id")).values("name")[:1])
            key = F("contract_id")
        return super().get_queryset(request).annotate(contract_name=name, contract_key=key)

    @admin.display(description="contract", ordering="contract_name")
    def contract(self, obj: Any):
        return format_html(
            '{}<br><code class="sv-id" title="contract id">{}</code>',
            obj.contract_name or "(no such contract)",
            obj.contract_key,
        )

    @admin.display(description="when")
    def when_display(self, obj: Any):
        return when(getattr(obj, self.when_field))

    #: The record's time column shown by ``when_display``.
    when_field = "created_at"


class CheckedSelectionMixin:
    """A list action whose selected ids are not ids of this model is refused with a message, not a 500.

    Django's admin filters ``pk__in`` with the posted ``_selected_action``
    values as they are; a value that is not a UUID raises ValidationError deep
    in the ORM. A tampered form gets a clear message and nothing runs.
    """

    def action_checkbox(self, obj: Any) -> str:
        """The row's selection box, the same HTML as Django's, without a form widget's template per row.

        Django renders it through ``CheckboxInput`` and the form renderer's
        templates: about a quarter of a 50-row list's rendering time
        (cProfile of the supervisor list at a million rows).
        """
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            ACTION_CHECKBOX_NAME,
            str(obj.pk),
            format_html(gettext("Select this object for an action - {}"), str(obj)),
        )

    def response_action(self, request: HttpRequest, queryset):
        from django.contrib import messages
        from django.contrib.admin import helpers
        from django.core.exceptions import ValidationError
        from django.http import HttpResponseRedirect

        pk = self.model._meta.pk
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                pk.to_python(value)
        except ValidationError:
            self.message_user(request, "The selection was not understood; nothing was done.", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)
