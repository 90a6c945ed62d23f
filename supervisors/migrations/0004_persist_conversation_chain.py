"""Conversation snapshots that extend an earlier one store only the messages they add.

Two columns on this project's own table: ``parent`` (the snapshot whose whole
history is the prefix) and ``base_count`` (how many messages that prefix has).
Existing snapshots keep ``parent`` empty: they hold their whole history.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('supervisors', '0003_persist_checkpoint_conversation_restrict'),
    ]

    operations = [
        migrations.AddField(
            model_name='conversationsnapshot',
            name='base_count',
            field=models.PositiveIntegerField(default=0, help_text="Messages taken from the parent's history."),
        ),
        migrations.AddField(
            model_name='conversationsnapshot',
            name='parent',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.RESTRICT, related_name='children', to='supervisors.conversationsnapshot'),
        ),
    ]
