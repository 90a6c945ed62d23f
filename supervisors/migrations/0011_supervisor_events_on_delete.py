"""supervisor_events' references to makima's tables get their ON DELETE rules in the database.

makima deletes supervisors and daemons with SQL: a supervisor's events go with
it (CASCADE); an event whose actor daemon is deleted keeps its row and its
``actor_label`` (SET NULL), exactly as migration 0008 does for the other
tables. A migration of its own because Django creates a new table's foreign
keys only at the end of the migration that creates it.
"""

import importlib

from django.db import migrations

# A module name that starts with a digit cannot be imported with an import statement.
_0002 = importlib.import_module("supervisors.migrations.0002_database_on_delete")

RULES = [
    ("supervisor_events", "supervisor_id", "supervisor_states", "CASCADE"),
    ("supervisor_events", "actor_daemon_id", "daemons", "SET NULL"),
]


def set_rules(apps, schema_editor):
    _0002.set_rules(apps, schema_editor, rules=RULES)


def remove_rules(apps, schema_editor):
    _0002.set_rules(apps, schema_editor, with_rules=False, rules=RULES)


class Migration(migrations.Migration):
    dependencies = [("supervisors", "0011_supervisor_events")]

    operations = [migrations.RunPython(set_rules, remove_rules, elidable=False)]
