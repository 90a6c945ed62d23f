"""makima's own tables that supervisor_states refers to: contracts, daemons, tasks.

makima has more columns; these carry the reference's columns, which is what
validation, authorization and the admin need.
"""

from __future__ import annotations

import uuid

from django.db import models

from supervisors.enums import TERMINAL_TASK_STATUSES, ContractStatus, DaemonStatus, TaskStatus
from supervisors.fields import DatabaseNow


class Contract(models.Model):
    """A unit of work that moves through phases; it has at most one supervisor."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.TextField()
    phase = models.CharField(max_length=50)
    status = models.CharField(
        max_length=50, choices=ContractStatus.choices, default=ContractStatus.ACTIVE, db_default=ContractStatus.ACTIVE
    )
    created_at = models.DateTimeField(auto_now_add=True, db_default=DatabaseNow())
    updated_at = models.DateTimeField(auto_now=True, db_default=DatabaseNow())

    class Meta:
        db_table = "contracts"
        ordering = ["name"]
        # The supervisor list's default order (contract name) reads this index instead of sorting a
        # million rows; contracts are not written by heartbeats. Trigram indexes for searching
        # names and error messages are PostgreSQL-only (migration 0015).
        indexes = [models.Index(fields=["name", "id"], name="contracts_name_idx")]

    def __str__(self) -> str:
        return self.name


class Daemon(models.Model):
    """A worker machine that runs tasks, supervisors among them."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.TextField()
    status = models.CharField(
        max_length=50,
        choices=DaemonStatus.choices,
        default=DaemonStatus.DISCONNECTED,
        db_default=DaemonStatus.DISCONNECTED,
    )
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_default=DatabaseNow())

    class Meta:
        db_table = "daemons"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Task(models.Model):
    """A task of a contract, run on a daemon; a supervisor is itself a task (``is_supervisor``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="tasks")
    parent_task = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children")
    daemon = models.ForeignKey(Daemon, on_delete=models.SET_NULL, null=True, blank=True, related_name="tasks")
    name = models.TextField()
    status = models.CharField(
        max_length=50, choices=TaskStatus.choices, default=TaskStatus.PENDING, db_default=TaskStatus.PENDING
    )
    is_supervisor = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_default=DatabaseNow())
    updated_at = models.DateTimeField(auto_now=True, db_default=DatabaseNow())
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tasks"
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_TASK_STATUSES
