"""The metrics' snapshot table, and on PostgreSQL a function to date a supervisor's oldest pending question.

``metrics_snapshots``: figures a background job computes so that a scrape
need not scan ``supervisor_states`` (supervisors/metrics/snapshot.py).

``makima_oldest_question_asked_at(pending_questions)``: the earliest readable
``askedAt`` in a pending-questions array (NULL when none is readable). Declared
PARALLEL SAFE, so the one statement that scans ``supervisor_states`` for the
metrics (supervisors/metrics/snapshot.py) can still be a parallel aggregate; the
same computation inline (a correlated subquery, or a LATERAL join) makes
PostgreSQL aggregate in one process, or join every row. A function in the
schema, not a change to makima's tables: nothing is added to them.
On SQLite the statement computes it inline (json_each); nothing to create.
"""

from django.db import migrations, models

#: An RFC 3339 timestamp PostgreSQL can cast (real calendar days, leap years included; years 1000-9999;
#: offsets up to 15:59): anything else is skipped, never an error that would fail the whole scrape.
_DAY = (
    r"([1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])"
    r"|[1-9]\d{3}-(0[13-9]|1[0-2])-(29|30)"
    r"|[1-9]\d{3}-(0[13578]|1[02])-31"
    r"|([1-9]\d(0[48]|[2468][048]|[13579][26])|([13579][26]|[2468][048])00)-02-29)"
)
TIMESTAMP_RE = "^" + _DAY + r"[Tt ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?([Zz]|[+-](0\d|1[0-5]):[0-5]\d)$"

CREATE = f"""
CREATE OR REPLACE FUNCTION makima_oldest_question_asked_at(questions jsonb) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
    SELECT min(CASE WHEN jsonb_typeof(e) = 'object' AND e->>'askedAt' ~ '{TIMESTAMP_RE}'
                    THEN (e->>'askedAt')::timestamptz END)
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(questions) = 'array' THEN questions ELSE '[]'::jsonb END) e
$fn$
"""

DROP = "DROP FUNCTION IF EXISTS makima_oldest_question_asked_at(jsonb)"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("supervisors", "0011_supervisor_events_on_delete")]

    operations = [
        migrations.CreateModel(
            name="MetricsSnapshot",
            fields=[
                ("name", models.CharField(max_length=50, primary_key=True, serialize=False)),
                ("figures", models.JSONField()),
                ("computed_at", models.DateTimeField()),
                ("duration_ms", models.PositiveIntegerField(default=0)),
                ("refresh_requested_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"db_table": "metrics_snapshots"},
        ),
        migrations.RunPython(create, drop, elidable=False),
    ]
