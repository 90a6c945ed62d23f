"""Who may call the API: daemon keys (hashed, revocable), staff sessions with permissions, scoping."""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.test import APIClient

from supervisors.api.authentication import clear_key_cache
from supervisors.models import DaemonApiKey
from supervisors.services.world import revoke_daemon_key
from tests.api.conftest import staff_client, url

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "fields"}
    if code is not None:
        assert body["code"] == code
    return body


def test_no_key_is_401_with_bearer_challenge(anonymous, supervisor):
    response = anonymous.get(url(supervisor.contract_id))
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer mks_nope_nope", "Bearer", "Bearer a b", "Bearer not-a-key"])
def test_wrong_key_is_401(supervisor, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_error(client.get(url(supervisor.contract_id)), 401, "not_authenticated")


def test_revoked_key_is_401_once_the_cache_expires(alpha, supervisor, settings):
    assert alpha.client.get(url(supervisor.contract_id)).status_code == 200
    key = DaemonApiKey.objects.get(daemon=alpha.daemon)
    revoke_daemon_key(key.id)
    clear_key_cache()  # what API_KEY_CACHE_SECONDS does after at most that many seconds
    assert_error(alpha.client.get(url(supervisor.contract_id)), 401)


def test_revoked_key_is_refused_at_once_without_cache(alpha, supervisor, settings):
    settings.API_KEY_CACHE_SECONDS = 0
    assert alpha.client.get(url(supervisor.contract_id)).status_code == 200
    revoke_daemon_key(DaemonApiKey.objects.get(daemon=alpha.daemon).id)
    assert_error(alpha.client.get(url(supervisor.contract_id)), 401)


def test_key_is_stored_hashed_and_use_is_recorded(alpha, supervisor):
    key = DaemonApiKey.objects.get(daemon=alpha.daemon)
    assert key.key_hash == hashlib.sha256(alpha.key.encode()).hexdigest()
    assert alpha.key not in {key.key_hash, key.prefix, key.name}
    assert alpha.key.startswith(f"mks_{key.prefix}_")
    alpha.client.get(url(supervisor.contract_id))
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_another_daemons_supervisor_is_404_everywhere(alpha, other_supervisor):
    contract = other_supervisor.contract_id
    body = {"state": "working", "progress": 1}
    assert_error(alpha.client.get(url(contract)), 404, "not_found")
    assert_error(alpha.client.post(url(contract, "heartbeat/"), body, format="json"), 404)
    assert_error(alpha.client.patch(url(contract), {"progress": 3}, format="json"), 404)
    assert_error(alpha.client.get(url(contract, "questions/")), 404)
    assert_error(alpha.client.get(url(contract, "answers/")), 404)
    assert_error(alpha.client.get(url(contract, "validation/")), 404)
    assert_error(alpha.client.post(url(contract, "resume/"), {"source": "daemon_restart"}, format="json"), 404)
    other_supervisor.refresh_from_db()
    assert other_supervisor.progress == 0


def test_daemon_lists_only_its_supervisors(alpha, supervisor, other_supervisor):
    response = alpha.client.get("/api/v1/supervisors/")
    assert response.status_code == 200
    assert [row["contractId"] for row in response.json()] == [str(supervisor.contract_id)]


def test_staff_with_permission_sees_every_supervisor(supervisor, other_supervisor):
    client = staff_client("supervisors.view_supervisorstate")
    assert client.get(url(other_supervisor.contract_id)).status_code == 200
    assert len(client.get("/api/v1/supervisors/").json()) == 2


def test_staff_needs_the_django_permission(supervisor):
    viewer = staff_client("supervisors.view_supervisorstate")
    assert viewer.get(url(supervisor.contract_id)).status_code == 200
    assert_error(viewer.patch(url(supervisor.contract_id), {"progress": 5}, format="json"), 403)
    assert_error(viewer.post(url(supervisor.contract_id, "resume/"), {"source": "manual"}, format="json"), 403)


def test_non_staff_user_is_refused(supervisor):
    user = User.objects.create_user("plain", password="x")
    client = APIClient()
    client.force_login(user)
    assert client.get(url(supervisor.contract_id)).status_code == 403


def test_create_daemon_key_command_prints_the_key_once(alpha, supervisor):
    out, err = StringIO(), StringIO()
    call_command("create_daemon_key", "alpha", "--name", "laptop", stdout=out, stderr=err)
    raw = out.getvalue().strip()
    stored = DaemonApiKey.objects.get(name="laptop")
    assert stored.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(url(supervisor.contract_id)).status_code == 200
    call_command("create_daemon_key", "--revoke", str(stored.id), stdout=StringIO(), stderr=StringIO())
    clear_key_cache()
    assert client.get(url(supervisor.contract_id)).status_code == 401


def test_create_daemon_key_can_create_the_daemon(db):
    out = StringIO()
    call_command("create_daemon_key", "gamma", "--create-daemon", stdout=out, stderr=StringIO())
    assert DaemonApiKey.objects.get(daemon__name="gamma")
    assert out.getvalue().startswith("mks_")
