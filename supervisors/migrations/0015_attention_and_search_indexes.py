"""The needs-attention index table, and the indexes the admin's list and search read at a million rows.

The indexes on makima's tables (contracts, supervisor_states) are built
``CONCURRENTLY`` on PostgreSQL, outside a transaction (``atomic = False``):
a plain ``CREATE INDEX`` blocks every write to the table while it builds,
seconds to minutes at a million rows, and makima and the daemons write there
all the time. ``IF NOT EXISTS`` makes a re-run after an interruption finish
the job. Trigram indexes (PostgreSQL's pg_trgm, a trusted extension a database
owner may create) serve the admin's search, which Django writes as
``UPPER(column::text) LIKE UPPER('%term%')``: the index is on that expression.
No indexed column is written by heartbeats (``HEARTBEAT_COLUMNS``), so
heartbeats stay HOT updates (bench/persistence_bench.py). SQLite gets the
B-tree indexes only.
"""

import django.db.models.deletion
from django.db import migrations, models

#: (name, table, PostgreSQL definition, SQLite definition or None)
MAKIMA_TABLE_INDEXES = (
    ("contracts_name_idx", "contracts", '("name", "id")', '("name", "id")'),
    ("supervisor_states_phase_idx", "supervisor_states", '("phase")', '("phase")'),
    ("contracts_name_trgm", "contracts", "USING gin (upper(name) gin_trgm_ops)", None),
    ("supervisor_states_error_trgm", "supervisor_states", "USING gin (upper(error_message) gin_trgm_ops)", None),
)


def create_indexes(apps, schema_editor) -> None:
    postgresql = schema_editor.connection.vendor == "postgresql"
    if postgresql:
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, pg_definition, sqlite_definition in MAKIMA_TABLE_INDEXES:
        if postgresql:
            schema_editor.execute(f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{table}" {pg_definition}')
        elif sqlite_definition:
            schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" {sqlite_definition}')


def drop_indexes(apps, schema_editor) -> None:
    concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    for name, _table, _pg, _sqlite in MAKIMA_TABLE_INDEXES:
        schema_editor.execute(f'DROP INDEX{concurrently} IF EXISTS "{name}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("supervisors", "0014_deliveries_dead_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="SupervisorAttention",
            fields=[
                (
                    "supervisor",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="attention_entry",
                        serialize=False,
                        to="supervisors.supervisorstate",
                    ),
                ),
                ("severity", models.SmallIntegerField()),
                ("since", models.DateTimeField()),
            ],
            options={
                "db_table": "supervisor_attention",
            },
        ),
        migrations.AddIndex(
            model_name="supervisorattention",
            index=models.Index(fields=["severity", "since", "supervisor"], name="supervisor_attention_order"),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="contract",
                    index=models.Index(fields=["name", "id"], name="contracts_name_idx"),
                ),
                migrations.AddIndex(
                    model_name="supervisorstate",
                    index=models.Index(fields=["phase"], name="supervisor_states_phase_idx"),
                ),
            ],
            database_operations=[migrations.RunPython(create_indexes, drop_indexes)],
        ),
    ]
