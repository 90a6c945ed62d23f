"""The conversation column compressed with lz4 on PostgreSQL, where the server has it (issue 12).

``ALTER TABLE ... ALTER COLUMN ... SET COMPRESSION`` changes a catalog entry,
not the column's type: nothing is rewritten, values already stored stay pglz
and read as before, values written from now on (by this service or by makima)
are lz4. Appending to a 5 MB conversation rewrites the whole value, and lz4
compresses and decompresses it several times faster than pglz
(docs/performance.md, "Appending to the conversation"). The statement takes
the table's ACCESS EXCLUSIVE lock for a moment. A server built without lz4
(or before PostgreSQL 14) keeps pglz; SQLite has no such setting.
"""

from django.db import migrations

TABLE = "supervisor_states"


def lz4_available(schema_editor) -> bool:
    if schema_editor.connection.vendor != "postgresql":
        return False
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)")
        return cursor.fetchone() is not None


def set_compression(method: str):
    def run(apps, schema_editor) -> None:
        if lz4_available(schema_editor):
            schema_editor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN conversation_history SET COMPRESSION {method}")

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("supervisors", "0016_attention_on_delete"),
    ]

    operations = [
        migrations.RunPython(set_compression("lz4"), set_compression("default"), elidable=False),
    ]
