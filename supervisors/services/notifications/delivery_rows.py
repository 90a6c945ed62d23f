"""Writing a dispatcher batch's deliveries: one INSERT whatever their number (``bulk_create`` splits on SQLite)."""

from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from supervisors.models import Delivery


def insert_deliveries(deliveries: list[Delivery]) -> int:
    """INSERT the deliveries in ONE statement whatever their number (one JSON parameter; ``bulk_create``
    splits on SQLite), skipping one its subscription already has for that event."""
    fields = [Delivery._meta.get_field(name) for name in _INSERTED]
    rows = [
        # The payload travels as a JSON value inside the parameter, the rest as the columns store them.
        {f.column: d.payload if f.name == "payload" else f.get_db_prep_save(getattr(d, f.attname), connection)
         for f in fields}
        for d in deliveries
    ]  # fmt: skip
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    if connection.vendor == "postgresql":
        casts = {
            "subscription_id": "bigint",
            "event_id": "uuid",
            "sequence": "bigint",
            "attempts": "integer",
            "created_at": "timestamptz",
            "next_attempt_at": "timestamptz",
            "give_up_at": "timestamptz",
        }
        values = ", ".join(
            f"j.v->'{f.column}'" if f.column == "payload" else f"(j.v->>'{f.column}')::{casts.get(f.column, 'text')}"
            for f in fields
        )
        source = "jsonb_array_elements(%s::jsonb) AS j(v)"
    else:
        values = ", ".join(
            f"json(json_extract(j.value, '$.{f.column}'))"
            if f.column == "payload"
            else f"json_extract(j.value, '$.{f.column}')"
            for f in fields
        )
        source = "json_each(%s) AS j WHERE true"  # "WHERE true": SQLite's parser, before an upsert clause
    sql = (
        f"INSERT INTO {quote(Delivery._meta.db_table)} ({columns}) SELECT {values} FROM {source} "
        "ON CONFLICT (subscription_id, event_id) DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(rows, cls=DjangoJSONEncoder)])
        return cursor.rowcount


_INSERTED = (
    "subscription", "event_id", "event_type", "order_key", "sequence", "payload", "status", "attempts",
    "created_at", "next_attempt_at", "give_up_at", "last_error",
)  # fmt: skip
