"""The response check of tests/api/conftest.py really checks: a response the schema does not allow fails."""

from __future__ import annotations

import json

import pytest
from rest_framework.response import Response

from supervisors.api.views.daemons import DaemonMeView
from tests.api.contract import ResponseContractError, problems

pytestmark = pytest.mark.django_db

ME = "/api/v1/daemons/me/"
GOOD = {
    "daemonId": "8b17c307-c4f8-4d90-9d51-71f15582a774",
    "name": "alpha",
    "alive": True,
    "lastHeartbeatAt": "2026-11-29T16:03:16.340634Z",
    "leaseExpiresAt": None,
    "supervisors": 1,
}


def check(body: dict, status: int = 200, method: str = "GET", path: str = ME) -> list[str]:
    return problems(method, path, status, "application/json", json.dumps(body).encode())


def test_a_response_as_the_schema_declares_it_passes():
    assert check(GOOD) == []


@pytest.mark.parametrize(
    "change,where",
    [
        ({"surprise": 1}, "surprise"),  # an undeclared key
        ({"supervisors": "1"}, "supervisors"),  # a string where the schema says integer
        ({"daemonId": "not-a-uuid"}, "daemonId"),  # format: uuid
        ({"lastHeartbeatAt": "yesterday"}, "lastHeartbeatAt"),  # format: date-time
        ({"name": None}, "name"),  # null where the schema does not allow it
    ],
)
def test_a_response_the_schema_does_not_allow_fails(change, where):
    found = check({**GOOD, **change})
    assert found and where in found[0], found


def test_a_missing_required_key_fails():
    assert check({k: v for k, v in GOOD.items() if k != "alive"})


def test_an_undeclared_status_fails():
    assert "status 418 is not declared" in check(GOOD, status=418)[0]


def test_an_error_body_is_checked_against_the_error_schema():
    assert check({"code": "invalid", "message": "x", "fields": {"a": ["m"]}}, status=400) == []
    assert check({"code": "invalid", "message": "x", "fields": {"a": "m"}}, status=400)


def test_a_real_response_through_the_test_client_fails_the_test(alpha, monkeypatch):
    """End to end: the autouse fixture raises for a view answering a key the schema does not declare."""
    assert alpha.client.get(ME).status_code == 200
    monkeypatch.setattr(DaemonMeView, "get", lambda self, request: Response({**GOOD, "leaseState": "ok"}))
    with pytest.raises(ResponseContractError, match="leaseState"):
        alpha.client.get(ME)


def test_an_error_code_the_operation_does_not_list_fails():
    """Each error response lists its `code` values; a refusal with another code breaks the contract."""
    path = "/api/v1/contracts/3f1c2a9e-5b7d-4e21-9a0c-6d8e1f2b3c4d/supervisor/heartbeat/"
    body = {"code": "superseded", "message": "x", "fields": {}}
    assert check(body, status=409, method="POST", path=path) == []
    found = check({**body, "code": "daemon_alive"}, status=409, method="POST", path=path)
    assert found and "'daemon_alive' is not listed" in found[0]
