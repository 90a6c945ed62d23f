"""Daemons' Bearer calls to /api/v1/ step over the browser-only middleware; nobody else does."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.api.conftest import url

pytestmark = pytest.mark.django_db

BODY = {"state": "working", "progress": 3}


def test_a_daemon_call_runs_without_session_user_or_messages(alpha, supervisor):
    response = alpha.client.post(url(supervisor.contract_id, "heartbeat/"), BODY, format="json")
    assert response.status_code == 200, response.content
    request = response.wsgi_request
    assert not hasattr(request, "session") and not hasattr(request, "_messages")
    assert not response.cookies  # no session, no CSRF, no messages cookie
    assert response["X-Frame-Options"] == "DENY"  # the security layers still ran
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_wrong_key_is_still_a_401_without_the_session_layer(anonymous, supervisor):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer mks_wrong_key")
    response = anonymous.get(url(supervisor.contract_id))
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_staff_on_the_api_still_go_through_the_session(staff, supervisor):
    response = staff.get(url(supervisor.contract_id))
    assert response.status_code == 200, response.content
    assert response.wsgi_request.user.is_staff
    assert hasattr(response.wsgi_request, "session")


def test_a_bearer_header_outside_the_api_changes_nothing(client):
    response = client.get("/admin/", HTTP_AUTHORIZATION="Bearer mks_any_key")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert hasattr(response.wsgi_request, "session") and hasattr(response.wsgi_request, "user")


def test_health_probes_step_over_the_browser_layers_and_other_methods_do_not(client):
    """A balancer's GET /healthz takes the daemons' short chain; a POST to it is answered as before (CSRF's 403)."""
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 200, response.content
        assert not hasattr(response.wsgi_request, "session") and not hasattr(response.wsgi_request, "user")
        assert not response.cookies
        assert response["X-Frame-Options"] == "DENY" and response["X-Content-Type-Options"] == "nosniff"
        assert "no-cache" in response["Cache-Control"]
    posted = Client(enforce_csrf_checks=True).post("/healthz")
    assert posted.status_code == 403
    assert hasattr(posted.wsgi_request, "session")
