"""Full save, partial update, spawned tasks, phase: what a daemon sees after each call."""

from __future__ import annotations

import uuid

import pytest

from supervisors.enums import SavePoint, SupervisorStatus
from supervisors.models import SupervisorCheckpoint, SupervisorState
from supervisors.services.errors import BrokenReference, InvalidInput, NotFound, PreconditionFailed
from supervisors.services.state import (
    add_supervisor_spawned_task,
    get_supervisor_state_for_restoration,
    mark_supervisor_restored,
    save_state_on_phase_change,
    save_state_on_task_spawn,
    save_supervisor_state_full,
    state_version,
    update_supervisor_detailed_state,
    update_supervisor_phase,
)
from tests.factories import make_contract, make_question, make_task

pytestmark = pytest.mark.django_db

HISTORY = [{"role": "user", "content": "Build it"}, {"role": "assistant", "content": "On it"}]


def full_save(contract, task, **overrides):
    values = dict(
        contract_id=contract.id,
        task_id=task.id,
        phase="plan",
        state="working",
        conversation_history=HISTORY,
        pending_task_ids=[],
        spawned_task_ids=[],
        pending_questions=[],
        current_activity="planning",
        progress=10,
    )
    values.update(overrides)
    return save_supervisor_state_full(**values)


def test_full_save_creates_then_updates_one_row_per_contract():
    contract = make_contract()
    own = make_task(contract, name="supervisor", is_supervisor=True)
    child = make_task(contract, name="child")

    created = full_save(contract, own)
    updated = full_save(contract, own, spawned_task_ids=[str(child.id)], pending_task_ids=[child.id], progress=40)

    assert created.pk == updated.pk
    row = SupervisorState.objects.get(contract=contract)
    assert row.conversation_history == HISTORY
    assert row.spawned_task_ids == [child.id]
    assert row.pending_task_ids == [child.id]
    assert row.progress == 40
    assert list(row.checkpoints.values_list("reason", flat=True)) == [SavePoint.STATE_SAVED] * 2


def test_full_save_keeps_restoration_columns(supervisor):
    mark_supervisor_restored(supervisor.contract_id, "manual")
    full_save(supervisor.contract, supervisor.task)
    row = SupervisorState.objects.get(pk=supervisor.pk)
    assert row.restoration_count == 1
    assert row.restoration_source == "manual"


def test_full_save_for_unknown_contract_is_not_found(db):
    other = make_contract()
    task = make_task(other)
    with pytest.raises(NotFound):
        full_save(type("C", (), {"id": uuid.uuid4()})(), task)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"state": "sleeping"}, "state"),
        ({"progress": 101}, "progress"),
        ({"progress": -1}, "progress"),
        ({"phase": ""}, "phase"),
        ({"conversation_history": {"role": "user"}}, "conversation_history"),
        ({"conversation_history": [{"content": "no role"}]}, "conversation_history"),
        ({"pending_questions": [{"id": "x", "question": ""}]}, "pending_questions"),
        ({"spawned_task_ids": ["not-a-uuid"]}, "spawned_task_ids"),
        ({"current_activity": "nul\x00here"}, "current_activity"),
        ({"phase": "a\x00b"}, "phase"),
        ({"phase": "a\ud800b"}, "phase"),
        ({"error_message": "\udfff"}, "error_message"),
        ({"conversation_history": [{"role": "user", "content": [{"text": "\ud800"}]}]}, "conversation_history"),
        ({"conversation_history": [{"role": "user", "\udc00": 1}]}, "conversation_history"),
        ({"conversation_history": [{"role": "user"}] * 50_001}, "conversation_history"),
    ],
)
def test_full_save_refuses_bad_input_and_writes_nothing(supervisor, overrides, field):
    before = SupervisorState.objects.get(pk=supervisor.pk)
    with pytest.raises(InvalidInput) as caught:
        full_save(supervisor.contract, supervisor.task, **overrides)
    assert field in caught.value.fields
    after = SupervisorState.objects.get(pk=supervisor.pk)
    assert (after.updated_at, after.state, after.progress) == (before.updated_at, before.state, before.progress)
    assert not SupervisorCheckpoint.objects.filter(supervisor=supervisor).exists()


def test_a_spawned_task_that_does_not_exist_is_a_broken_reference_and_writes_nothing(supervisor):
    before = SupervisorState.objects.get(pk=supervisor.pk)
    with pytest.raises(BrokenReference) as caught:
        full_save(supervisor.contract, supervisor.task, spawned_task_ids=[str(uuid.uuid4())])
    assert "spawned_task_ids" in caught.value.fields and caught.value.http_status == 409
    assert SupervisorState.objects.get(pk=supervisor.pk).updated_at == before.updated_at


def test_pending_task_must_have_been_spawned(supervisor, tasks):
    with pytest.raises(BrokenReference) as caught:
        full_save(supervisor.contract, supervisor.task, spawned_task_ids=[tasks[0].id], pending_task_ids=[tasks[1].id])
    assert "pending_task_ids" in caught.value.fields


def test_task_of_another_contract_is_refused(supervisor, foreign_task):
    with pytest.raises(BrokenReference) as caught:
        full_save(supervisor.contract, supervisor.task, spawned_task_ids=[foreign_task.id])
    assert "another contract" in " ".join(caught.value.fields["spawned_task_ids"])
    with pytest.raises(BrokenReference) as caught:
        full_save(supervisor.contract, foreign_task)
    assert "task_id" in caught.value.fields


def test_expected_version_detects_a_concurrent_change(supervisor):
    seen = state_version(SupervisorState.objects.get(pk=supervisor.pk))
    update_supervisor_detailed_state(supervisor.contract_id, {"progress": 20}, expected_version=seen)
    with pytest.raises(PreconditionFailed):
        update_supervisor_detailed_state(supervisor.contract_id, {"progress": 30}, expected_version=seen)
    with pytest.raises(PreconditionFailed):
        full_save(supervisor.contract, supervisor.task, expected_version=seen)
    assert SupervisorState.objects.get(pk=supervisor.pk).progress == 20


def test_partial_update_changes_only_named_fields(supervisor, tasks):
    full_save(supervisor.contract, supervisor.task, spawned_task_ids=[tasks[0].id])
    result = update_supervisor_detailed_state(
        supervisor.contract_id, {"state": "waiting_for_tasks", "pending_task_ids": [str(tasks[0].id)]}
    )
    row = SupervisorState.objects.get(pk=supervisor.pk)
    assert result.state == row.state == SupervisorStatus.WAITING_FOR_TASKS
    assert row.pending_task_ids == [tasks[0].id]
    assert row.conversation_history == HISTORY
    assert row.current_activity == "planning"


def test_partial_update_refuses_unknown_fields_and_bad_values(supervisor):
    with pytest.raises(InvalidInput) as caught:
        update_supervisor_detailed_state(supervisor.contract_id, {"restoration_count": 9})
    assert "restoration_count" in caught.value.fields
    with pytest.raises(BrokenReference) as caught:
        update_supervisor_detailed_state(supervisor.contract_id, {"pending_task_ids": [str(uuid.uuid4())]})
    assert "pending_task_ids" in caught.value.fields


def test_unknown_contract_is_not_found(db):
    with pytest.raises(NotFound):
        update_supervisor_detailed_state(uuid.uuid4(), {"progress": 5})
    with pytest.raises(InvalidInput):
        update_supervisor_detailed_state("not-a-uuid", {"progress": 5})


def test_spawned_task_is_recorded_once_and_waited_on(supervisor, tasks):
    add_supervisor_spawned_task(supervisor.contract_id, tasks[0].id)
    add_supervisor_spawned_task(supervisor.contract_id, tasks[0].id)
    save_state_on_task_spawn(supervisor.contract_id, str(tasks[1].id), wait=False)
    row = SupervisorState.objects.get(pk=supervisor.pk)
    assert row.spawned_task_ids == [tasks[0].id, tasks[1].id]
    assert row.pending_task_ids == [tasks[0].id]
    assert row.checkpoints.filter(reason=SavePoint.TASK_SPAWNED).count() == 3


def test_spawned_task_must_be_a_task_of_the_contract(supervisor, foreign_task):
    with pytest.raises(BrokenReference) as caught:
        add_supervisor_spawned_task(supervisor.contract_id, foreign_task.id)
    assert "task_id" in caught.value.fields
    with pytest.raises(BrokenReference):
        add_supervisor_spawned_task(supervisor.contract_id, uuid.uuid4())
    with pytest.raises(BrokenReference):
        add_supervisor_spawned_task(supervisor.contract_id, supervisor.task_id)
    assert SupervisorState.objects.get(pk=supervisor.pk).spawned_task_ids == []


def test_phase_change_is_saved_with_a_checkpoint(supervisor):
    update_supervisor_phase(supervisor.contract_id, "execute")
    save_state_on_phase_change(supervisor.contract_id, "review")
    assert SupervisorState.objects.get(pk=supervisor.pk).phase == "review"
    assert supervisor.checkpoints.filter(reason=SavePoint.PHASE_CHANGED).count() == 2
    with pytest.raises(InvalidInput):
        update_supervisor_phase(supervisor.contract_id, "x" * 51)


def test_mark_restored_counts_and_state_for_restoration_loads_everything(supervisor):
    full_save(supervisor.contract, supervisor.task, pending_questions=[make_question()], state="waiting_for_user")
    mark_supervisor_restored(supervisor.contract_id, "daemon_restart")
    restored = mark_supervisor_restored(supervisor.contract_id, "task_reassignment")
    assert restored.restoration_count == 2
    assert restored.restoration_source == "task_reassignment"
    assert restored.last_restored_at is not None
    with pytest.raises(InvalidInput):
        mark_supervisor_restored(supervisor.contract_id, "whim")
    loaded = get_supervisor_state_for_restoration(supervisor.contract_id, lock=False)
    assert loaded.conversation_history == HISTORY
    assert get_supervisor_state_for_restoration(uuid.uuid4(), lock=False) is None
