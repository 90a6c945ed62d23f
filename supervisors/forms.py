"""Form fields and the form base shared by the admin's forms."""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from supervisors.fields import parse_uuid_list
from supervisors.validators import SURROGATE_MESSAGE, surrogate_path

TOO_DEEP_MESSAGE = "The JSON is nested too deeply to read."


class StorableJSONField(forms.JSONField):
    """A JSON form field that refuses lone surrogates, and shows the text as typed when it does.

    Django's JSONField re-renders valid JSON from the parsed value with
    ``ensure_ascii=False``: a ``"\\ud800"`` escape would come back as a raw
    surrogate that the page cannot encode (a 500 while showing the error).
    """

    def to_python(self, value):
        try:
            converted = super().to_python(value)
        except RecursionError:
            # json.loads gives up on nesting deeper than the interpreter's stack, e.g. 50,000 "[".
            raise ValidationError(TOO_DEEP_MESSAGE, code="too_deep") from None
        if surrogate_path(converted) is not None:
            raise ValidationError(SURROGATE_MESSAGE, code="surrogate_character")
        return converted

    def bound_data(self, data, initial):
        try:
            bound = super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)
        if isinstance(data, str) and surrogate_path(bound) is not None:
            return InvalidJSONInput(data)
        return bound


class StorableForm(forms.Form):
    """A form whose every value can be stored: a lone surrogate is a form error on its field, not a 500.

    A JSON field's text can carry ``"\\ud800"``, which parses into a str that
    neither PostgreSQL nor a UTF-8 page can hold; plain text fields are covered
    too, for callers that bind a form to data that did not come from a browser.
    """

    def clean(self) -> dict:
        data = super().clean()
        for name, value in list(data.items()):
            if surrogate_path(value) is not None:
                self.add_error(name, SURROGATE_MESSAGE)
        return data


class UUIDListFormField(forms.CharField):
    """Edits a list of UUIDs as one UUID per line, which staff can read and correct."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 40})

    def prepare_value(self, value):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):  # not JSON, or nested past the stack: shown as typed
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
