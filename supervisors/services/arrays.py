"""SQL for a task id list column (``UUIDArrayField``): append one id, test membership.

Appending a task to ``spawned_task_ids`` is the one write that happens once per
task for a supervisor's whole life. Done as a read-modify-write in Python, each
call reads, converts and sends back every id recorded so far, so the thousandth
spawn costs several times the first (measured in bench/persistence_bench.py).
These expressions let the database do it in place: ``array_append`` on
PostgreSQL's ``uuid[]``, ``json_insert(.., '$[#]', ..)`` on SQLite's JSON text.
They are still used under the supervisor's row lock, which the save point needs
anyway for its checkpoint.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import BooleanField, Expression, F

from supervisors.fields import UUIDArrayField


class _OnColumn(Expression):
    def __init__(self, column: str, value: uuid.UUID, output_field: Any) -> None:
        super().__init__(output_field=output_field)
        self.column = F(column)
        self.value = value

    def get_source_expressions(self) -> list[Any]:
        return [self.column]

    def set_source_expressions(self, exprs: list[Any]) -> None:
        (self.column,) = exprs

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False):
        clone = self.copy()
        clone.column = self.column.resolve_expression(query, allow_joins, reuse, summarize, for_save)
        return clone


class UUIDArrayAppend(_OnColumn):
    """``column`` with ``value`` appended (the caller checks it is not there yet)."""

    def __init__(self, column: str, value: uuid.UUID) -> None:
        super().__init__(column, value, UUIDArrayField())

    def as_sql(self, compiler, connection):
        sql, params = compiler.compile(self.column)
        return f"json_insert({sql}, '$[#]', %s)", [*params, str(self.value)]

    def as_postgresql(self, compiler, connection):
        sql, params = compiler.compile(self.column)
        return f"array_append({sql}, %s::uuid)", [*params, str(self.value)]


class UUIDArrayContains(_OnColumn):
    """Whether ``column`` holds ``value``."""

    def __init__(self, column: str, value: uuid.UUID) -> None:
        super().__init__(column, value, BooleanField())

    def as_sql(self, compiler, connection):
        sql, params = compiler.compile(self.column)
        return f"EXISTS (SELECT 1 FROM json_each({sql}) WHERE json_each.value = %s)", [*params, str(self.value)]

    def as_postgresql(self, compiler, connection):
        sql, params = compiler.compile(self.column)
        return f"(%s::uuid = ANY({sql}))", [str(self.value), *params]
