"""The needs-attention index table, and the indexes the admin's list and search read at a million rows.

Trigram indexes (PostgreSQL's pg_trgm, a trusted extension a database owner
may create) serve the admin's search, which Django writes as
``UPPER(column::text) LIKE UPPER('%term%')``: the index is on that expression.
Neither indexed column is written by heartbeats (``HEARTBEAT_COLUMNS``), so
heartbeats stay HOT updates (bench/persistence_bench.py). SQLite gets none of
them: its databases are small.
"""

import django.db.models.deletion
from django.db import migrations, models

TRIGRAM_INDEXES = (
    ("contracts_name_trgm", "contracts", "name"),
    ("supervisor_states_error_trgm", "supervisor_states", "error_message"),
)


def create_trigram_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in TRIGRAM_INDEXES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (upper({column}) gin_trgm_ops)"
        )


def drop_trigram_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _table, _column in TRIGRAM_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ('supervisors', '0014_deliveries_dead_index'),
    ]

    operations = [
        migrations.CreateModel(
            name='SupervisorAttention',
            fields=[
                ('supervisor', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='attention_entry', serialize=False, to='supervisors.supervisorstate')),
                ('severity', models.SmallIntegerField()),
                ('since', models.DateTimeField()),
            ],
            options={
                'db_table': 'supervisor_attention',
            },
        ),
        migrations.AddIndex(
            model_name='contract',
            index=models.Index(fields=['name', 'id'], name='contracts_name_idx'),
        ),
        migrations.AddIndex(
            model_name='supervisorattention',
            index=models.Index(fields=['severity', 'since', 'supervisor'], name='supervisor_attention_order'),
        ),
        migrations.AddIndex(
            model_name='supervisorstate',
            index=models.Index(fields=['phase'], name='supervisor_states_phase_idx'),
        ),
        migrations.RunPython(create_trigram_indexes, drop_trigram_indexes),
    ]
