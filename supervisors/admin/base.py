"""What the admin's model pages have in common."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    """Visible to staff, written only by the services (through actions and pages of their own)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CheckedSelectionMixin:
    """A list action whose selected ids are not ids of this model is refused with a message, not a 500.

    Django's admin filters ``pk__in`` with the posted ``_selected_action``
    values as they are; a value that is not a UUID raises ValidationError deep
    in the ORM. A tampered form gets a clear message and nothing runs.
    """

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
