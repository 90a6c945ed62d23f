"""The heartbeats' lean dispatch answers exactly as the DRF view would: same statuses, shape and headers."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from supervisors.models import SupervisorState
from tests.api.conftest import staff_client, url

pytestmark = pytest.mark.django_db

BODY = {"state": "working", "currentActivity": "coding", "progress": 7}
ME = "/api/v1/daemons/me/heartbeat/"


def post(client: APIClient, path: str, body, **extra):
    return client.post(path, json.dumps(body), content_type="application/json", **extra)


def test_daemon_heartbeat_answers_like_the_drf_view(alpha, supervisor):
    response = post(alpha.client, url(supervisor.contract_id, "heartbeat/"), BODY)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"ok": True}
    assert response["Allow"] == "POST, OPTIONS"
    row = SupervisorState.objects.get(pk=supervisor.pk)
    assert (row.state, row.current_activity, row.progress) == ("working", "coding", 7)


def test_a_wrong_key_on_the_lean_path_is_401_with_the_challenge(supervisor):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer mks_nope_nope")
    response = post(client, url(supervisor.contract_id, "heartbeat/"), BODY)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_another_daemons_supervisor_and_a_malformed_id_are_404(alpha, other_supervisor):
    for contract in (other_supervisor.contract_id, "not-a-uuid"):
        response = post(alpha.client, url(contract, "heartbeat/"), BODY)
        assert response.status_code == 404
        assert set(response.json()) == {"code", "message", "fields"}
    assert SupervisorState.objects.get(pk=other_supervisor.pk).progress == 0


def test_an_empty_body_is_400_naming_the_required_fields(alpha, supervisor):
    response = alpha.client.post(url(supervisor.contract_id, "heartbeat/"), b"", content_type="application/json")
    assert response.status_code == 400
    assert {"state", "progress"} <= set(response.json()["fields"])


def test_an_accept_header_without_json_is_406_as_drf_gives_it(alpha, supervisor):
    response = post(alpha.client, url(supervisor.contract_id, "heartbeat/"), BODY, HTTP_ACCEPT="text/html")
    assert response.status_code == 406
    assert SupervisorState.objects.get(pk=supervisor.pk).progress == 0


def test_staff_heartbeats_still_go_through_session_auth_and_permissions(supervisor):
    allowed = staff_client("supervisors.change_supervisorstate")
    assert post(allowed, url(supervisor.contract_id, "heartbeat/"), BODY).status_code == 200
    viewer = staff_client("supervisors.view_supervisorstate")
    assert post(viewer, url(supervisor.contract_id, "heartbeat/"), BODY).status_code == 403
    assert post(allowed, ME, {}).status_code == 403  # a daemon's own heartbeat is for daemons only


def test_daemon_heartbeat_batch_on_the_lean_path(alpha, supervisor):
    item = {"contractId": str(supervisor.contract_id), **BODY}
    response = post(alpha.client, ME, {"supervisors": [item]})
    assert response.status_code == 200
    body = response.json()
    assert body["supervisorsUpdated"] == 1 and body["status"] == "connected"
    assert body["lastHeartbeatAt"].endswith("Z")
    later = {**item, "progress": 77}
    duplicate = post(alpha.client, ME, {"supervisors": [item, later]})
    assert duplicate.status_code == 200  # one contract twice: one heartbeat, the later item's
    assert duplicate.json()["supervisorsUpdated"] == 1
    supervisor.refresh_from_db()
    assert supervisor.progress == 77
