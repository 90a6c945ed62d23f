"""Merge node only (no schema change): the restore branch carries the admin branch's
0004 merge node and persist's 0004_persist_conversation_chain, siblings on persist's 0003.
The lead may drop this when linearising migrations."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("supervisors", "0004_admin_merge_persist_restore"),
        ("supervisors", "0004_persist_conversation_chain"),
    ]

    operations = []
