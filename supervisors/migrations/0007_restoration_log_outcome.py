# Issue 11: one truth about outcomes; the last error and the former daemon stay visible.

import django.db.models.deletion
from django.db import migrations, models


def fill_outcomes(apps, schema_editor):
    """Rows logged before outcomes existed: derive the outcome from what they recorded."""
    RestorationLog = apps.get_model("supervisors", "RestorationLog")
    by_action = {
        "Proceed": "restored",
        "UseCheckpoint": "restored_from_checkpoint",
        "StartFresh": "started_fresh",
        "ManualIntervention": "needs_person",
    }
    for action, outcome in by_action.items():
        RestorationLog.objects.filter(recovery_action=action, success=True).update(outcome=outcome)
    RestorationLog.objects.filter(recovery_action="ManualIntervention").update(outcome="needs_person")
    # The only other refusal ever logged: a completed supervisor (recorded as Proceed, success false).
    RestorationLog.objects.filter(success=False).exclude(recovery_action="ManualIntervention").update(
        outcome="skipped_completed"
    )


class Migration(migrations.Migration):

    dependencies = [
        ("supervisors", "0006_api_rate_counters"),
    ]

    operations = [
        migrations.AddField(
            model_name="restorationlog",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("restored", "Restored"),
                    ("restored_from_checkpoint", "Restored from a checkpoint"),
                    ("started_fresh", "Started fresh"),
                    ("needs_person", "Needs a person (blocked)"),
                    ("skipped_completed", "Skipped: completed"),
                    ("failed", "Failed"),
                ],
                default="restored",
                help_text="How the restoration ended (one word).",
                max_length=32,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="restorationlog",
            name="previous_error_message",
            field=models.TextField(
                blank=True,
                help_text="The supervisor's error message before the restoration (kept or cleared).",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="restorationlog",
            name="previous_daemon",
            field=models.ForeignKey(
                blank=True,
                help_text="On a takeover: the daemon the supervisor task moved away from.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="supervisors.daemon",
            ),
        ),
        migrations.RunPython(fill_outcomes, migrations.RunPython.noop),
    ]
