"""The restoration log records what steps 5 and 6 did: questions re-delivered, tasks found finished.

Numbered after the persistence branch's 0003 (merged into this branch first).
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('supervisors', '0003_persist_checkpoint_conversation_restrict'),
    ]

    operations = [
        migrations.AddField(
            model_name='restorationlog',
            name='finished_task_ids',
            field=models.JSONField(blank=True, default=list, help_text='Pending tasks that had finished while the supervisor was away.'),
        ),
        migrations.AddField(
            model_name='restorationlog',
            name='redelivered_question_ids',
            field=models.JSONField(blank=True, default=list, help_text='Pending questions re-delivered to the human by this restoration.'),
        ),
    ]
