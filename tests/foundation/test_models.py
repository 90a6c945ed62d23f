"""Model validation refuses what makima's table cannot mean, and the database agrees."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from supervisors.enums import TERMINAL_TASK_STATUSES, RecoveryAction, SupervisorStatus, TaskStatus
from supervisors.models import SupervisorState
from tests.factories import make_contract, make_question, make_supervisor, make_task

pytestmark = pytest.mark.django_db


def errors_of(supervisor: SupervisorState) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as excinfo:
        supervisor.full_clean()
    return excinfo.value.message_dict


def test_a_well_formed_supervisor_validates():
    supervisor = make_supervisor(state=SupervisorStatus.WORKING, progress=40)
    task = make_task(supervisor.contract)
    supervisor.spawned_task_ids = [task.id]
    supervisor.pending_task_ids = [task.id]
    supervisor.pending_questions = [make_question()]
    supervisor.conversation_history = [{"role": "user", "content": "go"}]
    supervisor.full_clean()


def test_unknown_state_is_refused():
    supervisor = make_supervisor()
    supervisor.state = "sleeping"
    assert "state" in errors_of(supervisor)


@pytest.mark.parametrize("progress", [-1, 101])
def test_progress_outside_0_to_100_is_refused_by_the_model(progress):
    supervisor = make_supervisor()
    supervisor.progress = progress
    assert "progress" in errors_of(supervisor)


@pytest.mark.parametrize("progress", [-1, 101])
def test_progress_outside_0_to_100_is_refused_by_the_database(progress):
    supervisor = make_supervisor()
    with pytest.raises(IntegrityError), transaction.atomic():
        SupervisorState.objects.filter(pk=supervisor.pk).update(progress=progress)
    supervisor.refresh_from_db()
    assert supervisor.progress == 0


@pytest.mark.parametrize(
    ("question", "field"),
    [
        (make_question(question="  "), "question"),
        (make_question(questionType="urgent"), "questionType"),
        (make_question(choices=["yes", 2]), "choices"),
        (make_question(id="not-a-uuid"), "id"),
        (make_question(askedAt="yesterday"), "askedAt"),
    ],
)
def test_malformed_pending_question_is_refused(question, field):
    supervisor = make_supervisor()
    supervisor.pending_questions = [question]
    message = " ".join(errors_of(supervisor)["pending_questions"])
    assert field in message or "question" in message


def test_duplicate_pending_question_ids_are_refused():
    supervisor = make_supervisor()
    question = make_question()
    supervisor.pending_questions = [question, dict(question, question="again")]
    assert "more than once" in " ".join(errors_of(supervisor)["pending_questions"])


def test_conversation_history_must_be_a_list_of_messages():
    supervisor = make_supervisor()
    supervisor.conversation_history = {"role": "user"}
    assert "conversation_history" in errors_of(supervisor)
    supervisor.conversation_history = [{"content": "no role"}]
    assert "conversation_history" in errors_of(supervisor)


def test_pending_task_must_have_been_spawned():
    supervisor = make_supervisor()
    supervisor.pending_task_ids = [uuid.uuid4()]
    assert "pending_task_ids" in errors_of(supervisor)


def test_uuid_lists_refuse_what_is_not_a_uuid():
    supervisor = make_supervisor()
    supervisor.spawned_task_ids = ["nope"]
    with pytest.raises(ValidationError, match="not a valid UUID"):
        supervisor.save()


def test_uuid_lists_round_trip_through_the_database():
    contract = make_contract()
    ids = [make_task(contract).id for _ in range(3)]
    supervisor = make_supervisor(contract, spawned_task_ids=[str(i) for i in ids], pending_task_ids=ids[:1])
    supervisor.refresh_from_db()
    assert supervisor.spawned_task_ids == ids
    assert supervisor.pending_task_ids == ids[:1]
    assert all(isinstance(i, uuid.UUID) for i in supervisor.spawned_task_ids)


def test_one_supervisor_per_contract():
    supervisor = make_supervisor()
    with pytest.raises(IntegrityError), transaction.atomic():
        SupervisorState.objects.create(contract=supervisor.contract, task=supervisor.task, phase="plan")


def test_enumerations_are_spelled_as_the_seed_spells_them():
    assert RecoveryAction.values == ["Proceed", "UseCheckpoint", "StartFresh", "ManualIntervention"]
    assert "waiting_for_user" in SupervisorStatus.values
    assert TERMINAL_TASK_STATUSES == {TaskStatus.DONE, TaskStatus.FAILED}


def test_free_json_is_stored_untouched():
    history = [{"role": "assistant", "content": [{"type": "text", "text": "hi"}], "snake_case_key": {"x_y": 1}}]
    supervisor = make_supervisor(conversation_history=history)
    supervisor.refresh_from_db()
    assert supervisor.conversation_history == history
