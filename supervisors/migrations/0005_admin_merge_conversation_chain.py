"""Merge node only (no schema change): joins persist's 0004 with the admin/restore merge node 0004.

The lead may drop this when linearising migrations."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("supervisors", "0004_admin_merge_persist_restore"),
        ("supervisors", "0004_persist_conversation_chain"),
    ]

    operations = []
