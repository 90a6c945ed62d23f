"""``supervisor_events``: what happened to a supervisor, in order; the admin's timeline reads it.

Written only by the service functions, in the same transaction as the change
(``supervisors.services.events``), so an event exists exactly when its change
committed. The primary key is a UUID made when the event is written: a stable
id that a notification outbox can hand to receivers for deduplication.
``sequence`` numbers a supervisor's events 1, 2, 3, ... in the order they
committed (every writer holds the supervisor's row lock), so "newest first"
never depends on clocks. Retention keeps the newest ``SUPERVISOR_EVENTS_KEEP``
per supervisor (``services.events.prune_supervisor_events``).

The table is this project's own: its references to makima's tables get
``ON DELETE`` rules in the database (migration 0011), so makima deleting a
supervisor (its events go with it) or a daemon (the event keeps its
``actor_label``) never fails on them.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from supervisors.enums import ActorKind, EventKind

from .supervisor import SupervisorState
from .world import Daemon


class SupervisorEvent(models.Model):
    """One thing that happened to one supervisor: kind, when, who, and a few details (never content or keys)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: the unique (supervisor, sequence) serves every lookup by supervisor.
    supervisor = models.ForeignKey(SupervisorState, on_delete=models.CASCADE, related_name="events", db_index=False)
    contract_id = models.UUIDField()
    sequence = models.BigIntegerField(help_text="1, 2, 3, ... per supervisor, in commit order.")
    kind = models.CharField(max_length=40, choices=EventKind.choices)
    occurred_at = models.DateTimeField()
    actor_kind = models.CharField(max_length=20, choices=ActorKind.choices)
    actor_label = models.TextField(blank=True, default="", help_text="Who, as text (survives deletions).")
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_daemon = models.ForeignKey(Daemon, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    #: Small facts about the change (ids, phases, outcome, reason); never conversation content or keys.
    details = models.JSONField(default=dict, blank=True)
    #: Events that must be written once per episode (a stale supervisor) carry a key; NULLs never collide.
    dedupe_key = models.CharField(max_length=100, null=True, blank=True)
    #: The notification outbox's marker: NULL until the dispatcher has fanned the event out to the
    #: subscriptions (``services.notifications.dispatch``). Events older than notifications count as dispatched.
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "supervisor_events"
        ordering = ["-sequence"]
        constraints = [
            models.UniqueConstraint(fields=["supervisor", "sequence"], name="supervisor_event_sequence"),
            models.UniqueConstraint(fields=["supervisor", "dedupe_key"], name="supervisor_event_once"),
        ]
        indexes = [
            # The outbox: only the events not yet dispatched, in the dispatcher's order.
            models.Index(
                fields=["supervisor", "sequence"],
                condition=models.Q(dispatched_at__isnull=True),
                name="supervisor_events_undispatched",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class DaemonEvent(models.Model):
    """Something that happened to a daemon and is worth a person's attention: the watchdog found it gone.

    The notification outbox's rows for what is not one supervisor's (a
    supervisor's are :class:`SupervisorEvent`): written by the watchdog in the
    transaction that marks the daemon disconnected, dispatched like the
    supervisors' events (``dispatched_at``). The daemon is kept by id and name,
    not by a foreign key: makima owns and may delete daemons.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    daemon_id = models.UUIDField()
    daemon_name = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=40, default="daemon_gone")
    occurred_at = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "daemon_events"
        ordering = ["-occurred_at"]
        indexes = [
            models.Index(
                fields=["occurred_at"],
                condition=models.Q(dispatched_at__isnull=True),
                name="daemon_events_undispatched",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.daemon_name} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"
