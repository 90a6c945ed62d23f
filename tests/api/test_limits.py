"""Size limits of the state's lists and free text: the same on every surface, published in the schema,
and a refusal that stays small whatever the request's size."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError

from supervisors.models import SupervisorState
from supervisors.services.errors import InvalidInput
from supervisors.services.state import update_supervisor_detailed_state
from supervisors.validators import (
    MAX_JSON_DEPTH,
    MAX_PENDING_QUESTIONS,
    MAX_REPORTED_ERRORS,
    MAX_TASK_IDS,
    MAX_TEXT_LENGTH,
    validate_pending_questions,
)
from tests.factories import make_question

from .conftest import url


def test_limits_are_the_documented_defaults():
    assert (MAX_TASK_IDS, MAX_PENDING_QUESTIONS, MAX_TEXT_LENGTH, MAX_JSON_DEPTH) == (10_000, 100, 100_000, 100)


@pytest.mark.parametrize("field", ["spawnedTaskIds", "pendingTaskIds"])
def test_too_many_task_ids_is_one_short_error(alpha, supervisor, field):
    before = SupervisorState.objects.values().get(pk=supervisor.pk)
    response = alpha.client.patch(url(supervisor.contract_id), {field: list(range(MAX_TASK_IDS + 1))}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["fields"] == {field: [f"Ensure this field has no more than {MAX_TASK_IDS} elements."]}
    assert SupervisorState.objects.values().get(pk=supervisor.pk) == before


def test_bad_elements_reported_are_capped(alpha, supervisor):
    """10,000 bad ids (within the limit): the 400 names the first few, not all 10,000."""
    response = alpha.client.patch(
        url(supervisor.contract_id), {"spawnedTaskIds": list(range(MAX_TASK_IDS))}, format="json"
    )
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert len(fields) == MAX_REPORTED_ERRORS + 1
    assert fields["spawnedTaskIds.0"] == ["Must be a valid UUID."]
    assert fields[f"spawnedTaskIds.{MAX_REPORTED_ERRORS}"] == [
        f"This and {MAX_TASK_IDS - MAX_REPORTED_ERRORS - 1} more bad elements after it are not listed."
    ]
    assert len(response.content) < 5_000


def test_unknown_task_ids_reported_are_capped(alpha, supervisor):
    """Well-formed ids of tasks that do not exist: the service's refusal is capped too."""
    ids = [str(uuid.uuid4()) for _ in range(500)]
    response = alpha.client.patch(url(supervisor.contract_id), {"spawnedTaskIds": ids}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "bad_reference"
    messages = response.json()["fields"]["spawnedTaskIds"]
    assert len(messages) == MAX_REPORTED_ERRORS + 1
    assert messages[-1] == f"... and {500 - MAX_REPORTED_ERRORS} more errors like these (not listed)."


def test_too_many_pending_questions_is_refused(alpha, supervisor):
    questions = [make_question(text=f"q{i}") for i in range(MAX_PENDING_QUESTIONS + 1)]
    response = alpha.client.patch(url(supervisor.contract_id), {"pendingQuestions": questions}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "pendingQuestions": [f"Ensure this field has no more than {MAX_PENDING_QUESTIONS} elements."]
    }
    ok = alpha.client.patch(url(supervisor.contract_id), {"pendingQuestions": questions[:-1]}, format="json")
    assert ok.status_code == 200, ok.content


@pytest.mark.parametrize("field", ["currentActivity", "errorMessage"])
@pytest.mark.parametrize("method", ["put", "patch"])
def test_free_text_has_the_heartbeats_limit(alpha, supervisor, field, method):
    body = {"taskId": str(supervisor.task_id), "phase": "planning", "state": "working"} if method == "put" else {}
    send = getattr(alpha.client, method)
    too_long = send(url(supervisor.contract_id), {**body, field: "x" * (MAX_TEXT_LENGTH + 1)}, format="json")
    assert too_long.status_code == 400
    assert list(too_long.json()["fields"]) == [field]
    longest = send(url(supervisor.contract_id), {**body, field: "x" * MAX_TEXT_LENGTH}, format="json")
    assert longest.status_code == 200, longest.content
    assert longest.json()[field] == "x" * MAX_TEXT_LENGTH


def test_heartbeat_refuses_the_same_length(alpha, supervisor):
    response = alpha.client.post(
        url(supervisor.contract_id, "heartbeat/"),
        {"state": "working", "progress": 1, "currentActivity": "x" * (MAX_TEXT_LENGTH + 1)},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["currentActivity"]


def test_services_enforce_the_same_limits(supervisor):
    """Admin and commands call the services directly: the limits hold there too."""
    with pytest.raises(InvalidInput) as too_long:
        update_supervisor_detailed_state(supervisor.contract_id, {"error_message": "x" * (MAX_TEXT_LENGTH + 1)})
    assert set(too_long.value.fields) == {"error_message"}
    with pytest.raises(InvalidInput) as too_many:
        update_supervisor_detailed_state(
            supervisor.contract_id, {"spawned_task_ids": [uuid.uuid4() for _ in range(MAX_TASK_IDS + 1)]}
        )
    assert too_many.value.fields["spawned_task_ids"] == [f"At most {MAX_TASK_IDS} elements are allowed, not 10001."]
    with pytest.raises(InvalidInput) as questions:
        update_supervisor_detailed_state(
            supervisor.contract_id, {"pending_questions": [make_question() for _ in range(MAX_PENDING_QUESTIONS + 1)]}
        )
    assert set(questions.value.fields) == {"pending_questions"}
    with pytest.raises(ValidationError):
        validate_pending_questions([make_question() for _ in range(MAX_PENDING_QUESTIONS + 1)])


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _patch_history_raw(alpha, supervisor, content_depth: int):
    """A PATCH whose body nests ``content_depth + 3`` levels (body, history array, message)."""
    raw = '{"conversationHistory": [{"role": "user", "content": ' + _nested(content_depth) + "}]}"
    return alpha.client.generic("PATCH", url(supervisor.contract_id), raw, content_type="application/json")


def test_json_nesting_is_limited_before_anything_chokes_on_it(alpha, supervisor):
    """900 levels parsed, then failed to be stored (RecursionError: a 500); now any depth past the limit is a
    400, and what is within it is stored and read back."""
    for depth in (MAX_JSON_DEPTH - 2, 900, 5_000):
        response = _patch_history_raw(alpha, supervisor, depth)
        assert response.status_code == 400, (depth, response.status_code)
        assert response.json()["code"] == "parse_error"
    ok = _patch_history_raw(alpha, supervisor, MAX_JSON_DEPTH - 3)
    assert ok.status_code == 200, ok.content
    read = alpha.client.get(url(supervisor.contract_id) + "?include=conversationHistory")
    assert read.status_code == 200


def test_services_refuse_deep_json_too(supervisor):
    deep: list = []
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = [deep]
    with pytest.raises(InvalidInput) as refused:
        update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": [{"role": "u", "c": deep}]})
    assert set(refused.value.fields) == {"conversation_history"}


def test_schema_publishes_the_limits(client):
    schema = client.get("/api/schema/?format=json").json()["components"]["schemas"]
    for name in ("SaveSupervisorStateRequest", "PatchedUpdateSupervisorStateRequest"):
        properties = schema[name]["properties"]
        assert properties["spawnedTaskIds"]["maxItems"] == MAX_TASK_IDS, name
        assert properties["pendingTaskIds"]["maxItems"] == MAX_TASK_IDS, name
        assert properties["pendingQuestions"]["maxItems"] == MAX_PENDING_QUESTIONS, name
        assert properties["currentActivity"]["maxLength"] == MAX_TEXT_LENGTH, name
        assert properties["errorMessage"]["maxLength"] == MAX_TEXT_LENGTH, name
