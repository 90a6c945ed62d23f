"""This project's own references to daemons get their ON DELETE rules in the database.

makima deletes daemons with SQL; Django only emulates on_delete, so without
these rules a key, an idempotency record, a restoration log row or an answer
that names a daemon would stop makima from deleting it. Keys and idempotency
records go with their daemon; the log and the answers keep the row and forget
the daemon (their ``actor_label``/answer text still says who it was).
"""

import importlib

from django.db import migrations

# A module name that starts with a digit cannot be imported with an import statement.
_0002 = importlib.import_module("supervisors.migrations.0002_database_on_delete")

RULES = [
    ("daemon_api_keys", "daemon_id", "daemons", "CASCADE"),
    ("idempotency_keys", "daemon_id", "daemons", "CASCADE"),
    ("supervisor_restoration_log", "actor_daemon_id", "daemons", "SET NULL"),
    ("supervisor_restoration_log", "previous_daemon_id", "daemons", "SET NULL"),
    ("supervisor_question_answers", "answered_by_daemon_id", "daemons", "SET NULL"),
]


def set_rules(apps, schema_editor):
    _0002.set_rules(apps, schema_editor, rules=RULES)


def remove_rules(apps, schema_editor):
    _0002.set_rules(apps, schema_editor, with_rules=False, rules=RULES)


class Migration(migrations.Migration):
    dependencies = [("supervisors", "0007_restoration_log_outcome")]

    operations = [migrations.RunPython(set_rules, remove_rules, elidable=False)]
