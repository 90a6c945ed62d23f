"""Nothing the human said is lost: answers travel with every restoration until acknowledged, and a
question that comes back already answered is not asked again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from supervisors.enums import RecoveryAction, SavePoint, SupervisorStatus
from supervisors.models import SupervisorState
from supervisors.services.actors import Actor
from supervisors.services.questions import (
    acknowledge_answer,
    add_supervisor_pending_question,
    clear_pending_question,
)
from supervisors.services.restoration import restore_supervisor, validate_checkpoint
from supervisors.services.validation import validate_supervisor_state
from tests.api import conftest as api
from tests.factories import make_contract, make_question, make_supervisor

from .conftest import make_working_supervisor

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Actor:
    return Actor.staff(User.objects.create_user("ops", is_staff=True))


def some_time_passes(supervisor: SupervisorState) -> None:
    """A resume right after a restoration is a duplicate for the debounce of today's API; not what is tested."""
    SupervisorState.objects.filter(id=supervisor.id).update(last_restored_at=timezone.now() - timedelta(hours=1))


def asked_and_answered(staff: Actor, answer: str = "ship it") -> tuple[SupervisorState, dict]:
    """A supervisor that asked a question (checkpoint taken) and got its answer (not yet acknowledged)."""
    supervisor, _ = make_working_supervisor(pending=0)
    _, question, _ = add_supervisor_pending_question(supervisor.contract_id, make_question("Ship it?"))
    clear_pending_question(supervisor.contract_id, question["id"], answer=answer, actor=staff)
    supervisor.refresh_from_db()
    return supervisor, question


def test_unacknowledged_answers_travel_with_the_restoration_until_acknowledged(staff):
    supervisor, question = asked_and_answered(staff)
    result = restore_supervisor(supervisor.contract_id, source="daemon_restart", actor=Actor.system("test"))
    (answer,) = result.context.pending_answers
    assert answer["questionId"] == question["id"] and answer["answer"] == "ship it"
    assert answer["question"]["question"] == "Ship it?" and answer["answeredBy"] == "ops"
    message = result.context.restoration_context_message
    assert "Answers from the human you have not acknowledged yet (1)" in message
    assert "Ship it?" in message and ": ship it" in message
    assert "Next: act on the answers above" in message

    acknowledge_answer(supervisor.contract_id, question["id"])
    again = restore_supervisor(supervisor.contract_id, source="daemon_restart", actor=Actor.system("test"))
    assert again.context.pending_answers == []
    assert "not acknowledged" not in again.context.restoration_context_message


def test_restoring_an_older_checkpoint_delivers_the_answer_instead_of_asking_again(staff):
    supervisor, question = asked_and_answered(staff)
    asked = supervisor.checkpoints.get(reason=SavePoint.QUESTION_ASKED)
    assert [q["id"] for q in asked.pending_questions] == [question["id"]]

    verdict = validate_checkpoint(asked)
    assert verdict.is_valid and f"pending_questions: pending question already answered: {question['id']}" in (
        verdict.warnings
    )
    result = restore_supervisor(supervisor.contract_id, source="manual", actor=staff, checkpoint_id=asked.id)
    assert result.recovery_action == RecoveryAction.USE_CHECKPOINT
    assert result.context.pending_questions == []
    assert [a["questionId"] for a in result.context.pending_answers] == [question["id"]]
    assert any("already answered ('ship it')" in w and "pendingAnswers" in w for w in result.context.warnings)
    supervisor.refresh_from_db()
    assert supervisor.pending_questions == [] and supervisor.state == SupervisorStatus.WORKING
    assert result.redelivered_question_ids == []


def test_a_state_written_with_an_answered_question_is_repaired_not_blocked(staff):
    supervisor, question = asked_and_answered(staff)
    acknowledge_answer(supervisor.contract_id, question["id"])
    # makima (or a PATCH) writes the question back as pending
    SupervisorState.objects.filter(id=supervisor.id).update(
        state=SupervisorStatus.WAITING_FOR_USER, pending_questions=[question]
    )
    verdict = validate_supervisor_state(SupervisorState.objects.select_related("contract").get(id=supervisor.id))
    assert verdict.recovery_action == RecoveryAction.PROCEED
    assert f"pending_questions: pending question already answered: {question['id']}" in verdict.warnings

    result = restore_supervisor(supervisor.contract_id, source="daemon_restart", actor=Actor.system("test"))
    assert result.outcome == "restored" and result.context.pending_questions == []
    assert result.context.pending_answers == []  # acknowledged before: only the warning says what happened
    assert any("acknowledged before, so it is not asked again" in w for w in result.context.warnings)
    supervisor.refresh_from_db()
    assert supervisor.pending_questions == [] and supervisor.state == SupervisorStatus.WORKING


def test_resume_over_the_api_carries_pending_answers_and_the_outcome(staff, settings):
    settings.SECURE_SSL_REDIRECT = False
    api.clear_key_cache()
    alpha = api._daemon("alpha")
    supervisor = make_supervisor(make_contract("Alpha contract"), daemon=alpha.daemon)
    _, question, _ = add_supervisor_pending_question(supervisor.contract_id, make_question("Merge now?"))
    clear_pending_question(supervisor.contract_id, question["id"], answer="yes, merge", actor=staff)
    asked = supervisor.checkpoints.get(reason=SavePoint.QUESTION_ASKED)
    # the daemon crashed before it read the answer; the state is rolled back to when it asked
    restore_supervisor(supervisor.contract_id, source="manual", actor=staff, checkpoint_id=asked.id)
    some_time_passes(supervisor)

    response = alpha.client.post(
        api.url(supervisor.contract_id, "resume/"), {"source": "daemon_restart"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["outcome"] == "restored"
    assert body["pendingQuestions"] == []
    (answer,) = body["pendingAnswers"]
    assert set(answer) == {"questionId", "question", "answer", "answeredAt", "answeredBy"}
    assert answer["questionId"] == question["id"] and answer["answer"] == "yes, merge"
    assert answer["question"]["question"] == "Merge now?" and answer["answeredBy"] == "ops"
    assert "yes, merge" in body["restorationContextMessage"]

    ack = alpha.client.post(api.url(supervisor.contract_id, f"answers/{question['id']}/ack/"), format="json")
    assert ack.status_code == 200, ack.content
    some_time_passes(supervisor)
    again = alpha.client.post(api.url(supervisor.contract_id, "resume/"), {"source": "daemon_restart"}, format="json")
    assert again.status_code == 200, again.content
    assert again.json()["pendingAnswers"] == []


def test_schema_declares_pending_answers_and_outcome_typed_and_required(client, settings):
    settings.SECURE_SSL_REDIRECT = False
    spec = client.get("/api/schema/?format=json").json()
    schemas = spec["components"]["schemas"]
    context = schemas["RestorationContext"]
    assert {"pendingAnswers", "outcome"} <= set(context["required"])
    assert context["properties"]["pendingAnswers"]["type"] == "array"
    item = context["properties"]["pendingAnswers"]["items"]["$ref"].rsplit("/", 1)[1]
    answer = schemas[item]
    assert set(answer["required"]) == {"questionId", "question", "answer", "answeredAt", "answeredBy"}
    assert answer["properties"]["questionId"]["format"] == "uuid"
    assert answer["properties"]["answeredAt"]["format"] == "date-time"
    assert answer["properties"]["answeredBy"]["nullable"] is True
    declared = context["properties"]["outcome"]
    outcome = (declared.get("$ref") or declared["allOf"][0]["$ref"]).rsplit("/", 1)[1]
    assert schemas[outcome]["enum"] == [
        "restored",
        "restored_from_checkpoint",
        "started_fresh",
        "needs_person",
        "skipped_completed",
        "failed",
    ]
