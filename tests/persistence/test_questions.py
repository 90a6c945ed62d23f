"""Asking, answering, withdrawing and acknowledging questions."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model

from supervisors.enums import SavePoint, SupervisorStatus
from supervisors.models import QuestionAnswer, SupervisorState
from supervisors.selectors import (
    get_supervisors_with_pending_questions,
    pending_questions_overview,
    unacknowledged_answers,
)
from supervisors.services.actors import Actor
from supervisors.services.errors import Conflict, InvalidInput, NotFound
from supervisors.services.questions import (
    acknowledge_answer,
    add_supervisor_pending_question,
    clear_pending_question,
    remove_supervisor_pending_question,
    save_state_on_question_asked,
)
from supervisors.services.state import add_supervisor_spawned_task, update_supervisor_detailed_state
from tests.factories import make_contract, make_daemon, make_question, make_supervisor

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return Actor.staff(get_user_model().objects.create_user("ada", is_staff=True))


def test_asking_generates_id_and_time_and_waits_for_the_user(supervisor):
    _state, question, created = add_supervisor_pending_question(
        supervisor.contract_id, {"question": "Which database?", "choices": ["PostgreSQL", "SQLite"]}
    )
    assert created
    uuid.UUID(question["id"])
    assert question["askedAt"]
    assert question["questionType"] == "general"
    row = SupervisorState.objects.get(pk=supervisor.pk)
    assert row.state == SupervisorStatus.WAITING_FOR_USER
    assert row.pending_questions == [question]
    assert row.checkpoints.filter(reason=SavePoint.QUESTION_ASKED).count() == 1


def test_asking_again_with_a_pending_id_is_idempotent(supervisor):
    question = make_question()
    add_supervisor_pending_question(supervisor.contract_id, question)
    _, again, created = save_state_on_question_asked(supervisor.contract_id, {**question, "askedAt": None})
    assert not created
    assert again["id"] == question["id"]
    assert len(SupervisorState.objects.get(pk=supervisor.pk).pending_questions) == 1
    with pytest.raises(Conflict):
        add_supervisor_pending_question(supervisor.contract_id, {**question, "question": "Something else?"})


@pytest.mark.parametrize(
    ("question", "field"),
    [
        ({"question": "  "}, "question"),
        ({"question": "Go?", "questionType": "poll"}, "question_type"),
        ({"question": "Go?", "choices": ["yes", 2]}, "choices"),
        ({"question": "Go?", "choices": "yes"}, "choices"),
        ({"question": "Go?", "id": "nope"}, "id"),
        ({"question": "Go\x00?"}, "question"),
    ],
)
def test_malformed_question_is_refused_and_nothing_changes(supervisor, question, field):
    with pytest.raises(InvalidInput) as caught:
        add_supervisor_pending_question(supervisor.contract_id, question)
    assert field in caught.value.fields
    row = SupervisorState.objects.get(pk=supervisor.pk)
    assert row.pending_questions == []
    assert row.state == SupervisorStatus.INITIALIZING


def test_answer_is_kept_until_acknowledged(supervisor, staff):
    _, question, _ = add_supervisor_pending_question(supervisor.contract_id, make_question())
    answer = clear_pending_question(supervisor.contract_id, question["id"], answer="yes", actor=staff)
    assert answer.question == question
    assert answer.answered_by_user == staff.user
    assert list(unacknowledged_answers(supervisor.contract_id)) == [answer]
    acknowledged = acknowledge_answer(supervisor.contract_id, question["id"])
    assert acknowledged.acknowledged_at is not None
    assert acknowledge_answer(supervisor.contract_id, question["id"]).acknowledged_at == acknowledged.acknowledged_at
    assert list(unacknowledged_answers(supervisor.contract_id)) == []
    with pytest.raises(NotFound):
        acknowledge_answer(supervisor.contract_id, uuid.uuid4())


def test_daemon_answer_records_the_daemon(db):
    daemon = make_daemon()
    supervisor = make_supervisor(daemon=daemon)
    _, question, _ = add_supervisor_pending_question(supervisor.contract_id, make_question())
    answer = clear_pending_question(supervisor.contract_id, question["id"], answer="no", actor=Actor.for_daemon(daemon))
    assert answer.answered_by_daemon == daemon
    assert answer.answered_by_user is None


def test_answering_or_withdrawing_what_is_not_pending_is_a_clear_error(supervisor, staff):
    _, question, _ = add_supervisor_pending_question(supervisor.contract_id, make_question())
    with pytest.raises(NotFound):
        clear_pending_question(supervisor.contract_id, uuid.uuid4(), answer="yes", actor=staff)
    clear_pending_question(supervisor.contract_id, question["id"], answer="yes", actor=staff)
    with pytest.raises(Conflict):
        clear_pending_question(supervisor.contract_id, question["id"], answer="again", actor=staff)
    with pytest.raises(Conflict):
        remove_supervisor_pending_question(supervisor.contract_id, question["id"], actor=staff)
    with pytest.raises(Conflict):
        add_supervisor_pending_question(supervisor.contract_id, question)
    with pytest.raises(InvalidInput):
        clear_pending_question(supervisor.contract_id, uuid.uuid4(), answer=" ", actor=staff)
    assert QuestionAnswer.objects.count() == 1


def test_last_answer_resumes_work_or_waiting_for_tasks(supervisor, tasks, staff):
    _, first, _ = add_supervisor_pending_question(supervisor.contract_id, make_question("One?"))
    _, second, _ = add_supervisor_pending_question(supervisor.contract_id, make_question("Two?"))
    clear_pending_question(supervisor.contract_id, first["id"], answer="a", actor=staff)
    assert SupervisorState.objects.get(pk=supervisor.pk).state == SupervisorStatus.WAITING_FOR_USER
    clear_pending_question(supervisor.contract_id, second["id"], answer="b", actor=staff)
    assert SupervisorState.objects.get(pk=supervisor.pk).state == SupervisorStatus.WORKING

    add_supervisor_spawned_task(supervisor.contract_id, tasks[0].id)
    _, third, _ = add_supervisor_pending_question(supervisor.contract_id, make_question("Three?"))
    remove_supervisor_pending_question(supervisor.contract_id, third["id"], actor=staff)
    row = SupervisorState.objects.get(pk=supervisor.pk)
    assert row.state == SupervisorStatus.WAITING_FOR_TASKS
    assert row.checkpoints.filter(reason=SavePoint.QUESTION_WITHDRAWN).count() == 1


def test_completed_supervisor_asks_nothing(supervisor):
    update_supervisor_detailed_state(supervisor.contract_id, {"state": "completed"})
    with pytest.raises(Conflict):
        add_supervisor_pending_question(supervisor.contract_id, make_question())


def test_overview_lists_every_pending_question_oldest_first(supervisor):
    other = make_supervisor(make_contract(name="Beta"))
    add_supervisor_pending_question(supervisor.contract_id, make_question("Late?", askedAt="2026-11-02T00:00:00+00:00"))
    add_supervisor_pending_question(other.contract_id, make_question("Early?", askedAt="2026-11-01T23:00:00-02:00"))
    add_supervisor_pending_question(other.contract_id, make_question("Earliest?", askedAt="2026-11-01T00:00:00Z"))
    overview = pending_questions_overview()
    assert [item["question"]["question"] for item in overview] == ["Earliest?", "Late?", "Early?"]
    assert overview[0]["contract_name"] == "Beta"
    assert {s.pk for s in get_supervisors_with_pending_questions()} == {supervisor.pk, other.pk}


def test_an_answered_question_cannot_be_made_pending_again(supervisor, staff):
    """It could never be answered (one answer per question): the PATCH is refused, nothing changes."""
    question = make_question()
    add_supervisor_pending_question(supervisor.contract_id, question)
    clear_pending_question(supervisor.contract_id, question["id"], answer="yes", actor=staff)
    with pytest.raises(Conflict) as refused:
        update_supervisor_detailed_state(supervisor.contract_id, {"pending_questions": [question]})
    assert refused.value.code == "question_already_answered"
    assert SupervisorState.objects.get(pk=supervisor.pk).pending_questions == []


def test_answering_a_question_written_back_by_another_program_is_a_conflict_not_a_crash(supervisor, staff):
    """makima may write an answered question back into the row directly: answering it again is a 409."""
    question = make_question()
    _, asked, _ = add_supervisor_pending_question(supervisor.contract_id, question)
    clear_pending_question(supervisor.contract_id, question["id"], answer="yes", actor=staff)
    SupervisorState.objects.filter(pk=supervisor.pk).update(pending_questions=[asked])
    with pytest.raises(Conflict) as refused:
        clear_pending_question(supervisor.contract_id, question["id"], answer="again", actor=staff)
    assert refused.value.code == "question_already_answered"
    assert QuestionAnswer.objects.get(question_id=question["id"]).answer == "yes"
