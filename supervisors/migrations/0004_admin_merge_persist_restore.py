"""Merge node only (no schema change): the admin branch merges both persist and restore,
whose 0003 migrations are siblings. The lead may drop this when linearising migrations."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("supervisors", "0003_persist_checkpoint_conversation_restrict"),
        ("supervisors", "0003_restore_log_details"),
    ]

    operations = []
