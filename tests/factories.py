"""Small builders for test data: real rows, saved through the ORM.

Plain functions rather than a factory library: the world here is four tables.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from supervisors.enums import QuestionType, TaskStatus
from supervisors.models import Contract, Daemon, SupervisorState, Task


def make_daemon(name: str = "daemon-1", **fields: Any) -> Daemon:
    return Daemon.objects.create(name=name, **fields)


def make_contract(name: str = "Contract", phase: str = "plan", **fields: Any) -> Contract:
    return Contract.objects.create(name=name, phase=phase, **fields)


def make_task(contract: Contract, name: str = "task", **fields: Any) -> Task:
    fields.setdefault("status", TaskStatus.RUNNING)
    return Task.objects.create(contract=contract, name=name, **fields)


def make_supervisor(
    contract: Contract | None = None, *, daemon: Daemon | None = None, **fields: Any
) -> SupervisorState:
    """A contract with its supervisor task and state; ``fields`` go to the state."""
    contract = contract or make_contract()
    task = make_task(contract, name=f"supervisor of {contract.name}", is_supervisor=True, daemon=daemon)
    fields.setdefault("phase", contract.phase)
    return SupervisorState.objects.create(contract=contract, task=task, **fields)


def make_question(text: str = "Proceed to the next phase?", **fields: Any) -> dict[str, Any]:
    """A well-formed PendingQuestion in its camelCase wire form."""
    question = {
        "id": str(uuid.uuid4()),
        "question": text,
        "choices": ["yes", "no"],
        "context": None,
        "questionType": QuestionType.GENERAL.value,
        "askedAt": datetime(2026, 11, 1, 12, 0, tzinfo=UTC).isoformat(),
    }
    question.update(fields)
    return question
