"""supervisor_attention rows go with their supervisor in the database (makima deletes supervisors with SQL).

A migration of its own because Django creates a new table's foreign keys only
at the end of the migration that creates it (as 0011_supervisor_events_on_delete).
"""

import importlib

from django.db import migrations

# A module name that starts with a digit cannot be imported with an import statement.
_0002 = importlib.import_module("supervisors.migrations.0002_database_on_delete")

RULES = [("supervisor_attention", "supervisor_id", "supervisor_states", "CASCADE")]


def set_rules(apps, schema_editor):
    _0002.set_rules(apps, schema_editor, rules=RULES)


def remove_rules(apps, schema_editor):
    _0002.set_rules(apps, schema_editor, with_rules=False, rules=RULES)


class Migration(migrations.Migration):
    dependencies = [("supervisors", "0015_attention_and_search_indexes")]

    operations = [migrations.RunPython(set_rules, remove_rules, elidable=False)]
