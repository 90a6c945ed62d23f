"""Request counts and latencies per route pattern and status, the heartbeat's refusals and failures included."""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from supervisors.models import SupervisorState
from supervisors.services.world import create_daemon_key, record_daemon_heartbeat
from tests.factories import make_contract, make_daemon, make_supervisor
from tests.metrics.conftest import Samples

pytestmark = pytest.mark.django_db

HEARTBEAT_ROUTE = "api/v1/contracts/<str:contractId>/supervisor/heartbeat/"
BODY = json.dumps({"state": "working", "currentActivity": "coding", "progress": 7})


@pytest.fixture
def daemon_client():
    daemon = make_daemon("alpha")
    record_daemon_heartbeat(daemon.id)
    key = create_daemon_key(daemon.id, name="test").raw
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    supervisor = make_supervisor(make_contract("c"), daemon=daemon)
    return client, supervisor


def requests(samples: Samples, route: str, method: str, status: int) -> float:
    labels = (("method", method), ("route", route), ("status", str(status)))
    return samples.get(("makima_http_requests_total", labels), 0.0)


def latency_count(samples: Samples, route: str, method: str) -> float:
    return samples.get(("makima_http_request_duration_seconds_count", (("method", method), ("route", route))), 0.0)


def heartbeat(client, supervisor_or_id) -> int:
    contract = getattr(supervisor_or_id, "contract_id", supervisor_or_id)
    url = f"/api/v1/contracts/{contract}/supervisor/heartbeat/"
    return client.post(url, BODY, content_type="application/json").status_code


def test_heartbeats_are_counted_by_route_pattern_and_status(daemon_client, scrape, settings, monkeypatch):
    client, supervisor = daemon_client
    before = scrape()
    assert heartbeat(client, supervisor) == 200
    assert heartbeat(client, supervisor) == 200
    assert heartbeat(client, "11111111-1111-1111-1111-111111111111") == 404
    assert heartbeat(client, "not-a-uuid") == 404  # the raw path differs, the route does not

    from supervisors.api.views import supervisor as views

    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    def bug(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(views, "update_supervisor_heartbeat_state", database_gone)
    assert heartbeat(client, supervisor) == 503
    monkeypatch.setattr(views, "update_supervisor_heartbeat_state", bug)
    assert heartbeat(client, supervisor) == 500
    monkeypatch.undo()
    settings.API_THROTTLE_RATE_PER_MINUTE = 1
    statuses = [heartbeat(client, supervisor) for _ in range(3)]
    assert 429 in statuses
    after = scrape()

    def delta(status: int) -> float:
        return requests(after, HEARTBEAT_ROUTE, "POST", status) - requests(before, HEARTBEAT_ROUTE, "POST", status)

    assert delta(200) == 2 + statuses.count(200)
    assert delta(404) == 2
    assert delta(503) == 1
    assert delta(500) == 1
    assert delta(429) == statuses.count(429)
    total = 2 + 2 + 1 + 1 + len(statuses)
    assert latency_count(after, HEARTBEAT_ROUTE, "POST") - latency_count(before, HEARTBEAT_ROUTE, "POST") == total


def test_unknown_urls_share_one_series_and_the_admin_has_its_patterns(db, scrape):
    before = scrape()
    for path in ("/nope", "/nope/again", "/wp-login.php"):
        assert Client().get(path).status_code == 404
    assert Client().get("/admin/login/").status_code == 200
    after = scrape()
    assert requests(after, "unmatched", "GET", 404) - requests(before, "unmatched", "GET", 404) == 3
    assert requests(after, "admin/login/", "GET", 200) - requests(before, "admin/login/", "GET", 200) == 1
    assert not any("wp-login" in str(labels) for _, labels in after)


def test_counting_a_heartbeat_adds_no_query(daemon_client, settings):
    """The lean path's queries are asserted elsewhere; the metrics and the access line must add none."""
    client, supervisor = daemon_client
    assert heartbeat(client, supervisor) == 200  # the key is cached and the lease renewed from here on
    with CaptureQueriesContext(connection) as observed:
        assert heartbeat(client, supervisor) == 200
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != "makima_supervisor.request_log.RequestLogMiddleware"]
    with CaptureQueriesContext(connection) as bare:
        assert heartbeat(client, supervisor) == 200
    assert [q["sql"][:40] for q in observed.captured_queries] == [q["sql"][:40] for q in bare.captured_queries]
    assert len(observed.captured_queries) <= 2  # the throttle's counter and the UPDATE (one statement on PostgreSQL)
    assert SupervisorState.objects.get(pk=supervisor.pk).progress == 7
