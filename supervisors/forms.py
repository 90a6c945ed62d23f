"""Form fields shared by the admin's forms."""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError

from supervisors.fields import parse_uuid_list


class UUIDListFormField(forms.CharField):
    """Edits a list of UUIDs as one UUID per line, which staff can read and correct."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 40})

    def prepare_value(self, value):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value
        if isinstance(value, list):
            return "\n".join(str(v) for v in value)
        return value

    def to_python(self, value):
        if value in self.empty_values:
            return []
        if isinstance(value, list):
            return parse_uuid_list(value)
        lines = [line.strip() for line in str(value).replace(",", "\n").splitlines() if line.strip()]
        try:
            return parse_uuid_list(lines)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None

    def validate(self, value):
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")
