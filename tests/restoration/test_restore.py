"""restore_supervisor: the ten steps of DESIGN.md as a restored supervisor and an operator see them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from supervisors.enums import (
    ContractStatus,
    RecoveryAction,
    RestorationSource,
    SupervisorStatus,
    TaskStatus,
)
from supervisors.models import RestorationLog, SupervisorCheckpoint, SupervisorState, Task
from supervisors.services import restoration
from supervisors.services.actors import Actor
from supervisors.services.errors import Conflict, InvalidInput, NotFound
from supervisors.services.restoration import questions_redelivered, redeliver_pending_questions, restore_supervisor
from supervisors.services.restoration import write as restoration_write
from tests.factories import make_contract, make_daemon, make_question, make_supervisor, make_task

from .conftest import HISTORY, done, make_checkpoint, make_working_supervisor

pytestmark = pytest.mark.django_db


def row_snapshot(supervisor: SupervisorState) -> dict:
    """Every column of the row as the database has it now."""
    return SupervisorState.objects.filter(id=supervisor.id).values().get()


def test_valid_state_proceeds_and_finished_tasks_leave_the_waiting_list(actor):
    supervisor, tasks = make_working_supervisor(tasks=3, pending=2)
    done(tasks[0])

    result = restore_supervisor(
        supervisor.contract_id, source=RestorationSource.DAEMON_RESTART, actor=actor, reason="daemon crashed"
    )

    supervisor.refresh_from_db()
    assert result.recovery_action == RecoveryAction.PROCEED
    assert result.context.success is True
    assert result.context.previous_state == SupervisorStatus.WAITING_FOR_TASKS
    assert result.context.conversation_history == HISTORY
    assert result.context.waiting_task_ids == [tasks[1].id]
    assert result.finished_task_ids == [tasks[0].id]
    assert supervisor.pending_task_ids == [tasks[1].id]
    assert supervisor.spawned_task_ids == [t.id for t in tasks]
    assert supervisor.state == SupervisorStatus.WAITING_FOR_TASKS
    assert supervisor.restoration_count == 1 == result.context.restoration_count
    assert supervisor.restoration_source == RestorationSource.DAEMON_RESTART
    assert supervisor.last_restored_at is not None
    assert supervisor.conversation_history == HISTORY
    log = RestorationLog.objects.get()
    assert log == result.log
    assert (log.source, log.reason, log.actor_kind, log.actor_label) == (
        "daemon_restart",
        "daemon crashed",
        "command",
        "command:test",
    )
    assert (log.previous_state, log.recovery_action, log.success, log.restoration_count) == (
        "waiting_for_tasks",
        "Proceed",
        True,
        1,
    )
    assert log.finished_task_ids == [str(tasks[0].id)]
    assert log.supervisor_id == supervisor.id and log.contract_id == supervisor.contract_id


def test_pending_questions_are_redelivered_and_the_supervisor_waits_for_the_user(
    actor, django_capture_on_commit_callbacks
):
    question = make_question("Ship it?", choices=["ship", "wait"])
    supervisor, _ = make_working_supervisor(pending_questions=[question], state=SupervisorStatus.WAITING_FOR_USER)
    received = []

    def listener(sender, **kwargs):
        received.append(kwargs)

    questions_redelivered.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = restore_supervisor(supervisor.contract_id, source=RestorationSource.MANUAL, actor=actor)
    finally:
        questions_redelivered.disconnect(listener)

    supervisor.refresh_from_db()
    assert supervisor.state == SupervisorStatus.WAITING_FOR_USER
    assert result.context.pending_questions == [question]
    assert result.log.redelivered_question_ids == [question["id"]]
    assert received and received[0]["questions"] == [question]
    assert "Ship it?" in result.context.restoration_context_message
    assert "ship | wait" in result.context.restoration_context_message


def test_resumes_working_when_nothing_is_pending(actor):
    supervisor, tasks = make_working_supervisor(tasks=1, pending=1)
    done(tasks[0])
    restore_supervisor(supervisor.contract_id, source=RestorationSource.MANUAL, actor=actor)
    supervisor.refresh_from_db()
    assert supervisor.state == SupervisorStatus.WORKING
    assert supervisor.pending_task_ids == []


def test_invalid_state_falls_back_to_the_newest_checkpoint_that_validates(actor):
    supervisor, _tasks = make_working_supervisor(tasks=2, pending=1)
    good = make_checkpoint(supervisor, history=[{"role": "user", "content": "older"}], progress=30)
    make_checkpoint(supervisor, pending_task_ids=[uuid.uuid4()], history=[{"role": "user", "content": "bad"}])
    SupervisorState.objects.filter(id=supervisor.id).update(conversation_history={"not": "a list"})

    result = restore_supervisor(supervisor.contract_id, source=RestorationSource.DAEMON_RESTART, actor=actor)

    supervisor.refresh_from_db()
    assert result.recovery_action == RecoveryAction.USE_CHECKPOINT
    assert result.checkpoint_id == good.id
    assert supervisor.conversation_history == [{"role": "user", "content": "older"}]
    assert supervisor.progress == 30
    assert any(i.startswith("conversation_history:") for i in result.validation.issues)
    assert result.log.checkpoint_id == good.id
    assert result.log.issues == result.validation.issues


def test_without_a_valid_checkpoint_it_starts_fresh_keeping_what_is_still_true(actor):
    good_question = make_question("Still relevant?")
    supervisor, tasks = make_working_supervisor(
        tasks=2, pending=1, pending_questions=[good_question, {"id": "nope", "question": ""}]
    )
    make_checkpoint(supervisor, progress=10, pending_task_ids=[uuid.uuid4()])

    result = restore_supervisor(supervisor.contract_id, source=RestorationSource.MANUAL, actor=actor)

    supervisor.refresh_from_db()
    assert result.recovery_action == RecoveryAction.START_FRESH
    assert result.checkpoint_id is None
    assert supervisor.conversation_history == []
    assert supervisor.spawned_task_ids == [t.id for t in tasks]
    assert supervisor.pending_task_ids == [tasks[0].id]
    assert supervisor.pending_questions == [good_question]
    assert supervisor.state == SupervisorStatus.WAITING_FOR_USER
    assert any("none of the 1 checkpoints validates" in w for w in result.context.warnings)
    assert result.log.recovery_action == RecoveryAction.START_FRESH


def test_archived_contract_blocks_the_supervisor_and_changes_nothing_else(actor):
    supervisor, _ = make_working_supervisor()
    supervisor.contract.status = ContractStatus.ARCHIVED
    supervisor.contract.save()
    before = row_snapshot(supervisor)

    result = restore_supervisor(supervisor.contract_id, source=RestorationSource.DAEMON_RESTART, actor=actor)

    after = row_snapshot(supervisor)
    assert result.context.success is False
    assert result.recovery_action == RecoveryAction.MANUAL_INTERVENTION
    assert after["state"] == SupervisorStatus.BLOCKED
    assert f"contract {supervisor.contract_id} is archived" in after["error_message"]
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"state", "error_message", "updated_at"}
    log = RestorationLog.objects.get()
    assert (log.success, log.recovery_action) == (False, RecoveryAction.MANUAL_INTERVENTION)
    assert log.issues == result.validation.issues


def test_a_completed_supervisor_is_refused_and_the_refusal_logged(actor):
    supervisor, _ = make_working_supervisor(state=SupervisorStatus.COMPLETED, pending=0)
    before = row_snapshot(supervisor)
    with pytest.raises(Conflict) as exc:
        restore_supervisor(supervisor.contract_id, source=RestorationSource.MANUAL, actor=actor)
    assert exc.value.code == "supervisor_completed"
    assert row_snapshot(supervisor) == before
    log = RestorationLog.objects.get()
    assert log.success is False and "completed" in log.issues[0]


def test_no_saved_state_starts_fresh_with_a_warning_and_a_supervisor_task(actor):
    contract = make_contract(phase="build")
    result = restore_supervisor(contract.id, source=RestorationSource.DAEMON_RESTART, actor=actor)
    state = SupervisorState.objects.get(contract=contract)
    assert state.state == SupervisorStatus.INITIALIZING
    assert state.phase == "build"
    assert state.task.is_supervisor and state.task.contract_id == contract.id
    assert result.recovery_action == RecoveryAction.START_FRESH
    assert any("no saved supervisor state" in w for w in result.context.warnings)
    assert any("created supervisor task" in w for w in result.context.warnings)
    assert RestorationLog.objects.get().supervisor_id == state.id


def test_no_saved_state_reuses_the_existing_supervisor_task(actor):
    contract = make_contract()
    task = make_task(contract, is_supervisor=True)
    result = restore_supervisor(contract.id, source=RestorationSource.DAEMON_RESTART, actor=actor)
    assert SupervisorState.objects.get(contract=contract).task_id == task.id
    assert not any("created supervisor task" in w for w in result.context.warnings)


def test_unknown_contract_is_not_found(actor):
    with pytest.raises(NotFound) as exc:
        restore_supervisor(uuid.uuid4(), source=RestorationSource.MANUAL, actor=actor)
    assert "contract_id" in exc.value.fields
    assert not SupervisorState.objects.exists() and not RestorationLog.objects.exists()


def test_unknown_source_is_refused(actor):
    supervisor, _ = make_working_supervisor()
    with pytest.raises(InvalidInput) as exc:
        restore_supervisor(supervisor.contract_id, source="reboot", actor=actor)
    assert "source" in exc.value.fields


def test_a_failure_in_the_middle_leaves_row_checkpoints_and_log_as_before(actor, monkeypatch):
    """Everything is written (log, state row), then the transaction fails before its commit: nothing may remain."""
    question = make_question()
    supervisor, _ = make_working_supervisor(pending_questions=[question], state=SupervisorStatus.WAITING_FOR_USER)
    make_checkpoint(supervisor)
    SupervisorState.objects.filter(id=supervisor.id).update(progress=0, conversation_history="broken")
    before = row_snapshot(supervisor)
    checkpoints_before = list(SupervisorCheckpoint.objects.values())
    logs_before = RestorationLog.objects.count()
    real_write = restoration_write.update_supervisor_rows

    def write_then_fail(changes):
        real_write(changes)
        assert row_snapshot(supervisor)["restoration_count"] == 1  # the row was written...
        assert RestorationLog.objects.count() == logs_before + 1  # ...and the log
        raise DatabaseError("injected failure")

    monkeypatch.setattr(restoration_write, "update_supervisor_rows", write_then_fail)
    with pytest.raises(DatabaseError):
        restore_supervisor(supervisor.contract_id, source=RestorationSource.MANUAL, actor=actor)

    assert row_snapshot(supervisor) == before  # ...and both rolled back with everything else
    assert list(SupervisorCheckpoint.objects.values()) == checkpoints_before
    assert RestorationLog.objects.count() == logs_before


def test_dry_run_reports_the_plan_and_writes_nothing(actor):
    supervisor, _ = make_working_supervisor()
    SupervisorState.objects.filter(id=supervisor.id).update(conversation_history=42)
    before = row_snapshot(supervisor)
    result = restore_supervisor(supervisor.contract_id, source=RestorationSource.MANUAL, actor=actor, dry_run=True)
    assert result.recovery_action == RecoveryAction.START_FRESH
    assert result.log is None and result.dry_run
    assert row_snapshot(supervisor) == before
    assert not RestorationLog.objects.exists()


def test_restore_from_a_chosen_checkpoint(actor):
    supervisor, _ = make_working_supervisor()
    older = make_checkpoint(supervisor, progress=5, history=[{"role": "user", "content": "v1"}])
    make_checkpoint(supervisor, progress=50)
    result = restore_supervisor(
        supervisor.contract_id,
        source=RestorationSource.MANUAL,
        actor=Actor.staff(get_user_model().objects.create_user("ops")),
        checkpoint_id=older.id,
    )
    supervisor.refresh_from_db()
    assert (result.recovery_action, result.checkpoint_id) == (RecoveryAction.USE_CHECKPOINT, older.id)
    assert supervisor.progress == 5
    assert supervisor.conversation_history == [{"role": "user", "content": "v1"}]
    assert result.log.actor_user.username == "ops"


def test_a_chosen_checkpoint_of_another_supervisor_or_invalid_one_is_refused(actor):
    supervisor, _ = make_working_supervisor(name="A")
    other, _ = make_working_supervisor(name="B")
    foreign = make_checkpoint(other)
    invalid = make_checkpoint(supervisor, pending_task_ids=[uuid.uuid4()])
    before = row_snapshot(supervisor)
    with pytest.raises(NotFound) as exc:
        restore_supervisor(supervisor.contract_id, source="manual", actor=actor, checkpoint_id=foreign.id)
    assert "checkpoint_id" in exc.value.fields
    with pytest.raises(InvalidInput) as exc:
        restore_supervisor(supervisor.contract_id, source="manual", actor=actor, checkpoint_id=invalid.id)
    assert "never spawned" in exc.value.fields["checkpoint_id"][0]
    assert row_snapshot(supervisor) == before
    assert not RestorationLog.objects.exists()


def test_force_start_fresh_on_a_valid_state(actor):
    supervisor, _ = make_working_supervisor()
    result = restore_supervisor(
        supervisor.contract_id, source="manual", actor=actor, force_action=RecoveryAction.START_FRESH
    )
    supervisor.refresh_from_db()
    assert result.recovery_action == RecoveryAction.START_FRESH
    assert supervisor.conversation_history == []


def test_forcing_past_a_manual_intervention_is_refused(actor):
    supervisor, _ = make_working_supervisor()
    supervisor.contract.status = ContractStatus.ARCHIVED
    supervisor.contract.save()
    with pytest.raises(Conflict):
        restore_supervisor(
            supervisor.contract_id, source="manual", actor=actor, force_action=RecoveryAction.START_FRESH
        )
    assert SupervisorState.objects.get(id=supervisor.id).state == SupervisorStatus.WAITING_FOR_TASKS


def test_takeover_moves_the_supervisor_task_when_its_daemon_is_gone(actor):
    old = make_daemon("old", status="connected", last_heartbeat_at=timezone.now() - timedelta(hours=1))
    new = make_daemon("new", status="connected", last_heartbeat_at=timezone.now())
    supervisor, _ = make_working_supervisor()
    Task.objects.filter(id=supervisor.task_id).update(daemon=old)
    result = restore_supervisor(
        supervisor.contract_id,
        source=RestorationSource.TASK_REASSIGNMENT,
        actor=Actor.for_daemon(new),
        assign_to_daemon=new,
    )
    assert Task.objects.get(id=supervisor.task_id).daemon_id == new.id
    assert result.log.actor_daemon_id == new.id
    assert any("moved from daemon old to daemon new" in w for w in result.context.warnings)


def test_takeover_from_a_live_daemon_is_refused_and_changes_nothing(actor):
    alive = make_daemon("alive", status="connected", last_heartbeat_at=timezone.now())
    other = make_daemon("other", status="connected", last_heartbeat_at=timezone.now())
    supervisor, _ = make_working_supervisor()
    Task.objects.filter(id=supervisor.task_id).update(daemon=alive)
    before = row_snapshot(supervisor)
    with pytest.raises(Conflict) as exc:
        restore_supervisor(
            supervisor.contract_id, source="task_reassignment", actor=Actor.for_daemon(other), assign_to_daemon=other
        )
    assert exc.value.code == "daemon_alive"
    assert Task.objects.get(id=supervisor.task_id).daemon_id == alive.id
    assert row_snapshot(supervisor) == before
    assert not RestorationLog.objects.exists()


def test_stale_supervisor_is_restored_as_if_interrupted(actor):
    supervisor, _ = make_working_supervisor()
    SupervisorState.objects.filter(id=supervisor.id).update(last_activity=timezone.now() - timedelta(hours=2))
    result = restore_supervisor(supervisor.contract_id, source="manual", actor=actor)
    assert any("stale" in w for w in result.context.warnings)
    assert "treated as interrupted" in result.context.restoration_context_message
    supervisor.refresh_from_db()
    assert timezone.now() - supervisor.last_activity < timedelta(minutes=1)


def test_restoration_count_grows_with_each_restoration(actor):
    supervisor, _ = make_working_supervisor()
    for expected in (1, 2, 3):
        result = restore_supervisor(supervisor.contract_id, source="manual", actor=actor)
        assert result.context.restoration_count == expected
    assert "restored 3 times" in result.context.restoration_context_message
    assert RestorationLog.objects.count() == 3


def test_context_as_dict_is_the_seeds_camel_case(actor):
    supervisor, tasks = make_working_supervisor()
    data = restore_supervisor(supervisor.contract_id, source="manual", actor=actor).context.as_dict()
    assert set(data) == {
        "success",
        "previousState",
        "conversationHistory",
        "pendingQuestions",
        "waitingTaskIds",
        "spawnedTaskIds",
        "pendingAnswers",
        "restorationCount",
        "restorationContextMessage",
        "warnings",
    }
    assert data["waitingTaskIds"] == [str(tasks[0].id)]


def test_redeliver_pending_questions_returns_the_answerable_ones(actor, django_capture_on_commit_callbacks):
    good = make_question("Which database?")
    supervisor = make_supervisor(pending_questions=[good], state=SupervisorStatus.WAITING_FOR_USER)
    SupervisorState.objects.filter(id=supervisor.id).update(pending_questions=[good, {"question": "no id"}])
    received = []
    questions_redelivered.connect(lambda sender, **kw: received.append(kw), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            questions = redeliver_pending_questions(supervisor.contract_id, actor=actor)
    finally:
        questions_redelivered.disconnect(dispatch_uid="t")
    assert questions == [good]
    assert received[0]["contract_id"] == supervisor.contract_id and received[0]["actor"] == str(actor)
    with pytest.raises(NotFound):
        redeliver_pending_questions(uuid.uuid4(), actor=actor)


def test_one_restoration_costs_a_bounded_number_of_queries(actor):
    supervisor, tasks = make_working_supervisor(tasks=30, pending=10)
    for task in tasks[:5]:
        done(task)
    with CaptureQueriesContext(connection) as ctx:
        restore_supervisor(supervisor.contract_id, source="manual", actor=actor)
    assert len(ctx.captured_queries) <= 8, [q["sql"] for q in ctx.captured_queries]


def test_pending_task_that_failed_counts_as_finished(actor):
    supervisor, tasks = make_working_supervisor(tasks=2, pending=2)
    Task.objects.filter(id=tasks[1].id).update(status=TaskStatus.FAILED)
    result = restore_supervisor(supervisor.contract_id, source="manual", actor=actor)
    assert result.finished_task_ids == [tasks[1].id]
    assert "finished while you were away" in result.context.restoration_context_message


def test_validate_checkpoint_tells_which_checkpoints_can_be_restored():
    supervisor, _ = make_working_supervisor()
    good = make_checkpoint(supervisor)
    bad = make_checkpoint(supervisor, pending_task_ids=[ghost := uuid.uuid4()], history={"x": 1})
    assert restoration.validate_checkpoint(good).is_valid
    result = restoration.validate_checkpoint(bad)
    assert not result.is_valid and result.recovery_action == RecoveryAction.USE_CHECKPOINT
    assert any(str(ghost) in issue for issue in result.issues)
    assert any(issue.startswith("conversation_history:") for issue in result.issues)


def test_a_takeover_records_the_daemon_it_moved_away_from(actor):
    gone = make_daemon("gone", status="disconnected", last_heartbeat_at=timezone.now() - timedelta(hours=1))
    new = make_daemon("new")
    supervisor, _ = make_working_supervisor()
    Task.objects.filter(id=supervisor.task_id).update(daemon=gone)
    result = restore_supervisor(
        supervisor.contract_id, source=RestorationSource.TASK_REASSIGNMENT, actor=actor, assign_to_daemon=new
    )
    assert result.previous_daemon_id == gone.id
    log = RestorationLog.objects.get()
    assert log.previous_daemon_id == gone.id and log.outcome == "restored"
    assert Task.objects.get(id=supervisor.task_id).daemon_id == new.id
