"""validate_supervisor_state follows DESIGN.md's decision table, and names what is wrong."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from supervisors.enums import ContractStatus, RecoveryAction, SupervisorStatus
from supervisors.models import SupervisorState
from supervisors.selectors import is_stale, stale_supervisors
from supervisors.services.validation import conversation_checks, validate_spawned_tasks, validate_supervisor_state
from tests.factories import make_contract, make_question, make_task

from .conftest import make_working_supervisor

pytestmark = pytest.mark.django_db


def test_a_consistent_state_is_valid():
    supervisor, _ = make_working_supervisor(pending_questions=[make_question()])
    result = validate_supervisor_state(supervisor)
    assert (result.is_valid, result.issues, result.recovery_action, result.warnings) == (
        True,
        [],
        RecoveryAction.PROCEED,
        [],
    )
    assert validate_spawned_tasks(supervisor) == []
    assert result.as_dict() == {"is_valid": True, "issues": [], "recovery_action": "Proceed", "warnings": []}
    assert result.as_dict(camel=True)["recoveryAction"] == "Proceed"


def _checkpoint_cases():
    """(how to break the in-memory row, text the issue must contain)."""
    question = make_question()
    return [
        ("state", "sleeping", "state: 'sleeping' is not a known supervisor state"),
        ("progress", 150, "progress: 150 is outside 0..100"),
        ("progress", -1, "progress: -1 is outside 0..100"),
        ("conversation_history", {"role": "user"}, "conversation_history: Conversation history must be a JSON array"),
        ("conversation_history", [{"content": "no role"}], "message 0 must be an object with a non-empty string"),
        ("pending_questions", [{"id": "x", "question": "q?"}], "pending_questions[0]: malformed question: id:"),
        ("pending_questions", [question, dict(question)], f"question id {question['id']} appears more than once"),
        ("pending_questions", "what?", "pending_questions: expected a JSON array of questions, got str"),
    ]


@pytest.mark.parametrize(("field", "value", "expected"), _checkpoint_cases())
def test_a_broken_field_calls_for_a_checkpoint_and_is_named(field, value, expected):
    supervisor, _ = make_working_supervisor()
    setattr(supervisor, field, value)
    result = validate_supervisor_state(supervisor)
    assert result.recovery_action == RecoveryAction.USE_CHECKPOINT
    assert not result.is_valid
    assert any(expected in issue for issue in result.issues), result.issues


def test_waiting_states_need_something_to_wait_for():
    supervisor, _ = make_working_supervisor(pending=0, state=SupervisorStatus.WAITING_FOR_TASKS)
    assert validate_supervisor_state(supervisor).issues == [
        "state: 'waiting_for_tasks' with nothing pending (pending_task_ids is empty)"
    ]
    supervisor.state = SupervisorStatus.WAITING_FOR_USER
    assert validate_supervisor_state(supervisor).issues == [
        "state: 'waiting_for_user' with no pending question (pending_questions is empty)"
    ]


def test_task_findings_name_the_tasks():
    supervisor, tasks = make_working_supervisor(tasks=2, pending=1)
    ghost = uuid.uuid4()
    foreign = make_task(make_contract(name="other"))
    never = tasks[1].id
    supervisor.spawned_task_ids = [tasks[0].id, ghost, foreign.id]
    supervisor.pending_task_ids = [tasks[0].id, never]
    issues = validate_spawned_tasks(supervisor)
    assert issues == [
        f"pending_task_ids: 1 task was never spawned (not in spawned_task_ids): {never}",
        f"spawned_task_ids: 1 task does not exist: {ghost}",
        f"spawned_task_ids: 1 task belongs to another contract ({foreign.contract_id}), "
        f"not {supervisor.contract_id}: {foreign.id}",
    ]
    result = validate_supervisor_state(supervisor)
    assert result.recovery_action == RecoveryAction.USE_CHECKPOINT
    assert result.issues == issues


def test_hundreds_of_missing_tasks_make_one_readable_issue():
    supervisor, _ = make_working_supervisor(tasks=1, pending=0)
    supervisor.spawned_task_ids = [uuid.uuid4() for _ in range(300)]
    (issue,) = validate_spawned_tasks(supervisor)
    assert issue.startswith("spawned_task_ids: 300 tasks do not exist: ")
    assert issue.endswith("(and 290 more)")


@pytest.mark.parametrize("status", [ContractStatus.ARCHIVED, ContractStatus.COMPLETED])
def test_a_closed_contract_needs_manual_intervention(status):
    supervisor, _ = make_working_supervisor()
    supervisor.contract.status = status
    supervisor.contract.save()
    supervisor.state = "sleeping"  # a checkpoint-level issue does not lower the action
    result = validate_supervisor_state(supervisor)
    assert result.recovery_action == RecoveryAction.MANUAL_INTERVENTION
    assert result.issues[0].startswith(f"contract.status: contract {supervisor.contract_id} is {status}")


def test_a_completed_supervisor_of_a_completed_contract_is_consistent():
    supervisor, _ = make_working_supervisor(pending=0, state=SupervisorStatus.COMPLETED)
    supervisor.contract.status = ContractStatus.COMPLETED
    supervisor.contract.save()
    assert validate_supervisor_state(supervisor).is_valid


def test_a_missing_supervisor_task_needs_manual_intervention():
    supervisor, _ = make_working_supervisor()
    supervisor.task_id = missing = uuid.uuid4()
    result = validate_supervisor_state(supervisor)
    assert result.recovery_action == RecoveryAction.MANUAL_INTERVENTION
    assert f"task_id: supervisor task {missing} does not exist" in result.issues


def test_phase_mismatch_and_missing_error_message_are_warnings_only():
    supervisor, _ = make_working_supervisor(pending=0, state=SupervisorStatus.FAILED, phase="review")
    result = validate_supervisor_state(supervisor)
    assert result.is_valid and result.recovery_action == RecoveryAction.PROCEED
    assert result.warnings == [
        "phase: 'review' differs from the contract's phase 'plan'",
        "error_message: state 'failed' has no error message",
    ]


def test_validation_costs_two_queries_and_changes_nothing():
    supervisor, _ = make_working_supervisor(tasks=50)
    supervisor = SupervisorState.objects.select_related("contract").get(id=supervisor.id)
    before = SupervisorState.objects.filter(id=supervisor.id).values().get()
    with CaptureQueriesContext(connection) as ctx:
        validate_supervisor_state(supervisor)
    assert len(ctx.captured_queries) == 1  # the tasks, found through the contract
    assert SupervisorState.objects.filter(id=supervisor.id).values().get() == before


def test_stale_means_silent_in_an_active_state():
    old = timezone.now() - timedelta(hours=1)
    stale, _ = make_working_supervisor(name="stale", state=SupervisorStatus.WORKING, pending=0)
    waiting_human, _ = make_working_supervisor(
        name="human", state=SupervisorStatus.WAITING_FOR_USER, pending_questions=[make_question()]
    )
    fresh, _ = make_working_supervisor(name="fresh", state=SupervisorStatus.WORKING, pending=0)
    SupervisorState.objects.filter(id__in=[stale.id, waiting_human.id]).update(last_activity=old)
    assert list(stale_supervisors()) == [SupervisorState.objects.get(id=stale.id)]
    for supervisor in (stale, waiting_human, fresh):
        supervisor.refresh_from_db()
    assert is_stale(stale) and not is_stale(waiting_human) and not is_stale(fresh)
    assert not is_stale(stale, stale_after=timedelta(hours=2))
    assert list(stale_supervisors(stale_after=timedelta(hours=2))) == []


def test_stale_threshold_comes_from_settings(settings):
    supervisor, _ = make_working_supervisor(state=SupervisorStatus.WORKING, pending=0)
    SupervisorState.objects.filter(id=supervisor.id).update(last_activity=timezone.now() - timedelta(seconds=100))
    supervisor.refresh_from_db()
    settings.SUPERVISOR_STALE_AFTER_SECONDS = 300
    assert not is_stale(supervisor)
    settings.SUPERVISOR_STALE_AFTER_SECONDS = 60
    assert is_stale(supervisor)


@pytest.mark.parametrize(
    "history",
    [
        {"role": "user"},
        "lost",
        42,
        4.5,
        True,
        [],
        [{"role": "user", "content": "hi"}],
        [{"role": "user"}, "not a message"],
        [{"content": "no role"}],
        [{"role": "user"}, {"role": ""}],
        [{"role": 5}],
        [{"role": "user"}, {"role": "assistant"}, [1, 2]],
        # PostgreSQL's JSON path test (lax mode unwraps lists) must not hide these:
        [{"role": "user"}, {"role": ["assistant"]}],
        [{"role": "user"}, {"role": [""]}],
        [{"role": None}],
        [{"role": "user"}, [{"role": "user"}]],
        [{"role": "user"}, {"role": {"name": "x"}}],
    ],
)
def test_the_database_checks_a_conversation_exactly_as_python_does(history):
    """Batches validate conversations in SQL (never loading them): same findings, same words."""
    supervisor, _ = make_working_supervisor()
    SupervisorState.objects.filter(id=supervisor.id).update(conversation_history=history)
    loaded = SupervisorState.objects.select_related("contract").get(id=supervisor.id)
    checked = conversation_checks(
        SupervisorState.objects.select_related("contract").filter(id=supervisor.id), "conversation_history"
    ).get()
    assert "conversation_history" not in checked.__dict__
    assert validate_supervisor_state(checked).issues == validate_supervisor_state(loaded).issues
    assert "conversation_history" not in checked.__dict__  # validating did not load it either


def test_a_stored_question_asked_on_30_february_is_an_issue_not_a_crash():
    """makima writes pending questions itself: an impossible time is reported like any other bad field."""
    supervisor, _ = make_working_supervisor(pending_questions=[make_question(askedAt="2026-02-30T12:00:00Z")])
    result = validate_supervisor_state(supervisor)
    assert result.is_valid is False
    assert any("askedAt" in issue for issue in result.issues), result.issues
