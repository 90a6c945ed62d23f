"""The hot path's shortcuts keep their promises: a cached key expires on time, every request is counted once."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from supervisors.api import authentication
from supervisors.api.authentication import clear_key_cache
from supervisors.models import DaemonApiKey, RateCounter
from supervisors.services.world import daemon_rate_key, revoke_daemon_key
from tests.api.conftest import url

pytestmark = pytest.mark.django_db

BODY = {"state": "working", "progress": 1}


def test_revoked_key_is_refused_once_the_cache_seconds_have_passed(alpha, supervisor, settings, monkeypatch):
    settings.API_KEY_CACHE_SECONDS = 5
    now = [1000.0]
    monkeypatch.setattr(authentication, "clock", lambda: now[0])
    heartbeat = url(supervisor.contract_id, "heartbeat/")
    assert alpha.client.post(heartbeat, BODY, format="json").status_code == 200  # looked up, cached until 1005
    revoke_daemon_key(DaemonApiKey.objects.get(daemon=alpha.daemon).id)
    now[0] = 1004.9
    assert alpha.client.post(heartbeat, BODY, format="json").status_code == 200  # the documented delay
    now[0] = 1005.0
    response = alpha.client.post(heartbeat, BODY, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("cache_seconds", [0, 5])
def test_each_request_is_counted_exactly_once_cached_key_or_not(alpha, supervisor, settings, cache_seconds):
    """Key lookups that count the request themselves must not let the throttle count it again."""
    settings.API_KEY_CACHE_SECONDS = cache_seconds
    settings.API_THROTTLE_RATE_PER_MINUTE = 4
    heartbeat = url(supervisor.contract_id, "heartbeat/")
    statuses = []
    for index in range(5):
        if index == 2:
            clear_key_cache()  # as in another process, whose cache is empty
        statuses.append(alpha.client.post(heartbeat, BODY, format="json").status_code)
    assert statuses == [200, 200, 200, 200, 429]
    assert RateCounter.objects.get(key=daemon_rate_key(alpha.daemon.id)).count == 5


def test_an_unknown_key_is_refused_and_counts_for_nobody(alpha, supervisor, anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer mks_nope_nope")
    assert anonymous.post(url(supervisor.contract_id, "heartbeat/"), BODY, format="json").status_code == 401
    assert not RateCounter.objects.exists()


def _heartbeat_status(alpha, contract_id, body) -> int:
    return alpha.client.post(url(contract_id, "heartbeat/"), body, format="json").status_code


def test_heartbeat_over_the_limit_is_429_and_writes_nothing(alpha, supervisor, settings):
    """The UPDATE counts the request itself; over the limit it must not write the heartbeat."""
    settings.API_THROTTLE_RATE_PER_MINUTE = 2
    assert [_heartbeat_status(alpha, supervisor.contract_id, {"state": "working", "progress": n}) for n in (1, 2)] == [
        200,
        200,
    ]
    assert _heartbeat_status(alpha, supervisor.contract_id, {"state": "idle", "progress": 99}) == 429
    supervisor.refresh_from_db()
    assert (supervisor.state, supervisor.progress) == ("working", 2)
    assert RateCounter.objects.get(key=daemon_rate_key(alpha.daemon.id)).count == 3


@pytest.mark.parametrize(
    "body,contract,refused",
    [
        ({"state": "sleeping", "progress": 1}, "own", 400),  # refused before the statement runs
        ({"state": "working", "progress": 1}, "unknown", 404),  # the statement ran and matched nothing
        ({"state": "working", "progress": 1}, "malformed", 404),  # a path id names nothing; no statement ran
    ],
)
def test_a_refused_heartbeat_is_counted_once_and_429_wins_over_the_limit(
    alpha, supervisor, settings, body, contract, refused
):
    """As in DRF's order (throttle first, then the body): within the limit the error, over it 429."""
    settings.API_THROTTLE_RATE_PER_MINUTE = 3
    contract_id = {"own": supervisor.contract_id, "unknown": uuid.uuid4(), "malformed": "not-a-uuid"}[contract]
    assert _heartbeat_status(alpha, supervisor.contract_id, BODY) == 200  # warms the key cache
    statuses = [_heartbeat_status(alpha, contract_id, body) for _ in range(3)]
    assert statuses == [refused, refused, 429]
    assert RateCounter.objects.get(key=daemon_rate_key(alpha.daemon.id)).count == 4
    assert _heartbeat_status(alpha, supervisor.contract_id, BODY) == 429


def test_a_warm_heartbeat_is_one_statement_on_postgresql(alpha, supervisor, settings):
    """Counter and UPDATE travel together; SQLite has no writes in a CTE, so it takes two local statements."""
    settings.API_THROTTLE_RATE_PER_MINUTE = 100
    assert _heartbeat_status(alpha, supervisor.contract_id, BODY) == 200  # warms the key cache
    with CaptureQueriesContext(connection) as queries:
        assert _heartbeat_status(alpha, supervisor.contract_id, {"state": "working", "progress": 77}) == 200
    assert len(queries) == (1 if connection.vendor == "postgresql" else 2), [q["sql"] for q in queries]
    supervisor.refresh_from_db()
    assert supervisor.progress == 77
    assert RateCounter.objects.get(key=daemon_rate_key(alpha.daemon.id)).count == 2
