"""Bad input everywhere: one error shape, the right status, never a 500, nothing written."""

from __future__ import annotations

import json

import pytest

from supervisors.models import SupervisorState
from tests.api.conftest import url

pytestmark = pytest.mark.django_db


def assert_shape(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message", "fields"}
    assert isinstance(body["message"], str) and body["message"]
    return body


def test_non_json_body_is_415(alpha, supervisor):
    response = alpha.client.post(
        url(supervisor.contract_id, "heartbeat/"), "state=working", content_type="application/x-www-form-urlencoded"
    )
    assert assert_shape(response, 415)["code"] == "unsupported_media_type"


def test_malformed_json_is_400(alpha, supervisor):
    response = alpha.client.post(
        url(supervisor.contract_id, "heartbeat/"), "{not json", content_type="application/json"
    )
    assert_shape(response, 400)


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("heartbeat/", {"state": "working", "progress": 1, "currentActivity": "a\u0000b"}, "currentActivity"),
        ("", {"conversationHistory": [{"role": "user", "tool_calls": "x\u0000"}]}, "conversationHistory.0.tool_calls"),
        ("", {"conversationHistory": [{"role": "user", "key\u0000": "x"}]}, "conversationHistory.0.key\u0000"),
        ("questions/", {"question": "why?", "context": "\u0000"}, "context"),
    ],
)
def test_nul_anywhere_in_the_body_is_400_naming_where(alpha, supervisor, path, body, field):
    """The refusal names the path as the client spelt it: free JSON keys are not camel-cased."""
    method = alpha.client.patch if path == "" else alpha.client.post
    response = method(url(supervisor.contract_id, path), json.dumps(body), content_type="application/json")
    assert assert_shape(response, 400)["fields"].keys() == {field}
    supervisor.refresh_from_db()
    assert supervisor.conversation_history == [] and supervisor.current_activity is None


def test_escaped_backslash_u0000_text_is_fine(alpha, supervisor):
    body = {"conversationHistory": [{"role": "user", "content": "literally \\u0000"}]}
    response = alpha.client.patch(url(supervisor.contract_id), json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content


def test_oversized_body_is_413_and_the_limit_is_configurable(alpha, supervisor, settings):
    settings.API_MAX_BODY_BYTES = 10_000
    big = {"conversationHistory": [{"role": "user", "content": "x" * 20_000}]}
    response = alpha.client.patch(url(supervisor.contract_id), big, format="json")
    assert assert_shape(response, 413)["code"] == "body_too_large"


def test_multi_megabyte_history_fits_under_the_default_limit(alpha, supervisor):
    history = [{"role": "user", "content": "y" * 1000, "i": i} for i in range(6000)]  # about 6 MB
    response = alpha.client.patch(url(supervisor.contract_id), {"conversationHistory": history}, format="json")
    assert response.status_code == 200, response.content[:300]
    supervisor.refresh_from_db()
    assert len(supervisor.conversation_history) == 6000


def test_field_errors_use_camel_case_names(alpha, supervisor):
    response = alpha.client.patch(
        url(supervisor.contract_id),
        {"pendingTaskIds": ["nope"], "currentActivity": 5, "errorMessage": ["x"], "progress": -1},
        format="json",
    )
    body = assert_shape(response, 400)
    assert "pendingTaskIds.0" in body["fields"] or "pendingTaskIds" in body["fields"]
    assert {"errorMessage", "progress"} <= set(body["fields"])
    assert not any("_" in name for name in body["fields"])


def test_service_errors_are_camel_cased_too(alpha, supervisor):
    from tests.factories import make_task

    task = make_task(supervisor.contract, name="child")
    response = alpha.client.patch(url(supervisor.contract_id), {"pendingTaskIds": [str(task.id)]}, format="json")
    body = assert_shape(response, 409)
    assert "pendingTaskIds" in body["fields"]
    supervisor.refresh_from_db()
    assert supervisor.pending_task_ids == []


@pytest.mark.parametrize("payload", ["[]", '"text"', "3", "null"])
def test_non_object_bodies_are_400(alpha, supervisor, payload):
    response = alpha.client.post(url(supervisor.contract_id, "heartbeat/"), payload, content_type="application/json")
    assert_shape(response, 400)


def test_history_that_is_not_a_list_of_messages_is_400(alpha, supervisor):
    for history in [{"role": "user"}, ["text"], [{"content": "no role"}]]:
        response = alpha.client.patch(url(supervisor.contract_id), {"conversationHistory": history}, format="json")
        assert "conversationHistory" in assert_shape(response, 400)["fields"]


def test_throttling_is_429_with_retry_after(alpha, supervisor, settings):
    settings.API_THROTTLE_RATE_PER_MINUTE = 3
    body = {"state": "working", "progress": 1}
    statuses = [
        alpha.client.post(url(supervisor.contract_id, "heartbeat/"), body, format="json").status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    response = alpha.client.post(url(supervisor.contract_id, "heartbeat/"), body, format="json")
    assert assert_shape(response, 429)["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_throttling_counts_per_daemon(alpha, beta, supervisor, other_supervisor, settings):
    settings.API_THROTTLE_RATE_PER_MINUTE = 2
    for _ in range(2):
        alpha.client.get(url(supervisor.contract_id))
    assert alpha.client.get(url(supervisor.contract_id)).status_code == 429
    assert beta.client.get(url(other_supervisor.contract_id)).status_code == 200


def test_unknown_endpoint_is_json_404(alpha):
    assert_shape(alpha.client.get("/api/v1/nothing-here/"), 404)


def test_wrong_method_is_405_in_the_error_shape(alpha, supervisor):
    assert_shape(alpha.client.delete(url(supervisor.contract_id)), 405)


def test_bad_input_writes_nothing(alpha, supervisor):
    before = SupervisorState.objects.values().get(pk=supervisor.pk)
    alpha.client.put(url(supervisor.contract_id), {"taskId": "x", "phase": 1, "state": "nope"}, format="json")
    alpha.client.patch(url(supervisor.contract_id), {"progress": 500}, format="json")
    assert SupervisorState.objects.values().get(pk=supervisor.pk) == before


def test_a_stale_if_match_is_named_by_its_header(alpha, supervisor):
    response = alpha.client.patch(url(supervisor.contract_id), {"phase": "x"}, format="json", HTTP_IF_MATCH='"old"')
    assert assert_shape(response, 412)["fields"].keys() == {"If-Match"}


def test_if_match_on_a_supervisor_not_saved_yet_is_named_by_its_header(alpha):
    from tests.factories import make_contract, make_task

    contract = make_contract("no state yet")
    task = make_task(contract, name="sup", is_supervisor=True, daemon=alpha.daemon)
    body = {"taskId": str(task.id), "phase": "plan", "state": "working"}
    response = alpha.client.put(url(contract.id), body, format="json", HTTP_IF_MATCH='"v1"')
    assert assert_shape(response, 412)["fields"].keys() == {"If-Match"}


@pytest.mark.parametrize("method,path", [("patch", "supervisor"), ("post", "daemon-heartbeat")])
@pytest.mark.parametrize("content_type", [None, "application/json"])
def test_a_missing_body_is_400_where_an_empty_object_is_fine(alpha, supervisor, method, path, content_type):
    """The schema requires these bodies (a generated client always sends one): no body is refused, {} is not."""
    target = url(supervisor.contract_id) if path == "supervisor" else "/api/v1/daemons/me/heartbeat/"
    send = getattr(alpha.client, method)
    response = send(target, content_type=content_type) if content_type else send(target)
    assert assert_shape(response, 400)["fields"] == {"": ["A JSON object body is required."]}
    assert send(target, {}, format="json").status_code == 200
