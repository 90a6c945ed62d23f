"""A checkpoint's conversation: RESTRICT instead of PROTECT (no SQL change).

With PROTECT, deleting a contract or supervisor that has checkpoints failed in
Django (the admin's delete too): the cascade reaches the conversation
snapshots, which the checkpoints PROTECT even though they are being deleted in
the same cascade. RESTRICT refuses only the deletion of a snapshot that a
surviving checkpoint still uses.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('supervisors', '0002_database_on_delete'),
    ]

    operations = [
        migrations.AlterField(
            model_name='supervisorcheckpoint',
            name='conversation',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.RESTRICT, related_name='checkpoints', to='supervisors.conversationsnapshot'),
        ),
    ]
