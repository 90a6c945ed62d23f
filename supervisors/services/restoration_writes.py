"""Write many restored supervisor rows in one statement.

A batch restoration changes a different set of columns per supervisor (a
blocked one only its state and error message, a restored one nearly
everything). Django's ``bulk_update`` writes every listed column of every row
through CASE expressions and splits the rows into several statements on
SQLite (999 parameters), so the number of queries would grow with the batch.
Here the rows travel as ONE JSON parameter and each column is only set for the
rows that carry it: one UPDATE per batch on both databases, whatever its size.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from supervisors.models import SupervisorState

#: column -> PostgreSQL expression turning the JSON value ``j.v -> 'column'`` into the column's type.
PG_CASTS: dict[str, str] = {
    "state": "(j.v->>'{c}')",
    "phase": "(j.v->>'{c}')",
    "current_activity": "(j.v->>'{c}')",
    "error_message": "(j.v->>'{c}')",
    "restoration_source": "(j.v->>'{c}')",
    "progress": "(j.v->>'{c}')::integer",
    "restoration_count": "(j.v->>'{c}')::integer",
    "conversation_history": "(j.v->'{c}')",
    "pending_questions": "(j.v->'{c}')",
    "pending_task_ids": "ARRAY(SELECT jsonb_array_elements_text(j.v->'{c}')::uuid)",
    "spawned_task_ids": "ARRAY(SELECT jsonb_array_elements_text(j.v->'{c}')::uuid)",
    "last_restored_at": "(j.v->>'{c}')::timestamptz",
    "last_activity": "(j.v->>'{c}')::timestamptz",
    "updated_at": "(j.v->>'{c}')::timestamptz",
}
COLUMNS = tuple(PG_CASTS)


def _pg_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list) and value and isinstance(value[0], uuid.UUID):
        return [str(v) for v in value]
    return value


def update_supervisor_rows(changes: Mapping[uuid.UUID, Mapping[str, Any]]) -> int:
    """Apply ``{supervisor id: {column: value}}`` in one UPDATE; returns the rows written.

    The caller holds the rows' locks. Columns not named for a row keep their value.
    """
    changes = {k: v for k, v in changes.items() if v}
    if not changes:
        return 0
    for row in changes.values():
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"Cannot bulk-write columns {sorted(unknown)}")
    used = [c for c in COLUMNS if any(c in row for row in changes.values())]
    table = connection.ops.quote_name(SupervisorState._meta.db_table)
    if connection.vendor == "postgresql":
        payload = [{"id": str(pk), **{c: _pg_value(v) for c, v in row.items()}} for pk, row in changes.items()]
        sets = ", ".join(
            f"{connection.ops.quote_name(c)} = CASE WHEN j.v ? '{c}' THEN {PG_CASTS[c].format(c=c)} ELSE s.{c} END"
            for c in used
        )
        sql = (
            f"UPDATE {table} AS s SET {sets} FROM jsonb_array_elements(%s::jsonb) AS j(v) "
            f"WHERE s.id = (j.v->>'id')::uuid"
        )
        params = [json.dumps(payload, cls=DjangoJSONEncoder)]
    else:
        fields = {f.column: f for f in SupervisorState._meta.concrete_fields}
        pk = SupervisorState._meta.pk
        payload = [
            {
                "id": pk.get_db_prep_value(key, connection),
                **{c: fields[c].get_db_prep_value(v, connection, prepared=False) for c, v in row.items()},
            }
            for key, row in changes.items()
        ]
        sets = ", ".join(
            f"{connection.ops.quote_name(c)} = CASE WHEN json_type(j.value, '$.{c}') IS NOT NULL "
            f"THEN json_extract(j.value, '$.{c}') ELSE {table}.{connection.ops.quote_name(c)} END"
            for c in used
        )
        sql = f"UPDATE {table} SET {sets} FROM json_each(%s) AS j WHERE {table}.id = json_extract(j.value, '$.id')"
        params = [json.dumps(payload, cls=DjangoJSONEncoder)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
