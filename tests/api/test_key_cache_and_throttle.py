"""The hot path's shortcuts keep their promises: a cached key expires on time, every request is counted once."""

from __future__ import annotations

import pytest

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
