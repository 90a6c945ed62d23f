"""``supervisor_states``: one row per contract, exactly as makima's table has it."""

from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from supervisors.enums import RestorationSource, SupervisorStatus
from supervisors.fields import DatabaseNow, EmptyJSONArray, EmptyUUIDArray, UUIDArrayField
from supervisors.validators import validate_conversation_history, validate_pending_questions

from .world import Contract, Task

#: Columns a heartbeat rewrites; nothing else is touched on that hot path, and
#: none of them carries a B-tree index, so PostgreSQL can keep the update HOT.
HEARTBEAT_COLUMNS = ("state", "current_activity", "progress", "last_activity", "updated_at")

#: Columns that are large and never needed to list or route supervisors.
HEAVY_COLUMNS = ("conversation_history",)


class SupervisorState(models.Model):
    """The persisted state of one contract's supervisor.

    Column names, types, nullability and database defaults follow
    ``shared/reference/supervisor_states.sql`` so that rows written by makima
    itself (which may omit the newer columns) read back the same. ``state`` and
    ``restoration_source`` carry no database CHECK: makima's table has none,
    and a value the model does not know is something validation reports.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    contract = models.OneToOneField(Contract, on_delete=models.CASCADE, related_name="supervisor_state")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="supervised_states")
    conversation_history = models.JSONField(
        default=list, db_default=EmptyJSONArray(), blank=True, validators=[validate_conversation_history]
    )
    pending_task_ids = UUIDArrayField(db_default=EmptyUUIDArray(), blank=True)
    phase = models.CharField(max_length=50)
    last_activity = models.DateTimeField(default=timezone.now, db_default=DatabaseNow())
    created_at = models.DateTimeField(default=timezone.now, db_default=DatabaseNow(), editable=False)
    updated_at = models.DateTimeField(default=timezone.now, db_default=DatabaseNow(), editable=False)
    state = models.CharField(
        max_length=50,
        choices=SupervisorStatus.choices,
        default=SupervisorStatus.INITIALIZING,
        db_default=SupervisorStatus.INITIALIZING,
    )
    current_activity = models.TextField(null=True, blank=True)
    progress = models.IntegerField(default=0, db_default=0, validators=[MinValueValidator(0), MaxValueValidator(100)])
    error_message = models.TextField(null=True, blank=True)
    spawned_task_ids = UUIDArrayField(db_default=EmptyUUIDArray(), blank=True)
    pending_questions = models.JSONField(
        default=list, db_default=EmptyJSONArray(), blank=True, validators=[validate_pending_questions]
    )
    restoration_count = models.IntegerField(default=0, db_default=0, validators=[MinValueValidator(0)])
    last_restored_at = models.DateTimeField(null=True, blank=True)
    restoration_source = models.CharField(max_length=50, null=True, blank=True, choices=RestorationSource.choices)

    class Meta:
        db_table = "supervisor_states"
        verbose_name = "supervisor"
        verbose_name_plural = "supervisors"
        # Only on columns heartbeats never write (HEARTBEAT_COLUMNS), so heartbeats stay HOT updates:
        # the admin's phase filter lists the distinct phases by walking this index (selectors).
        indexes = [models.Index(fields=["phase"], name="supervisor_states_phase_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=100),
                name="supervisor_states_progress_check",
                violation_error_message="Progress must be between 0 and 100.",
            )
        ]
        permissions = [
            ("restore_supervisor", "Can restore supervisors"),
            ("answer_question", "Can answer supervisor questions"),
        ]

    def __str__(self) -> str:
        # The contract's name when it is already loaded (the admin loads it): titles and breadcrumbs
        # name what a person knows; never a query of its own, so lists of rows stay one query.
        if SupervisorState.contract.is_cached(self):
            return f"Supervisor of {self.contract.name}"
        return f"Supervisor of {self.contract_id}"

    def clean(self) -> None:
        """Cross-field rules: pending tasks are spawned tasks."""
        from django.core.exceptions import ValidationError

        spawned = set(self.spawned_task_ids or [])
        unknown = [str(t) for t in self.pending_task_ids or [] if t not in spawned]
        if unknown:
            raise ValidationError({"pending_task_ids": f"Pending tasks that were never spawned: {', '.join(unknown)}."})
