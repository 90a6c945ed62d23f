"""This project's own records around a supervisor: checkpoints, answers, restorations."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models.query_utils import DeferredAttribute

from supervisors.enums import ActorKind, RecoveryAction, RestorationOutcome, RestorationSource, SavePoint
from supervisors.fields import UUIDArrayField

from .supervisor import SupervisorState
from .world import Daemon


class WholeHistoryAttribute(DeferredAttribute):
    """``snapshot.messages`` is always the whole history, also for a snapshot stored as a tail.

    A snapshot with a ``parent`` stores only the messages it adds; reading the
    attribute puts the parent's history in front (two queries, cached on the
    instance), so code that reads ``.messages`` can never restore half a
    conversation. ``.values("messages")`` and SQL see what is stored; batch
    readers use ``supervisors.services.conversations.snapshot_histories``.
    """

    def __get__(self, instance, cls=None):
        if instance is None:
            return self
        stored = super().__get__(instance, cls)
        if instance.parent_id is None:
            return stored
        whole = instance.__dict__.get("_whole_history")
        if whole is None:
            from supervisors.services.conversations import snapshot_histories

            whole = instance.__dict__["_whole_history"] = snapshot_histories([instance.pk])[instance.pk]
        return whole

    def __set__(self, instance, value):
        # A data descriptor, so that reads come through __get__ even once loaded.
        instance.__dict__[self.field.attname] = value
        instance.__dict__.pop("_whole_history", None)


class ConversationMessagesField(models.JSONField):
    """A JSONField whose attribute reads the whole history (see :class:`WholeHistoryAttribute`)."""

    descriptor_class = WholeHistoryAttribute

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs


class ConversationSnapshot(models.Model):
    """A conversation history as one checkpoint saw it, stored once per distinct content.

    Checkpoints taken while the history does not change (most save points do
    not touch it) share one snapshot, found by ``digest`` (of the whole
    history). A history that only grew since the previous snapshot stores only
    the new messages, after its ``parent``'s.
    """

    id = models.BigAutoField(primary_key=True)
    supervisor = models.ForeignKey(SupervisorState, on_delete=models.CASCADE, related_name="conversation_snapshots")
    digest = models.CharField(max_length=64, help_text="SHA-256 of the canonical JSON of the history.")
    messages = ConversationMessagesField(default=list)
    message_count = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # A history that extends an earlier snapshot stores only the messages it
    # adds: the ``messages`` column then holds the tail, after the
    # ``base_count`` messages of ``parent``'s whole history (reading the
    # attribute still gives the whole history; supervisors/services/conversations.py).
    parent = models.ForeignKey("self", on_delete=models.RESTRICT, null=True, blank=True, related_name="children")
    base_count = models.PositiveIntegerField(default=0, help_text="Messages taken from the parent's history.")

    class Meta:
        db_table = "supervisor_conversation_snapshots"
        constraints = [models.UniqueConstraint(fields=["supervisor", "digest"], name="conversation_snapshot_unique")]

    def __str__(self) -> str:
        return f"{self.message_count} messages ({self.digest[:12]})"


class SupervisorCheckpoint(models.Model):
    """A snapshot of a supervisor's state at a save point, to fall back on when the state is invalid."""

    id = models.BigAutoField(primary_key=True)
    supervisor = models.ForeignKey(SupervisorState, on_delete=models.CASCADE, related_name="checkpoints")
    reason = models.CharField(max_length=50, choices=SavePoint.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    state = models.CharField(max_length=50)
    phase = models.CharField(max_length=50)
    current_activity = models.TextField(null=True, blank=True)
    progress = models.IntegerField(default=0)
    error_message = models.TextField(null=True, blank=True)
    spawned_task_ids = UUIDArrayField(blank=True)
    pending_task_ids = UUIDArrayField(blank=True)
    pending_questions = models.JSONField(default=list, blank=True)
    conversation = models.ForeignKey(
        ConversationSnapshot, on_delete=models.RESTRICT, null=True, blank=True, related_name="checkpoints"
    )

    class Meta:
        db_table = "supervisor_checkpoints"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["supervisor", "-id"], name="checkpoint_supervisor_newest")]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class QuestionAnswer(models.Model):
    """A human's answer to a pending question, kept until the daemon acknowledges it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    supervisor = models.ForeignKey(SupervisorState, on_delete=models.CASCADE, related_name="answers")
    question_id = models.UUIDField()
    question = models.JSONField(help_text="The PendingQuestion as it was asked.")
    answer = models.TextField()
    answered_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    answered_by_daemon = models.ForeignKey(Daemon, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    answered_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "supervisor_question_answers"
        ordering = ["answered_at"]
        constraints = [models.UniqueConstraint(fields=["supervisor", "question_id"], name="question_answered_once")]

    def __str__(self) -> str:
        return f"Answer to {self.question_id}"


class RestorationLog(models.Model):
    """One restoration (or a refused one): who asked, why, what was found and done."""

    id = models.BigAutoField(primary_key=True)
    supervisor = models.ForeignKey(
        SupervisorState, on_delete=models.CASCADE, null=True, blank=True, related_name="restorations"
    )
    contract_id = models.UUIDField(db_index=True)
    started_at = models.DateTimeField(db_index=True)
    duration_ms = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=50, choices=RestorationSource.choices)
    actor_kind = models.CharField(max_length=20, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_daemon = models.ForeignKey(Daemon, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    actor_label = models.TextField(blank=True, default="", help_text="Who asked, as text (survives deletions).")
    reason = models.TextField(blank=True, default="")
    previous_state = models.CharField(max_length=50, blank=True, default="")
    recovery_action = models.CharField(max_length=50, choices=RecoveryAction.choices)
    checkpoint = models.ForeignKey(
        SupervisorCheckpoint, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    issues = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    success = models.BooleanField()
    restoration_count = models.IntegerField(default=0)
    # Added by the restoration branch: what step 5 re-delivered and step 6 found finished.
    redelivered_question_ids = models.JSONField(
        default=list, blank=True, help_text="Pending questions re-delivered to the human by this restoration."
    )
    finished_task_ids = models.JSONField(
        default=list, blank=True, help_text="Pending tasks that had finished while the supervisor was away."
    )
    outcome = models.CharField(
        max_length=32, choices=RestorationOutcome.choices, help_text="How the restoration ended (one word)."
    )
    previous_error_message = models.TextField(
        null=True, blank=True, help_text="The supervisor's error message before the restoration (kept or cleared)."
    )
    previous_daemon = models.ForeignKey(
        Daemon,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="On a takeover: the daemon the supervisor task moved away from.",
    )

    class Meta:
        db_table = "supervisor_restoration_log"
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["supervisor", "-started_at"], name="restoration_log_supervisor")]

    def __str__(self) -> str:
        when = f"{self.started_at:%Y-%m-%d %H:%M:%S}"
        return f"{self.get_source_display()} restoration: {self.get_outcome_display()} at {when}"
