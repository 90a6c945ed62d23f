"""Hostile input against every endpoint: each answer a 4xx in the JSON error shape, and nothing written."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from supervisors.models import (
    Contract,
    ConversationSnapshot,
    Daemon,
    IdempotencyKey,
    QuestionAnswer,
    RestorationLog,
    SupervisorCheckpoint,
    SupervisorState,
    Task,
)
from supervisors.services.questions import add_supervisor_pending_question
from supervisors.services.world import create_daemon_key, record_daemon_heartbeat
from tests.factories import make_contract, make_daemon, make_question, make_supervisor, make_task

from .hostile import DEEP, DEEP_OBJECT, DENSE_NUMBERS, HTML, MILLION_MESSAGES, SQL, Case, corpus

#: Every table a request could write to. API key last-use stamps and rate counters are bookkeeping of the
#: request itself, not data, and are left out.
WATCHED = [
    SupervisorState,
    Contract,
    Task,
    Daemon,
    SupervisorCheckpoint,
    ConversationSnapshot,
    QuestionAnswer,
    RestorationLog,
    IdempotencyKey,
]


#: A daemon's lease: any authenticated request renews it, whatever the answer (the daemon is alive).
LEASE_COLUMNS = {"Daemon": ("last_heartbeat_at", "status")}


def snapshot() -> dict[str, list[dict]]:
    rows = {model.__name__: list(model.objects.order_by("pk").values()) for model in WATCHED}
    for name, columns in LEASE_COLUMNS.items():
        for row in rows[name]:
            for column in columns:
                row.pop(column)
    return rows


@pytest.fixture
def world(db):
    daemon = make_daemon("hostile")
    record_daemon_heartbeat(daemon.id)
    key = create_daemon_key(daemon.id).raw
    supervisor = make_supervisor(make_contract("target"), daemon=daemon, state="working")
    task = make_task(supervisor.contract, name="spawned", daemon=daemon)
    question = make_question()
    add_supervisor_pending_question(supervisor.contract_id, question)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, corpus(supervisor.contract_id, question["id"], task.id)


def send(client: Client, case: Case):
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in case.headers.items()}
    if "Authorization" in case.headers:
        extra["HTTP_AUTHORIZATION"] = case.headers["Authorization"]
    payload = case.payload()
    if payload is None:
        return client.generic(case.method, case.path, **extra)
    return client.generic(case.method, case.path, payload, content_type=case.content_type, **extra)


def shape_problem(response) -> str | None:
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}"
    if not response.get("Content-Type", "").startswith("application/json"):
        return f"{response.status_code} with Content-Type {response.get('Content-Type')!r}"
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} with a body that is not JSON"
    if not (isinstance(body, dict) and set(body) == {"code", "message", "fields"}):
        return f"{response.status_code} outside the error shape: {str(body)[:200]}"
    if not (isinstance(body["code"], str) and isinstance(body["message"], str) and isinstance(body["fields"], dict)):
        return f"{response.status_code} with wrongly typed error members: {str(body)[:200]}"
    if not all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in body["fields"].values()):
        return f"{response.status_code} with fields not lists of strings: {str(body['fields'])[:200]}"
    return None


def test_every_hostile_request_gets_a_4xx_in_the_error_shape_and_writes_nothing(world, settings):
    settings.SECURE_SSL_REDIRECT = False
    settings.API_THROTTLE_RATE_PER_MINUTE = 0  # hundreds of requests in a second: not what is tested here
    client, cases = world
    assert len(cases) > 500
    baseline = snapshot()
    problems = []
    for case in cases:
        if problem := misbehaviour(client, case, baseline):
            problems.append(problem)
            baseline = snapshot()
    assert not problems, f"{len(problems)} of {len(cases)} hostile requests misbehaved:\n" + "\n".join(problems)


def misbehaviour(client: Client, case: Case, before: dict | None = None) -> str | None:
    """What is wrong with the answer to ``case``, or None; ``before`` is the tables' contents beforehand."""
    before = before if before is not None else snapshot()
    try:
        response = send(client, case)
    except Exception as exc:  # the test client re-raises what would be a 500
        return f"{case.name}: raised {type(exc).__name__}: {str(exc)[:200]}"
    if (problem := shape_problem(response)) is not None:
        return f"{case.name}: {problem}"
    if snapshot() != before:
        return f"{case.name}: answered {response.status_code} but wrote to the database"
    return None


def test_deeply_nested_json_is_a_400_naming_the_nesting(world, settings):
    """json.loads raises RecursionError on 100,000 brackets: that is the client's mistake, not a 500."""
    settings.SECURE_SSL_REDIRECT = False
    client, _cases = world
    supervisor = SupervisorState.objects.get()
    for raw in (DEEP, DEEP_OBJECT):
        response = client.patch(
            f"/api/v1/contracts/{supervisor.contract_id}/supervisor/", raw, content_type="application/json"
        )
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "parse_error"
        assert "nested too deeply" in response.json()["message"]


def test_sql_and_html_in_free_text_are_stored_verbatim_and_harm_nothing(world, settings):
    """Where text is allowed, SQL and HTML are just text: stored and returned as sent, no table dropped."""
    settings.SECURE_SSL_REDIRECT = False
    client, _cases = world
    supervisor = SupervisorState.objects.get()
    text = f"{SQL} {HTML} \u202e\ufeff 続け"
    response = client.patch(
        f"/api/v1/contracts/{supervisor.contract_id}/supervisor/",
        {"currentActivity": text, "conversationHistory": [{"role": HTML, "content": SQL}]},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    supervisor.refresh_from_db()
    assert supervisor.current_activity == text
    assert supervisor.conversation_history == [{"role": HTML, "content": SQL}]
    assert Contract.objects.count() == 1 and SupervisorState.objects.count() == 1


def test_errors_for_huge_arrays_stay_small(world, settings):
    settings.SECURE_SSL_REDIRECT = False
    client, _cases = world
    supervisor = SupervisorState.objects.get()
    body = {"spawnedTaskIds": list(range(100_000))}
    case = Case(
        "PATCH spawnedTaskIds 100,000 numbers", "PATCH", f"/api/v1/contracts/{supervisor.contract_id}/supervisor/", body
    )
    response = send(client, case)
    assert response.status_code == 400
    assert len(response.content) < len(case.payload()), (
        f"a {len(case.payload())} byte request got a {len(response.content)} byte answer"
    )


def test_a_lone_surrogate_is_a_400_naming_where_it_is_and_a_surrogate_pair_is_just_text(world, settings):
    """``"\\ud800"`` parses in Python but is not Unicode: named by its path, never echoed, never stored."""
    settings.SECURE_SSL_REDIRECT = False
    client, _cases = world
    supervisor = SupervisorState.objects.get()
    url = f"/api/v1/contracts/{supervisor.contract_id}/supervisor/"
    history = [{"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "text", "text": "a\ud800"}]}]
    response = client.patch(url, json.dumps({"conversationHistory": history}), content_type="application/json")
    assert response.status_code == 400, response.content
    assert list(response.json()["fields"]) == ["conversationHistory.0.content.1.text"]
    assert "surrogate" in response.json()["message"]
    response = client.patch(url, b'{"currentActivity": "x", "\\udc00": 1}', content_type="application/json")
    assert response.status_code == 400 and "surrogate" in response.json()["message"]
    supervisor.refresh_from_db()
    assert supervisor.current_activity != "x"

    emoji = "done \U0001f600"  # json.dumps escapes it as the pair \\ud83d\\ude00
    response = client.patch(url, json.dumps({"currentActivity": emoji}), content_type="application/json")
    assert response.status_code == 200, response.content
    supervisor.refresh_from_db()
    assert supervisor.current_activity == emoji


def test_a_million_message_conversation_is_refused_before_parsing(world, settings):
    """20 times SUPERVISOR_MAX_CONVERSATION_MESSAGES in 30 MB: 2,000,000 values, a 413 from the count alone."""
    settings.SECURE_SSL_REDIRECT = False
    client, _cases = world
    supervisor = SupervisorState.objects.get()
    url = f"/api/v1/contracts/{supervisor.contract_id}/supervisor/"
    started = time.process_time()
    response = client.patch(url, MILLION_MESSAGES, content_type="application/json")
    spent = time.process_time() - started
    assert response.status_code == 413, response.content[:500]
    assert response.json()["code"] == "body_too_large" and len(response.content) < 1000
    assert spent < 1, f"{spent:.1f} s of CPU to refuse it"


def test_one_message_over_the_limit_is_a_400_naming_conversation_history(world, settings):
    settings.SECURE_SSL_REDIRECT = False
    client, _cases = world
    supervisor = SupervisorState.objects.get()
    url = f"/api/v1/contracts/{supervisor.contract_id}/supervisor/"
    body = json.dumps({"conversationHistory": [{"role": "u"}] * 50_001})
    response = client.patch(url, body, content_type="application/json")
    assert response.status_code == 400, response.content[:500]
    assert list(response.json()["fields"]) == ["conversationHistory"]
    assert "at most 50000 messages, not 50001" in response.json()["message"]
    supervisor.refresh_from_db()
    assert supervisor.conversation_history != [{"role": "u"}] * 50_001


def test_the_message_limit_is_a_setting(world, settings):
    settings.SECURE_SSL_REDIRECT = False
    settings.SUPERVISOR_MAX_CONVERSATION_MESSAGES = 3
    client, _cases = world
    supervisor = SupervisorState.objects.get()
    url = f"/api/v1/contracts/{supervisor.contract_id}/supervisor/"
    history = [{"role": "user", "content": str(i)} for i in range(4)]
    response = client.patch(url, {"conversationHistory": history}, content_type="application/json")
    assert response.status_code == 400 and "at most 3 messages, not 4" in response.json()["message"]
    response = client.patch(url, {"conversationHistory": history[:3]}, content_type="application/json")
    assert response.status_code == 200, response.content
    supervisor.refresh_from_db()
    assert supervisor.conversation_history == history[:3]


def test_a_body_of_too_many_values_is_a_413_before_parsing_and_commas_in_text_do_not_count(world, settings):
    """Bytes alone do not bound the CPU a body costs; the number of JSON values does (API_MAX_JSON_VALUES)."""
    settings.SECURE_SSL_REDIRECT = False
    client, _cases = world
    supervisor = SupervisorState.objects.get()
    url = f"/api/v1/contracts/{supervisor.contract_id}/supervisor/"
    started = time.process_time()
    response = client.patch(url, DENSE_NUMBERS, content_type="application/json")
    assert time.process_time() - started < 1
    assert response.status_code == 413, response.content[:500]
    assert response.json()["code"] == "body_too_large" and "API_MAX_JSON_VALUES" in response.json()["message"]

    settings.API_MAX_JSON_VALUES = 10
    prose = [{"role": "user", "content": 'a, b, c, d, e, f, g, h, i, j, k, l, \\", m, n'}]
    response = client.patch(url, json.dumps({"conversationHistory": prose}), content_type="application/json")
    assert response.status_code == 200, response.content
    many = [{"role": "user", "n": i} for i in range(6)]
    response = client.patch(url, json.dumps({"conversationHistory": many}), content_type="application/json")
    assert response.status_code == 413
    supervisor.refresh_from_db()
    assert supervisor.conversation_history == prose


#: "A few kB": an error names at most MAX_REPORTED_ERRORS elements and never echoes a huge value.
MAX_ERROR_BODY_BYTES = 4096


def test_every_error_body_stays_within_a_few_kilobytes(world, settings):
    settings.SECURE_SSL_REDIRECT = False
    settings.API_THROTTLE_RATE_PER_MINUTE = 0
    client, cases = world
    large = []
    for case in cases:
        response = send(client, case)
        if response.status_code >= 400 and len(response.content) > MAX_ERROR_BODY_BYTES:
            large.append(f"{case.name}: {len(response.content)} bytes")
    assert not large, f"{len(large)} error bodies over {MAX_ERROR_BODY_BYTES} bytes:\n" + "\n".join(large)
