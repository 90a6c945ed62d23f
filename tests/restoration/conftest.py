"""Builders for restoration tests: supervisors with spawned tasks and checkpoints, saved through the ORM."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from supervisors.enums import SavePoint, SupervisorStatus, TaskStatus
from supervisors.models import ConversationSnapshot, SupervisorCheckpoint, SupervisorState
from supervisors.services.actors import Actor
from tests.factories import make_contract, make_supervisor, make_task

HISTORY = [{"role": "user", "content": "build it"}, {"role": "assistant", "content": "on it"}]


def make_working_supervisor(
    *, tasks: int = 2, pending: int = 1, name: str = "Contract", **fields: Any
) -> tuple[SupervisorState, list]:
    """A valid supervisor that spawned ``tasks`` running tasks and waits on the first ``pending``."""
    contract = make_contract(name=name)
    spawned = [make_task(contract, name=f"task {i}") for i in range(tasks)]
    fields.setdefault("state", SupervisorStatus.WAITING_FOR_TASKS if pending else SupervisorStatus.WORKING)
    fields.setdefault("conversation_history", HISTORY)
    fields.setdefault("progress", 40)
    fields.setdefault("current_activity", "waiting for the build")
    supervisor = make_supervisor(
        contract,
        spawned_task_ids=[t.id for t in spawned],
        pending_task_ids=[t.id for t in spawned[:pending]],
        **fields,
    )
    return supervisor, spawned


def make_checkpoint(
    supervisor: SupervisorState, *, history: list | None = None, age: timedelta | None = None, **fields: Any
) -> SupervisorCheckpoint:
    """A checkpoint as the persistence branch would take it (conversation stored as a snapshot)."""
    history = HISTORY if history is None else history
    snapshot, _ = ConversationSnapshot.objects.get_or_create(
        supervisor=supervisor,
        digest=str(hash(repr(history))),
        defaults={"messages": history, "message_count": len(history) if isinstance(history, list) else 0},
    )
    values = {
        "reason": SavePoint.TASK_SPAWNED,
        "state": supervisor.state,
        "phase": supervisor.phase,
        "current_activity": supervisor.current_activity,
        "progress": supervisor.progress,
        "error_message": supervisor.error_message,
        "spawned_task_ids": supervisor.spawned_task_ids,
        "pending_task_ids": supervisor.pending_task_ids,
        "pending_questions": supervisor.pending_questions,
        "conversation": snapshot,
    }
    values.update(fields)
    checkpoint = SupervisorCheckpoint.objects.create(supervisor=supervisor, **values)
    if age is not None:
        SupervisorCheckpoint.objects.filter(id=checkpoint.id).update(created_at=timezone.now() - age)
        checkpoint.refresh_from_db()
    return checkpoint


def done(task) -> None:
    task.status = TaskStatus.DONE
    task.save(update_fields=["status"])


@pytest.fixture
def actor() -> Actor:
    return Actor.command("test")
