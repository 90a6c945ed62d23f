"""The seed's enumerations, in one place.

Models, services, the API and the admin all import their choices from here, so
a value spelled one way on the wire is spelled the same way in the database and
on the admin's filters. Values are spelled exactly as the seed spells them
(``RecoveryAction`` keeps the seed's PascalCase, as serde writes a unit enum).
"""

from __future__ import annotations

from django.db import models


class SupervisorStatus(models.TextChoices):
    """``supervisor_states.state``: what the supervisor is doing right now."""

    INITIALIZING = "initializing", "Initializing"
    IDLE = "idle", "Idle"
    WORKING = "working", "Working"
    WAITING_FOR_USER = "waiting_for_user", "Waiting for user"
    WAITING_FOR_TASKS = "waiting_for_tasks", "Waiting for tasks"
    BLOCKED = "blocked", "Blocked"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    INTERRUPTED = "interrupted", "Interrupted"


#: States in which a supervisor is expected to make progress on its own: one
#: that has been silent in these for too long is stale. Waiting for a human is
#: deliberately absent: a slow human does not make a supervisor stale.
ACTIVE_STATES: frozenset[str] = frozenset(
    {
        SupervisorStatus.INITIALIZING,
        SupervisorStatus.WORKING,
        SupervisorStatus.WAITING_FOR_TASKS,
    }
)

#: States whose saved state must carry an error message to be understood.
STATES_NEEDING_ERROR: frozenset[str] = frozenset({SupervisorStatus.FAILED, SupervisorStatus.BLOCKED})


class RestorationSource(models.TextChoices):
    """``supervisor_states.restoration_source``: why a restoration happened."""

    DAEMON_RESTART = "daemon_restart", "Daemon restart"
    TASK_REASSIGNMENT = "task_reassignment", "Task reassignment"
    MANUAL = "manual", "Manual"


class QuestionType(models.TextChoices):
    """``PendingQuestion.questionType``; the seed's default is ``general``."""

    GENERAL = "general", "General"
    PHASE_CONFIRMATION = "phase_confirmation", "Phase confirmation"
    CONTRACT_COMPLETE = "contract_complete", "Contract complete"


class RecoveryAction(models.TextChoices):
    """The seed's ``StateRecoveryAction``, spelled as serde writes it."""

    PROCEED = "Proceed", "Proceed"
    USE_CHECKPOINT = "UseCheckpoint", "Use checkpoint"
    START_FRESH = "StartFresh", "Start fresh"
    MANUAL_INTERVENTION = "ManualIntervention", "Manual intervention"


#: Severity order of recovery actions: validation keeps the most severe one found.
RECOVERY_SEVERITY: dict[str, int] = {
    RecoveryAction.PROCEED: 0,
    RecoveryAction.USE_CHECKPOINT: 1,
    RecoveryAction.START_FRESH: 2,
    RecoveryAction.MANUAL_INTERVENTION: 3,
}


class RestorationOutcome(models.TextChoices):
    """How one restoration ended: the one word the command, its JSON, the admin and the log all use.

    ``needs_person`` is ManualIntervention: nothing was restored, the
    supervisor is marked blocked until someone fixes what validation found.
    """

    RESTORED = "restored", "Restored"
    RESTORED_FROM_CHECKPOINT = "restored_from_checkpoint", "Restored from a checkpoint"
    STARTED_FRESH = "started_fresh", "Started fresh"
    NEEDS_PERSON = "needs_person", "Needs a person (blocked)"
    SKIPPED_COMPLETED = "skipped_completed", "Skipped: completed"
    FAILED = "failed", "Failed"


#: The outcome of a restoration that applied this recovery action.
OUTCOME_OF_ACTION: dict[str, RestorationOutcome] = {
    RecoveryAction.PROCEED: RestorationOutcome.RESTORED,
    RecoveryAction.USE_CHECKPOINT: RestorationOutcome.RESTORED_FROM_CHECKPOINT,
    RecoveryAction.START_FRESH: RestorationOutcome.STARTED_FRESH,
    RecoveryAction.MANUAL_INTERVENTION: RestorationOutcome.NEEDS_PERSON,
}

#: Outcomes in which the supervisor was brought back (runs again under a new epoch).
RESTORED_OUTCOMES: frozenset[str] = frozenset(
    {RestorationOutcome.RESTORED, RestorationOutcome.RESTORED_FROM_CHECKPOINT, RestorationOutcome.STARTED_FRESH}
)


class TaskStatus(models.TextChoices):
    """``tasks.status`` as makima keeps it."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    BLOCKED = "blocked", "Blocked"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    INTERRUPTED = "interrupted", "Interrupted"


#: A task in one of these will not change any more: a supervisor waiting on it
#: has its answer. ``interrupted`` is not terminal: makima resumes such tasks.
TERMINAL_TASK_STATUSES: frozenset[str] = frozenset({TaskStatus.DONE, TaskStatus.FAILED})


class ContractStatus(models.TextChoices):
    """``contracts.status``."""

    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    ARCHIVED = "archived", "Archived"


class DaemonStatus(models.TextChoices):
    """``daemons.status``: a daemon's own connection as last reported."""

    CONNECTED = "connected", "Connected"
    DISCONNECTED = "disconnected", "Disconnected"


class SavePoint(models.TextChoices):
    """The moments the seed names at which state is persisted.

    Every save point but the heartbeat also takes a checkpoint; the reason of a
    checkpoint is one of these.
    """

    TASK_SPAWNED = "task_spawned", "Task spawned"
    QUESTION_ASKED = "question_asked", "Question asked"
    QUESTION_ANSWERED = "question_answered", "Question answered"
    QUESTION_WITHDRAWN = "question_withdrawn", "Question withdrawn"
    PHASE_CHANGED = "phase_changed", "Phase changed"
    STATE_SAVED = "state_saved", "Full state saved"
    STATE_UPDATED = "state_updated", "State updated"
    HEARTBEAT = "heartbeat", "Heartbeat"


class ActorKind(models.TextChoices):
    """Who or what asked for a change that the service records."""

    STAFF = "staff", "Staff user"
    DAEMON = "daemon", "Daemon"
    COMMAND = "command", "Management command"
    SYSTEM = "system", "System"


class EventKind(models.TextChoices):
    """``supervisor_events.kind``: what happened to a supervisor (its timeline; a later outbox's source).

    Values are stable names: a notification consumer may match on them.
    Heartbeats are not events.
    """

    CREATED = "created", "Supervisor created"
    STATE_SAVED = "state_saved", "Full state saved"
    STATE_UPDATED = "state_updated", "State updated"
    CORRECTED = "corrected", "Corrected by staff"
    TASK_SPAWNED = "task_spawned", "Task spawned"
    PHASE_CHANGED = "phase_changed", "Phase changed"
    QUESTION_ASKED = "question_asked", "Question asked"
    QUESTION_ANSWERED = "question_answered", "Question answered"
    QUESTION_WITHDRAWN = "question_withdrawn", "Question withdrawn"
    ANSWER_ACKNOWLEDGED = "answer_acknowledged", "Answer acknowledged"
    QUESTIONS_REDELIVERED = "questions_redelivered", "Questions re-delivered"
    RESTORED = "restored", "Restored"
    CHECKPOINT_RESTORED = "checkpoint_restored", "Restored from a checkpoint by staff"
    TAKEN_OVER = "taken_over", "Taken over by another daemon"
    CLAIMED = "claimed", "Claimed by a daemon"
    RESTORATION_REFUSED = "restoration_refused", "Restoration refused"
    INTERRUPTED = "interrupted", "Interrupted (by the watchdog or staff)"
    STALE = "stale", "Silent longer than the stale threshold"


class RestoreJobKind(models.TextChoices):
    """What a restore job does to each supervisor of its selection (the admin's action that queued it)."""

    RESTORE = "restore", "Restore"
    START_FRESH = "fresh", "Start fresh"
    INTERRUPT = "interrupt", "Mark interrupted"


class RestoreJobStatus(models.TextChoices):
    """Where a restore job is: queued until a worker starts it, then running until no item is pending."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


#: A job in one of these states does nothing more.
RESTORE_JOB_FINISHED: frozenset[str] = frozenset(
    {RestoreJobStatus.CANCELLED, RestoreJobStatus.DONE, RestoreJobStatus.FAILED}
)


class RestoreJobItemStatus(models.TextChoices):
    """One supervisor of a restore job: pending until the transaction that restores it marks it done."""

    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class NotificationType(models.TextChoices):
    """What a notification is about: the events worth a person's attention (``docs/notifications.md``).

    Stable names a receiver may match on. Most are the event's own kind; a
    state change is named for where it went (``supervisor_blocked``,
    ``supervisor_failed``); ``test`` is the admin's "send a test event".
    """

    QUESTION_ASKED = "question_asked", "A question is asked"
    SUPERVISOR_BLOCKED = "supervisor_blocked", "A supervisor is blocked"
    SUPERVISOR_FAILED = "supervisor_failed", "A supervisor failed"
    RESTORATION_REFUSED = "restoration_refused", "A restoration was refused (needs a person)"
    INTERRUPTED = "interrupted", "A supervisor was interrupted (its daemon is gone)"
    STALE = "stale", "A supervisor is silent past the stale threshold"
    RESTORED = "restored", "A supervisor was restored (failover done)"
    CHECKPOINT_RESTORED = "checkpoint_restored", "A supervisor was restored from a checkpoint"
    TAKEN_OVER = "taken_over", "A supervisor was taken over by another daemon"
    CLAIMED = "claimed", "A supervisor was claimed by a daemon"
    DAEMON_GONE = "daemon_gone", "A daemon is gone (found silent past its lease by the watchdog)"
    TEST = "test", "Test event (from the admin)"


class DeliveryStatus(models.TextChoices):
    """Where a notification's delivery to one subscription is: pending until sent, or given up."""

    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    DEAD = "dead", "Dead letter (gave up)"
    DISCARDED = "discarded", "Discarded by staff"
