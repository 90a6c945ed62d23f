"""Logs a machine can read: request ids, who and what on every line, levels that match, and no secrets."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from makima_supervisor.request_log import RequestContextFilter
from supervisors.api.authentication import clear_key_cache
from supervisors.services.world import create_daemon_key, record_daemon_heartbeat
from tests.factories import make_daemon

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(autouse=True)
def _plain_http_and_fresh_keys(settings):
    settings.SECURE_SSL_REDIRECT = False
    clear_key_cache()
    yield
    clear_key_cache()


@pytest.fixture
def json_log():
    """A handler built as settings.LOGGING builds the service's (its filter, LOG_FORMAT=json), on the same loggers."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContextFilter())
    configurator = logging.config.DictConfigurator(settings.LOGGING)
    handler.setFormatter(configurator.configure_formatter(dict(settings.LOGGING["formatters"]["json"])))
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in ("django", "django.server"))]
    for logger in loggers:  # Django's loggers do not propagate to the root (settings.LOGGING)
        logger.addHandler(handler)

    class Captured:
        def text(self) -> str:
            return stream.getvalue()

        def lines(self) -> list[dict]:
            return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

        def access(self) -> list[dict]:
            return [line for line in self.lines() if line["logger"] == "makima.access"]

    yield Captured()
    for logger in loggers:
        logger.removeHandler(handler)


def daemon_client(name: str = "alpha") -> tuple[APIClient, str]:
    daemon = make_daemon(name)
    record_daemon_heartbeat(daemon.id)
    key = create_daemon_key(daemon.id, name="test").raw
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, key


def setup_supervisor(client: APIClient) -> str:
    contract = client.post("/api/v1/contracts/", {"name": "Logged", "phase": "plan"}, format="json").json()["id"]
    task = client.post("/api/v1/tasks/", {"contractId": contract, "name": "s", "isSupervisor": True}, format="json")
    assert task.status_code == 201
    body = {
        "taskId": task.json()["id"],
        "phase": "plan",
        "state": "working",
        "conversationHistory": [],
        "pendingTaskIds": [],
        "spawnedTaskIds": [],
        "pendingQuestions": [],
        "currentActivity": "planning",
        "progress": 1,
        "errorMessage": None,
    }
    assert client.put(f"/api/v1/contracts/{contract}/supervisor/", body, format="json").status_code in (200, 201)
    return contract


# --- request ids ----------------------------------------------------------------------------------


def test_every_response_carries_a_fresh_request_id(json_log):
    first, second = Client().get("/healthz"), Client().get("/healthz")
    assert len(first["X-Request-ID"]) == 32 and first["X-Request-ID"] != second["X-Request-ID"]
    assert [line["request_id"] for line in json_log.access()] == [first["X-Request-ID"], second["X-Request-ID"]]


def test_a_trusted_proxys_request_id_is_kept(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="nginx-4f2a.9:b_c-1", REMOTE_ADDR="127.0.0.1")
    assert response["X-Request-ID"] == "nginx-4f2a.9:b_c-1"


@pytest.mark.parametrize(
    "offered",
    ["x" * 129, "has space", "new\nline", 'quote"', "ünïcode", "a;b", "<script>"],
)
def test_a_malformed_request_id_is_replaced(settings, offered):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    response = Client().get("/healthz", HTTP_X_REQUEST_ID=offered, REMOTE_ADDR="127.0.0.1")
    assert response["X-Request-ID"] != offered and len(response["X-Request-ID"]) == 32


def test_a_request_id_from_an_untrusted_peer_is_replaced(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="chosen-by-the-client", REMOTE_ADDR="198.51.100.7")
    assert response["X-Request-ID"] != "chosen-by-the-client"


# --- who and what on every line -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # real commits: the save point's log line is sent on commit
def test_every_line_of_a_daemon_request_names_the_request_the_daemon_and_the_contract(json_log):
    client, _ = daemon_client("alpha")
    contract = setup_supervisor(client)
    response = client.post(
        f"/api/v1/contracts/{contract}/supervisor/phase/", {"phase": "build"}, format="json", HTTP_X_REQUEST_ID="r-1"
    )
    assert response.status_code == 200
    lines = [line for line in json_log.lines() if line["request_id"] == "r-1"]
    assert {line["logger"] for line in lines} >= {"makima.access", "supervisors.events"}, lines
    assert all(line["daemon"] == "alpha" and line["contract"] == contract for line in lines), lines
    access = next(line for line in lines if line["logger"] == "makima.access")
    assert access["method"] == "POST"
    assert access["path"] == f"/api/v1/contracts/{contract}/supervisor/phase/"
    assert access["route"] == "api/v1/contracts/<str:contractId>/supervisor/phase/"
    assert access["status"] == 200 and access["duration_ms"] >= 0
    assert access["level"] == "INFO" and "time" in access


def test_the_heartbeats_lean_path_names_the_daemon_too(json_log):
    client, _ = daemon_client("beta")
    contract = setup_supervisor(client)
    body = {"state": "working", "currentActivity": "x", "progress": 2}
    response = client.post(f"/api/v1/contracts/{contract}/supervisor/heartbeat/", body, format="json")
    assert response.status_code == 200
    access = json_log.access()[-1]
    assert (access["daemon"], access["contract"], access["status"]) == ("beta", contract, 200)


def test_a_staff_members_admin_request_names_the_user(json_log):
    user = User.objects.create_superuser("ops-person", password="pw-long-enough-1")
    client = Client()
    client.force_login(user)
    assert client.get("/admin/").status_code == 200
    assert json_log.access()[-1]["user"] == "ops-person"


def test_lines_outside_a_request_say_so(json_log):
    logging.getLogger("supervisors.test").warning("from a command")
    line = json_log.lines()[-1]
    assert (line["request_id"], line["daemon"], line["user"], line["contract"]) == ("-", "-", "-", "-")


def test_a_forged_path_cannot_forge_a_plain_log_line(caplog):
    with caplog.at_level(logging.INFO, logger="makima.access"):
        Client().get("/nope%0a2026-01-01 ERROR forged")
    (record,) = [r for r in caplog.records if r.name == "makima.access"]
    assert "\n" not in record.getMessage()


# --- levels ---------------------------------------------------------------------------------------


def test_expected_refusals_are_info_and_django_does_not_repeat_them(json_log):
    client, _ = daemon_client("alpha")
    contract = setup_supervisor(client)
    base = f"/api/v1/contracts/{contract}/supervisor/"
    assert client.get(f"/api/v1/contracts/{uuid.uuid4()}/supervisor/").status_code == 404
    assert client.patch(base, {"progress": 3}, format="json", HTTP_IF_MATCH='"stale"').status_code == 412
    assert client.patch(base, {"progress": 3}, format="json", HTTP_SUPERVISOR_EPOCH="99").status_code == 409
    assert client.patch(base, {"progress": 300}, format="json").status_code == 400
    levels = {line["status"]: line["level"] for line in json_log.access()}
    assert levels[404] == levels[409] == levels[412] == "INFO"
    assert levels[400] == "WARNING"
    assert not [line for line in json_log.lines() if line["logger"] == "django.request"]


def test_a_bug_is_an_error_with_its_traceback(json_log, monkeypatch):
    from supervisors.api.views import health

    def broken(request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(health, "JsonResponse", broken)
    assert Client(raise_request_exception=False).get("/healthz").status_code == 500
    by_logger = {line["logger"]: line for line in json_log.lines()}
    assert by_logger["makima.access"]["level"] == "ERROR"
    assert by_logger["django.request"]["level"] == "ERROR"
    assert "RuntimeError: a bug" in by_logger["django.request"]["exc_info"]
    assert "request" not in by_logger["django.request"]  # the request object (headers, cookies) is never written


def _run_with(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LOG_", "PYTEST_"))},
        "DJANGO_SETTINGS_MODULE": "makima_supervisor.test_settings",
        "ALLOWED_HOSTS": "testserver",
        "SECURE_SSL_REDIRECT": "false",
        **env,
    }
    full_env.pop("DATABASE_URL", None)  # no database needed: unknown URLs and a malformed key
    script = "import django; django.setup()\nfrom django.test import Client\n" + code
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60
    )


REFUSALS = (
    "c = Client(raise_request_exception=False)\n"
    "assert c.get('/nope').status_code == 404\n"
    "assert c.get('/api/v1/supervisors/', HTTP_AUTHORIZATION='Bearer nope').status_code == 401\n"
)


def test_log_level_error_silences_django_and_the_service_alike():
    done = _run_with({"LOG_LEVEL": "ERROR", "LOG_FORMAT": "json"}, REFUSALS)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_json_lines_on_stderr_with_the_setting():
    done = _run_with({"LOG_LEVEL": "INFO", "LOG_FORMAT": "json"}, REFUSALS)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    access = [line for line in lines if line["logger"] == "makima.access"]
    assert [(line["status"], line["level"]) for line in access] == [(404, "INFO"), (401, "WARNING")]
    assert all(line["request_id"] != "-" for line in access)
    assert not [line for line in lines if line["logger"] == "django.request"]


def test_an_unknown_log_format_is_refused_at_start_up():
    done = _run_with({"LOG_FORMAT": "xml"}, "")
    assert done.returncode != 0 and "LOG_FORMAT='xml'" in done.stderr
