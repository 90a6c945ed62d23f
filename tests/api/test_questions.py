"""Questions asked by a supervisor, answered by a human, picked up and acknowledged by the daemon."""

from __future__ import annotations

import uuid

import pytest

from supervisors.models import QuestionAnswer
from tests.api.conftest import staff_client, url
from tests.factories import make_question

pytestmark = pytest.mark.django_db


def ask(client, contract_id, **fields):
    question = {"question": "Ship it?", "choices": ["yes", "no"], "context": "ctx", "questionType": "general"}
    question.update(fields)
    return client.post(url(contract_id, "questions/"), question, format="json")


def test_question_lifecycle(alpha, supervisor, staff):
    response = ask(alpha.client, supervisor.contract_id)
    assert response.status_code == 201, response.content
    question = response.json()["question"]
    assert question["questionType"] == "general" and question["askedAt"] and question["id"]

    pending = alpha.client.get(url(supervisor.contract_id, "questions/")).json()
    assert [q["id"] for q in pending] == [question["id"]]
    overview = alpha.client.get("/api/v1/supervisors/pending-questions/").json()
    assert [item["question"]["id"] for item in overview] == [question["id"]]

    answered = staff.post(
        url(supervisor.contract_id, f"questions/{question['id']}/answer/"), {"answer": "yes"}, format="json"
    )
    assert answered.status_code == 200, answered.content
    assert answered.json()["answer"] == "yes"
    assert alpha.client.get(url(supervisor.contract_id, "questions/")).json() == []

    answers = alpha.client.get(url(supervisor.contract_id, "answers/")).json()
    assert [a["questionId"] for a in answers] == [question["id"]]
    assert answers[0]["question"]["question"] == "Ship it?"
    ack = alpha.client.post(url(supervisor.contract_id, f"answers/{question['id']}/ack/"))
    assert ack.status_code == 200
    assert ack.json()["acknowledgedAt"]
    assert alpha.client.get(url(supervisor.contract_id, "answers/")).json() == []


def test_reasking_the_same_id_is_harmless(alpha, supervisor):
    qid = str(uuid.uuid4())
    assert ask(alpha.client, supervisor.contract_id, id=qid).status_code == 201
    again = ask(alpha.client, supervisor.contract_id, id=qid)
    assert again.status_code == 200
    assert again.json()["created"] is False


def test_answering_twice_is_409_and_keeps_the_first_answer(alpha, supervisor, staff):
    qid = ask(alpha.client, supervisor.contract_id).json()["question"]["id"]
    path = url(supervisor.contract_id, f"questions/{qid}/answer/")
    assert staff.post(path, {"answer": "yes"}, format="json").status_code == 200
    second = staff.post(path, {"answer": "no"}, format="json")
    assert second.status_code in (404, 409)
    assert QuestionAnswer.objects.get(question_id=qid).answer == "yes"


def test_answering_needs_the_answer_permission(alpha, supervisor):
    qid = ask(alpha.client, supervisor.contract_id).json()["question"]["id"]
    viewer = staff_client("supervisors.view_supervisorstate", "supervisors.change_supervisorstate")
    path = url(supervisor.contract_id, f"questions/{qid}/answer/")
    assert viewer.post(path, {"answer": "yes"}, format="json").status_code == 403


def test_withdraw(alpha, supervisor):
    qid = ask(alpha.client, supervisor.contract_id).json()["question"]["id"]
    assert alpha.client.delete(url(supervisor.contract_id, f"questions/{qid}/")).status_code == 204
    assert alpha.client.get(url(supervisor.contract_id, "questions/")).json() == []
    assert alpha.client.delete(url(supervisor.contract_id, f"questions/{qid}/")).status_code == 404


@pytest.mark.parametrize(
    "fields,bad",
    [
        ({"questionType": "essay"}, "questionType"),
        ({"question": ""}, "question"),
        ({"choices": "yes"}, "choices"),
        ({"askedAt": "yesterday"}, "askedAt"),
        ({"askedAt": "2026-02-30T12:00:00Z"}, "askedAt"),  # well formed, impossible: was a 500
        ({"askedAt": "2026-11-01T25:00:00+00:00"}, "askedAt"),
        ({"id": "123"}, "id"),
        ({"context": {"not": "a string"}}, "context"),
    ],
)
def test_bad_questions_are_400(alpha, supervisor, fields, bad):
    response = ask(alpha.client, supervisor.contract_id, **fields)
    assert response.status_code == 400, response.content
    assert bad in response.json()["fields"]
    supervisor.refresh_from_db()
    assert supervisor.pending_questions == []


def test_unknown_question_is_404(alpha, supervisor, staff):
    path = url(supervisor.contract_id, f"questions/{uuid.uuid4()}/answer/")
    assert staff.post(path, {"answer": "x"}, format="json").status_code == 404
    assert alpha.client.post(url(supervisor.contract_id, f"answers/{uuid.uuid4()}/ack/")).status_code == 404


def test_question_given_in_full_is_stored_as_given(alpha, supervisor):
    question = make_question(context="line one\nline two")
    response = alpha.client.post(url(supervisor.contract_id, "questions/"), question, format="json")
    assert response.status_code == 201
    supervisor.refresh_from_db()
    stored = supervisor.pending_questions[0]
    assert stored["id"] == question["id"] and stored["context"] == question["context"]


def test_reasking_an_id_with_other_content_is_409_naming_the_id(alpha, supervisor):
    question_id = "5b0a6c1e-6a57-4c84-9d1e-4c8c8f1f2a10"
    first = alpha.client.post(
        url(supervisor.contract_id, "questions/"), {"id": question_id, "question": "A?"}, format="json"
    )
    assert first.status_code == 201
    again = alpha.client.post(
        url(supervisor.contract_id, "questions/"), {"id": question_id, "question": "B?"}, format="json"
    )
    assert again.status_code == 409
    assert set(again.json()["fields"]) == {"id"}
