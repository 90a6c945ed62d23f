"""Give makima's foreign keys their ON DELETE rules in the database itself.

Django 5.2 emulates on_delete in Python and creates plain foreign keys. The
reference schema deletes a contract's tasks and supervisor state in the
database, so a row deleted by another program than this one cascades too. On
PostgreSQL each such constraint is re-created with its rule (keeping Django's
name and deferrability); SQLite keeps Django's emulation.

A constraint that already has its rule is left alone: on makima's own database
(adopted by 0001, which checked that makima's foreign keys have these rules)
this migration changes nothing on makima's tables, and unapplying it never
strips makima's rules.
"""

from django.db import migrations

from supervisors.makima_schema import MAKIMA_TABLES, is_makima_database

#: (table, column, referenced table, rule)
RULES = [
    ("supervisor_states", "contract_id", "contracts", "CASCADE"),
    ("supervisor_states", "task_id", "tasks", "CASCADE"),
    ("tasks", "contract_id", "contracts", "CASCADE"),
    ("tasks", "parent_task_id", "tasks", "SET NULL"),
    ("tasks", "daemon_id", "daemons", "SET NULL"),
    # This project's own tables must not stop makima from deleting a supervisor.
    ("supervisor_checkpoints", "supervisor_id", "supervisor_states", "CASCADE"),
    ("supervisor_conversation_snapshots", "supervisor_id", "supervisor_states", "CASCADE"),
    ("supervisor_question_answers", "supervisor_id", "supervisor_states", "CASCADE"),
    ("supervisor_restoration_log", "supervisor_id", "supervisor_states", "CASCADE"),
    ("idempotency_keys", "supervisor_id", "supervisor_states", "CASCADE"),
]

FIND_CONSTRAINT = """
    SELECT con.conname, con.confdeltype
    FROM pg_constraint con
    JOIN pg_class rel ON rel.oid = con.conrelid
    JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = ANY (con.conkey)
    WHERE con.contype = 'f' AND rel.relname = %s AND att.attname = %s
      AND rel.relnamespace = to_regnamespace(current_schema())
"""


def set_rules(apps, schema_editor, *, with_rules: bool = True, rules=RULES):
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    codes = {"CASCADE": "c", "SET NULL": "n"}
    makimas = not with_rules and is_makima_database(schema_editor)
    with schema_editor.connection.cursor() as cursor:
        for table, column, target, rule in rules:
            if makimas and table in MAKIMA_TABLES:
                continue  # makima's own rules: never ours to remove
            cursor.execute(FIND_CONSTRAINT, [table, column])
            for name, current in cursor.fetchall():
                if current == (codes[rule] if with_rules else "a"):
                    continue  # already so (makima's adopted tables): change nothing
                schema_editor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
                on_delete = f" ON DELETE {rule}" if with_rules else ""
                schema_editor.execute(
                    f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} FOREIGN KEY ({quote(column)}) "
                    f"REFERENCES {quote(target)} (id){on_delete} DEFERRABLE INITIALLY DEFERRED"
                )


def remove_rules(apps, schema_editor):
    set_rules(apps, schema_editor, with_rules=False)


class Migration(migrations.Migration):
    dependencies = [("supervisors", "0001_initial")]

    operations = [migrations.RunPython(set_rules, remove_rules, elidable=False)]
