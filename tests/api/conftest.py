"""Fixtures of the API tests: daemons with keys, their supervisors, staff users, clients."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Permission, User
from django.test.client import Client as DjangoClient
from rest_framework.test import APIClient

from supervisors.api.authentication import clear_key_cache
from supervisors.models import Daemon, SupervisorState
from supervisors.services.world import create_daemon_key, record_daemon_heartbeat
from tests.api.contract import check_response
from tests.factories import make_contract, make_daemon, make_supervisor


@dataclass
class DaemonWithKey:
    daemon: Daemon
    key: str
    client: APIClient


def _client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _daemon(name: str) -> DaemonWithKey:
    daemon = make_daemon(name)
    record_daemon_heartbeat(daemon.id)
    issued = create_daemon_key(daemon.id, name="test")
    return DaemonWithKey(daemon=daemon, key=issued.raw, client=_client_for(issued.raw))


@pytest.fixture(autouse=True)
def _plain_http(settings):
    """The test client speaks plain HTTP; production redirects it to HTTPS."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def _responses_match_the_schema(monkeypatch):
    """Every API response a test gets through a test client is checked against the OpenAPI schema.

    An undeclared key, a type the schema does not allow or an unlisted status fails the test
    (tests/api/contract.py; tests/api/test_contract.py shows the check can fail).
    """
    request = DjangoClient.request

    def checked(self, *args, **kwargs):
        response = request(self, *args, **kwargs)
        check_response(response)
        return response

    monkeypatch.setattr(DjangoClient, "request", checked)


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    clear_key_cache()
    yield
    clear_key_cache()


@pytest.fixture
def alpha(db) -> DaemonWithKey:
    return _daemon("alpha")


@pytest.fixture
def beta(db) -> DaemonWithKey:
    return _daemon("beta")


@pytest.fixture
def supervisor(alpha) -> SupervisorState:
    """A supervisor whose task runs on daemon alpha."""
    return make_supervisor(make_contract("Alpha contract"), daemon=alpha.daemon)


@pytest.fixture
def other_supervisor(beta) -> SupervisorState:
    """A supervisor whose task runs on daemon beta."""
    return make_supervisor(make_contract("Beta contract"), daemon=beta.daemon)


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


def staff_client(*perms: str) -> APIClient:
    user = User.objects.create_user("staff-" + "-".join(perms)[:100] or "staff", password="x", is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def staff(db) -> APIClient:
    """A staff user who may do everything the API offers staff."""
    return staff_client(
        "supervisors.view_supervisorstate",
        "supervisors.change_supervisorstate",
        "supervisors.add_supervisorstate",
        "supervisors.restore_supervisor",
        "supervisors.answer_question",
        "supervisors.add_contract",
        "supervisors.view_contract",
        "supervisors.add_task",
        "supervisors.view_task",
        "supervisors.change_task",
    )


@pytest.fixture
def live_api(transactional_db, tmp_path):
    """The service as shipped (the Procfile's web: command) in a child process, on this test's (committed) database."""
    from tests.api.live import start_live_api

    yield from start_live_api(tmp_path / "server.log")


def url(contract_id, tail: str = "") -> str:
    return f"/api/v1/contracts/{contract_id}/supervisor/{tail}"
