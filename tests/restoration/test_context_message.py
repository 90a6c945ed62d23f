"""The restoration context message: what the agent reads first after a restoration."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime

import pytest

from supervisors.enums import RecoveryAction, RestorationSource, TaskStatus
from supervisors.services.restoration import generate_restoration_context_message, restore_supervisor
from supervisors.services.validation import TaskFacts
from tests.factories import make_question

from .conftest import done, make_working_supervisor


def _big_case() -> dict:
    tasks = {}
    for i in range(500):
        status = TaskStatus.DONE if i % 5 == 0 else TaskStatus.RUNNING
        task = TaskFacts(uuid.UUID(int=i + 1), uuid.UUID(int=0), None, f"build module {i}", status, False)
        tasks[task.id] = task
    ids = list(tasks)
    questions = [
        make_question(f"Question number {i}: which option for component {i}?", choices=["a", "b", "c"])
        for i in range(20)
    ]
    return {
        "source": RestorationSource.DAEMON_RESTART,
        "restoration_count": 3,
        "previous_state": "waiting_for_user",
        "phase": "build",
        "progress": 62,
        "current_activity": "Reviewing the results of the module builds",
        "recovery_action": RecoveryAction.PROCEED,
        "questions": questions,
        "waiting_task_ids": [t for t in ids if tasks[t].status == TaskStatus.RUNNING],
        "finished_task_ids": [t for t in ids if tasks[t].status == TaskStatus.DONE],
        "spawned_task_ids": ids,
        "tasks": tasks,
        "last_activity": datetime(2026, 11, 24, 7, 0, tzinfo=UTC),
        "warnings": ["phase: 'plan' differs from the contract's phase 'build'"],
    }


def test_twenty_questions_and_five_hundred_tasks_stay_readable():
    case = _big_case()
    message = generate_restoration_context_message(**case)
    assert len(message) < 8000
    assert "restored after its daemon restarted" in message and "restored 3 times" in message
    assert "state 'waiting_for_user', last active at 2026-11-24T07:00:00+00:00" in message
    assert "Contract phase: build. Progress: 62%." in message
    assert "Questions re-delivered to the human (20)" in message
    assert "Question number 0: which option for component 0?" in message
    assert "choices: a | b | c" in message
    assert "and 10 more questions:" in message
    assert str(case["questions"][19]["id"]) in message  # every question stays identifiable
    assert "Tasks you are still waiting on (400):" in message
    assert "and 385 more (385 running)" in message
    assert "Tasks that finished while you were away; read their results (100):" in message
    assert "Recovery applied: Proceed." in message
    assert "phase: 'plan' differs" in message


def test_the_same_state_gives_the_same_message():
    case = _big_case()
    assert generate_restoration_context_message(**case) == generate_restoration_context_message(**copy.deepcopy(case))


@pytest.mark.django_db
def test_restoring_the_same_state_twice_gives_the_same_message(actor):
    supervisor, tasks = make_working_supervisor(tasks=3, pending=2, pending_questions=[make_question()])
    done(tasks[1])
    first = restore_supervisor(supervisor.contract_id, source="manual", actor=actor, dry_run=True)
    second = restore_supervisor(supervisor.contract_id, source="manual", actor=actor, dry_run=True)
    assert first.context.restoration_context_message == second.context.restoration_context_message
    message = first.context.restoration_context_message
    assert f"{tasks[0].id} 'task 0' (running)" in message
    assert f"{tasks[1].id} 'task 1' (done)" in message
    assert "Other tasks you spawned earlier: 1 (not waited on)." in message
    assert "Next: wait for the answers to the pending questions" in message


@pytest.mark.django_db
def test_checkpoint_and_fresh_start_are_explained(actor):
    supervisor, _ = make_working_supervisor()
    supervisor.conversation_history = "garbage"
    supervisor.save()
    result = restore_supervisor(supervisor.contract_id, source="task_reassignment", actor=actor)
    message = result.context.restoration_context_message
    assert "after its task was reassigned" in message
    assert "Recovery applied: StartFresh." in message
    assert "your conversation history was dropped" in message
    assert "conversation_history: Conversation history must be a JSON array" in message
