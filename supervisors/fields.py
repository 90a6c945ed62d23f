"""Portable model fields and database defaults.

makima's table stores task id lists as PostgreSQL ``uuid[]``; SQLite has no
arrays. The one decision about how such a list is stored lives here: ``uuid[]``
on PostgreSQL, a JSON array of strings in a TEXT column elsewhere. Python code
always sees ``list[uuid.UUID]``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from django.core import exceptions
from django.db import models
from django.db.models.expressions import Expression
from django.db.models.functions import Now
from django.utils.deconstruct import deconstructible


def parse_uuid_list(value: Any) -> list[uuid.UUID]:
    """Turn any list of UUIDs or UUID strings into ``list[uuid.UUID]``.

    Raises ``django.core.exceptions.ValidationError`` naming the first value
    that is not a UUID, so every surface reports the same message.
    """
    if value is None:
        return []
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
        raise exceptions.ValidationError("Expected a list of UUIDs.", code="not_a_list")
    result = []
    for item in value:
        if isinstance(item, uuid.UUID):
            result.append(item)
            continue
        try:
            if not isinstance(item, str):
                raise TypeError(item)
            result.append(uuid.UUID(item))
        except (ValueError, TypeError):
            raise exceptions.ValidationError(
                "%(value)r is not a valid UUID.", code="invalid_uuid", params={"value": item}
            ) from None
    return result


class UUIDArrayField(models.Field):
    """A list of UUIDs: ``uuid[]`` on PostgreSQL, a JSON array in TEXT elsewhere."""

    description = "List of UUIDs"
    empty_strings_allowed = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("default", list)
        super().__init__(*args, **kwargs)

    def db_type(self, connection) -> str:
        return "uuid[]" if connection.vendor == "postgresql" else "text"

    def get_internal_type(self) -> str:
        return "UUIDArrayField"

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        if isinstance(value, str):
            return [uuid.UUID(v) for v in json.loads(value)]
        return [v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)) for v in value]

    def to_python(self, value):
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise exceptions.ValidationError("Expected a JSON list of UUIDs.", code="invalid") from None
        return parse_uuid_list(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or hasattr(value, "resolve_expression"):
            return value
        return parse_uuid_list(value)

    def get_db_prep_value(self, value, connection, prepared=False):
        if not prepared:
            value = self.get_prep_value(value)
        if value is None or hasattr(value, "as_sql"):
            return value
        if connection.vendor == "postgresql":
            # An array literal, not a Python list: psycopg adapts a list element
            # by element in Python (milliseconds for a thousand UUIDs, on every
            # write of the row), a string in one go. UUIDs need no quoting, and
            # psycopg sends a str untyped, so PostgreSQL reads it as uuid[].
            return "{" + ",".join(str(v) for v in value) + "}"
        return json.dumps([str(v) for v in value])

    def value_to_string(self, obj) -> str:
        return json.dumps([str(v) for v in self.value_from_object(obj) or []])

    def formfield(self, **kwargs):
        from supervisors.forms import UUIDListFormField

        return super().formfield(**{"form_class": UUIDListFormField, **kwargs})


@deconstructible(path="supervisors.fields.EmptyUUIDArray")
class EmptyUUIDArray(Expression):
    """Database default for a ``UUIDArrayField``: ``'{}'`` on PostgreSQL, ``'[]'`` elsewhere."""

    allowed_default = True

    def __init__(self) -> None:
        super().__init__(output_field=UUIDArrayField())

    def as_sql(self, compiler, connection):
        return "'[]'", []

    def as_postgresql(self, compiler, connection):
        return "'{}'::uuid[]", []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EmptyUUIDArray)

    def __hash__(self) -> int:
        return hash(EmptyUUIDArray)


@deconstructible(path="supervisors.fields.EmptyJSONArray")
class EmptyJSONArray(Expression):
    """Database default for a JSON list column: ``'[]'::jsonb`` on PostgreSQL, ``'[]'`` elsewhere."""

    allowed_default = True

    def __init__(self) -> None:
        super().__init__(output_field=models.JSONField())

    def as_sql(self, compiler, connection):
        return "'[]'", []

    def as_postgresql(self, compiler, connection):
        return "'[]'::jsonb", []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EmptyJSONArray)

    def __hash__(self) -> int:
        return hash(EmptyJSONArray)


@deconstructible(path="supervisors.fields.DatabaseNow")
class DatabaseNow(Now):
    """``NOW()`` on PostgreSQL, as makima's schema has it (Django's ``Now`` says STATEMENT_TIMESTAMP())."""

    def as_postgresql(self, compiler, connection, **extra_context):
        return "now()", []
