"""Keys, secrets and conversation content never reach the logs, whatever a full day of requests does."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from makima_supervisor.request_log import RequestContextFilter
from supervisors.api.authentication import clear_key_cache
from supervisors.services.world import create_daemon_key, record_daemon_heartbeat
from tests.factories import make_daemon

CONVERSATION = "the launch code is ZEBRA-7731"
QUESTION = "Should I deploy PELICAN-2218 tonight?"
CONTEXT = "context about OSPREY-5521"
ANSWER = "yes, deploy HERON-9904"
METRICS_TOKEN = "metrics-token-KESTREL-3307"


@pytest.fixture
def everything_logged(settings):
    """Every log line of every logger at DEBUG, in both formats, through handlers built as settings.LOGGING's."""
    settings.SECURE_SSL_REDIRECT = False
    clear_key_cache()
    configurator = logging.config.DictConfigurator(settings.LOGGING)
    streams = []
    handlers = []
    for name in ("plain", "json"):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(RequestContextFilter())
        handler.setFormatter(configurator.configure_formatter(dict(settings.LOGGING["formatters"][name])))
        streams.append(stream)
        handlers.append(handler)
    loggers = [logging.getLogger(name) for name in ("", "django", "django.server")]
    levelled = [*loggers, *(logging.getLogger(name) for name in ("django.request", "axes", "supervisors"))]
    old_levels = [logger.level for logger in levelled]
    for logger in levelled:
        logger.setLevel(logging.DEBUG)
    for logger in loggers:
        for handler in handlers:
            logger.addHandler(handler)
    yield lambda: "\n".join(stream.getvalue() for stream in streams)
    for logger in loggers:
        for handler in handlers:
            logger.removeHandler(handler)
    for logger, level in zip(levelled, old_levels, strict=True):
        logger.setLevel(level)
    clear_key_cache()


@pytest.mark.django_db(transaction=True)  # real commits: lines sent on commit are in the capture too
def test_a_full_scenario_logs_no_key_secret_or_conversation(everything_logged, settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    daemon = make_daemon("alpha")
    record_daemon_heartbeat(daemon.id)
    key = create_daemon_key(daemon.id, name="test").raw
    wrong_key = key[:-6] + "WRONG1"
    api = APIClient(raise_request_exception=False)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    staff_user = User.objects.create_superuser("ops", password="a-long-admin-password-GANNET-1")
    staff = APIClient(raise_request_exception=False)
    staff.force_login(staff_user)
    session_key = staff.cookies[settings.SESSION_COOKIE_NAME].value

    # create, save with a conversation, ask, answer, heartbeat, resume
    contract = api.post("/api/v1/contracts/", {"name": "Secretive", "phase": "plan"}, format="json").json()["id"]
    task = api.post("/api/v1/tasks/", {"contractId": contract, "name": "s", "isSupervisor": True}, format="json")
    base = f"/api/v1/contracts/{contract}/supervisor/"
    history = [{"role": "user", "content": CONVERSATION}, {"role": "assistant", "content": CONVERSATION[::-1]}]
    state = {
        "taskId": task.json()["id"],
        "phase": "plan",
        "state": "working",
        "conversationHistory": history,
        "pendingTaskIds": [],
        "spawnedTaskIds": [],
        "pendingQuestions": [],
        "currentActivity": "planning",
        "progress": 1,
        "errorMessage": None,
    }
    assert api.put(base, state, format="json").status_code in (200, 201)
    asked = api.post(base + "questions/", {"question": QUESTION, "choices": ["yes"], "context": CONTEXT}, format="json")
    assert asked.status_code in (200, 201), asked.content
    question_id = asked.json()["question"]["id"]
    assert staff.post(base + f"questions/{question_id}/answer/", {"answer": ANSWER}, format="json").status_code == 200
    beat = {"state": "waiting_for_user", "currentActivity": "waiting", "progress": 2}
    assert api.post(base + "heartbeat/", beat, format="json").status_code == 200
    resumed = api.post(base + "resume/", {"source": "daemon_restart"}, format="json")
    assert resumed.status_code == 200 and CONVERSATION in resumed.content.decode()
    assert api.get(base + "?include=conversationHistory").status_code == 200

    # errors: a wrong key, bad bodies that carry conversation text, a fenced write, a bug
    wrong = APIClient(raise_request_exception=False)
    wrong.credentials(HTTP_AUTHORIZATION=f"Bearer {wrong_key}")
    assert wrong.post(base + "heartbeat/", beat, format="json").status_code == 401
    bad_history = {"conversationHistory": [{"role": 7, "content": CONVERSATION}]}
    assert api.patch(base, bad_history, format="json").status_code == 400
    assert api.patch(base, {"conversationHistory": CONVERSATION}, format="json").status_code == 400
    nul = '{"conversationHistory": [{"role": "user", "content": "' + CONVERSATION + '\\u0000"}]}'
    assert api.generic("PATCH", base, nul, content_type="application/json").status_code == 400
    assert api.generic("PUT", base, '{"conversationHistory": [' + CONVERSATION, "application/json").status_code == 400
    assert api.patch(base, {"progress": 3}, format="json", HTTP_SUPERVISOR_EPOCH="99").status_code == 409
    assert staff.post(base + f"questions/{question_id}/answer/", {"answer": ANSWER}, format="json").status_code in (
        404,
        409,
    )
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 200
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}x").status_code == 401
    failing = Client(raise_request_exception=False)
    login = failing.post("/admin/login/", {"username": "ops", "password": "wrong-GANNET-2", "next": "/admin/"})
    assert login.status_code == 200

    logged = everything_logged()
    assert "makima.access" in logged and contract in logged  # the capture did see the scenario
    assert len([line for line in logged.splitlines() if line.startswith("{")]) > 20
    for secret in (
        key,
        # The key's secret part alone: what follows "mks_<prefix>_". Not the text after the last "_": the
        # secret is URL-safe base64, which has "_" itself, and a fragment of two characters after it would
        # be found in any log (this test failed once that way).
        key.split("_", 2)[2],
        wrong_key.split("_", 2)[2],
        session_key,
        METRICS_TOKEN,
        "GANNET",  # passwords, right and wrong
        "ZEBRA-7731",
        "1377-ARBEZ",
        "PELICAN-2218",
        "OSPREY-5521",
        "HERON-9904",
    ):
        assert secret not in logged, f"{secret!r} was logged"
    for line in logged.splitlines():
        if line.startswith("{"):
            json.loads(line)  # every JSON line is one whole JSON object
