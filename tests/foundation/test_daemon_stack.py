"""Daemons' API calls take a short path (makima_supervisor.daemon_stack, .handler): nothing they relied on is skipped.

Every guard of the whole chain still answers a daemon's call (ALLOWED_HOSTS,
the body size limit, the HTTPS redirect, the request id, the database-down
503), the answers are the ones the whole chain gives (status, body, headers),
URLs resolve to the same views, and the request's database housekeeping is
Django's (a connection broken mid-way is not used again, no transaction is
left open, CONN_MAX_AGE=0 closes after the request).
"""

from __future__ import annotations

import io
import json
import re
import sys
import uuid

import pytest
from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.urls import URLPattern, get_resolver, get_urlconf

from makima_supervisor.daemon_stack import DISPATCHER, DaemonApiHandler, daemon_middleware
from makima_supervisor.handler import MakimaWSGIHandler
from supervisors.api import urls as api_urls
from supervisors.api.authentication import clear_key_cache
from supervisors.models import SupervisorState
from supervisors.services.world import create_daemon_key, record_daemon_heartbeat
from tests.factories import make_contract, make_daemon, make_supervisor

BEAT = {"state": "working", "currentActivity": "stack test", "progress": 7}


@pytest.fixture(autouse=True)
def _plain_http_and_fresh_keys(settings):
    settings.SECURE_SSL_REDIRECT = False
    clear_key_cache()
    yield
    clear_key_cache()


@pytest.fixture
def world(transactional_db):
    daemon = make_daemon("stack")
    record_daemon_heartbeat(daemon.id)
    key = create_daemon_key(daemon.id).raw
    supervisor = make_supervisor(make_contract("stack"), daemon=daemon)
    return key, supervisor


def full_handler() -> WSGIHandler:
    """Django's own handler over the whole MIDDLEWARE, without the dispatcher: the path before the daemons' stack."""
    shipped = settings.MIDDLEWARE
    settings.MIDDLEWARE = [path for path in shipped if path != DISPATCHER]
    try:
        return WSGIHandler()
    finally:
        settings.MIDDLEWARE = shipped


class Answer:
    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = int(status.split()[0])
        self.headers = {name.lower(): value for name, value in headers}
        self.body = body

    def json(self):
        return json.loads(self.body)


def call(handler, method: str, path: str, *, key: str | None, body: bytes = b"", **environ) -> Answer:
    """One request through a WSGI callable, as a server would make it."""
    base = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }
    if key is not None:
        base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    base.update(environ)
    started = []
    response = handler(base, lambda status, headers, exc_info=None: started.append((status, headers)))
    try:
        content = b"".join(response)
    finally:
        response.close()
    return Answer(*started[0], content)


def heartbeat_path(supervisor: SupervisorState) -> str:
    return f"/api/v1/contracts/{supervisor.contract_id}/supervisor/heartbeat/"


def test_every_api_route_resolves_to_what_the_root_urlconf_gives():
    handler = DaemonApiHandler(daemon_middleware(settings.MIDDLEWARE))
    root = get_resolver()
    checked = 0
    for pattern in api_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        route = str(pattern.pattern)
        for name in pattern.pattern.converters:
            route = route.replace(f"<str:{name}>", str(uuid.uuid4()))
        path = f"/api/v1/{route}"
        for _ in range(2):  # the second time from the remembered match
            request = type("Request", (), {"path_info": path})()
            ours, theirs = handler.resolve_request(request), root.resolve(path)
            assert (ours.func, ours.args, ours.kwargs, ours.route, ours.view_name) == (
                theirs.func,
                theirs.args,
                theirs.kwargs,
                theirs.route,
                theirs.view_name,
            )
            assert request.resolver_match is ours
        checked += 1
    assert checked == len(api_urls.urlpatterns) > 20


def test_a_request_changing_its_match_does_not_change_the_next_ones():
    handler = DaemonApiHandler(daemon_middleware(settings.MIDDLEWARE))
    path = f"/api/v1/contracts/{uuid.uuid4()}/supervisor/"
    first = handler.resolve_request(type("Request", (), {"path_info": path})())
    first.kwargs["contractId"] = "changed"
    second = handler.resolve_request(type("Request", (), {"path_info": path})())
    assert second.kwargs["contractId"] == path.split("/")[4]


def test_the_daemon_chain_is_the_whole_chain_without_the_browser_layers_only():
    chain = daemon_middleware(settings.MIDDLEWARE)
    assert chain == [m for m in settings.MIDDLEWARE if m in chain]  # same order
    for kept in (
        "makima_supervisor.proxy.TrustedProxyMiddleware",
        "makima_supervisor.request_log.RequestLogMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "supervisors.api.middleware.BodySizeLimitMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "supervisors.api.db_errors.DatabaseUnavailableMiddleware",
    ):
        assert kept in chain
    assert DISPATCHER not in chain
    assert settings.MIDDLEWARE[0] == DISPATCHER  # before anything else runs


TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)")


def comparable(answer: Answer) -> tuple:
    """What two answers to the same request share: all but the request id's value and the time of day."""
    headers = dict(answer.headers)
    assert len(headers.pop("x-request-id", "")) == 32
    return answer.status, headers, TIMESTAMP.sub(b"<time>", answer.body)


@pytest.mark.parametrize("handler_class", [MakimaWSGIHandler, WSGIHandler])
def test_daemon_calls_get_the_answers_the_whole_chain_gives(world, handler_class):
    """Status, body and every header (the request id's value aside), for successes and refusals alike."""
    key, supervisor = world
    lean, full = handler_class(), full_handler()
    contract = supervisor.contract_id
    beat = json.dumps(BEAT).encode()
    cases = [
        ("POST", heartbeat_path(supervisor), key, beat, {}),
        ("POST", "/api/v1/daemons/me/heartbeat/", key, b'{"status":"connected"}', {}),
        ("GET", f"/api/v1/contracts/{contract}/supervisor/", key, b"", {}),
        ("GET", f"/api/v1/contracts/{contract}/supervisor/questions/", key, b"", {}),
        ("POST", heartbeat_path(supervisor), "not-a-key", beat, {}),  # 401
        ("POST", heartbeat_path(supervisor), key, b"{not json", {}),  # 400
        ("POST", heartbeat_path(supervisor), key, beat, {"CONTENT_TYPE": "text/plain"}),  # 415
        ("POST", heartbeat_path(supervisor), key, beat, {"HTTP_ACCEPT": "text/html"}),  # 406
        ("GET", heartbeat_path(supervisor), key, b"", {}),  # 405
        ("POST", f"/api/v1/contracts/{uuid.uuid4()}/supervisor/heartbeat/", key, beat, {}),  # 404
        ("POST", "/api/v1/no-such-thing/", key, beat, {}),  # 404 from the root URLconf
        ("POST", f"/api/v1/contracts/{contract}/supervisor/heartbeat", key, beat, {}),  # no slash
        ("POST", heartbeat_path(supervisor), key, beat, {"HTTP_HOST": "evil.example"}),  # 400 DisallowedHost
    ]
    for method, path, case_key, body, extra in cases:
        ours = call(lean, method, path, key=case_key, body=body, **extra)
        theirs = call(full, method, path, key=case_key, body=body, **extra)
        assert comparable(ours) == comparable(theirs), (method, path, extra)
    assert {call(lean, *case[:2], key=case[2], body=case[3], **case[4]).status for case in cases} >= {
        200,
        400,
        401,
        404,
        405,
        406,
        415,
    }


def test_a_bad_host_is_refused_on_a_daemon_call(world):
    key, supervisor = world
    answer = call(
        MakimaWSGIHandler(), "POST", heartbeat_path(supervisor), key=key, body=b"{}", HTTP_HOST="evil.example"
    )
    assert answer.status == 400
    assert len(answer.headers["x-request-id"]) == 32


def test_an_oversized_body_is_refused_on_a_daemon_call(world, settings):
    key, supervisor = world
    body = json.dumps({**BEAT, "currentActivity": "x" * (settings.API_MAX_BODY_BYTES + 1)}).encode()
    answer = call(MakimaWSGIHandler(), "POST", heartbeat_path(supervisor), key=key, body=body)
    assert answer.status == 413
    assert answer.json()["code"] == "body_too_large"
    assert len(answer.headers["x-request-id"]) == 32
    supervisor.refresh_from_db()
    assert supervisor.current_activity != BEAT["currentActivity"]


def test_https_redirect_applies_to_daemon_calls(world, settings):
    settings.SECURE_SSL_REDIRECT = True
    key, supervisor = world
    answer = call(MakimaWSGIHandler(), "POST", heartbeat_path(supervisor), key=key, body=json.dumps(BEAT).encode())
    assert answer.status == 301
    assert answer.headers["location"] == f"https://testserver{heartbeat_path(supervisor)}"
    assert answer.headers["x-request-id"]


def test_a_trusted_proxys_request_id_comes_back_on_a_daemon_call(world, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    key, supervisor = world
    answer = call(
        MakimaWSGIHandler(),
        "POST",
        heartbeat_path(supervisor),
        key=key,
        body=json.dumps(BEAT).encode(),
        HTTP_X_REQUEST_ID="proxy-id-1",
    )
    assert answer.status == 200
    assert answer.headers["x-request-id"] == "proxy-id-1"


def test_the_work_of_the_request_signals_is_done(world, settings):
    """CONN_MAX_AGE=0: the connection is closed after the request; the thread's URLconf is reset."""
    key, supervisor = world
    handler = MakimaWSGIHandler()
    connection.settings_dict["CONN_MAX_AGE"], kept = 0, connection.settings_dict["CONN_MAX_AGE"]
    try:
        connection.ensure_connection()
        connection.close_at = 0  # as Django sets it on connecting with CONN_MAX_AGE=0
        answer = call(handler, "POST", heartbeat_path(supervisor), key=key, body=json.dumps(BEAT).encode())
        assert answer.status == 200
        if connection.vendor != "sqlite" or not connection.is_in_memory_db():  # Django never closes those
            assert connection.connection is None  # closed on the way out, as request_finished does
        assert get_urlconf() is None
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = kept


def test_other_listeners_still_hear_the_signals(world):
    key, supervisor = world
    heard = []

    def started(sender, **kwargs):
        heard.append("started")

    def finished(sender, **kwargs):
        heard.append("finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        answer = call(MakimaWSGIHandler(), "POST", heartbeat_path(supervisor), key=key, body=json.dumps(BEAT).encode())
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert answer.status == 200
    assert heard == ["started", "finished"]


@pytest.mark.postgres_only
def test_a_connection_killed_between_calls_is_a_503_then_is_not_used_again(world, settings):
    """With persistent connections: the call that finds its connection dead answers 503 and drops it; the next works."""
    import psycopg

    if settings.DATABASE_POOLER:
        pytest.skip("behind a pooler the killed backend is the pooler's; the client connection stays up")
    key, supervisor = world
    handler = MakimaWSGIHandler()
    connection.settings_dict["CONN_MAX_AGE"], kept = 60, connection.settings_dict["CONN_MAX_AGE"]
    beat = json.dumps(BEAT).encode()
    try:
        connection.close()
        assert call(handler, "POST", heartbeat_path(supervisor), key=key, body=beat).status == 200
        pid = connection.connection.info.backend_pid
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        with psycopg.connect(**params, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])
        answer = call(handler, "POST", heartbeat_path(supervisor), key=key, body=beat)
        assert answer.status == 503, answer.body
        assert answer.json()["code"] == "database_unavailable"
        assert answer.headers["retry-after"] and answer.headers["x-request-id"]
        assert connection.connection is None  # dropped on the way out, never reused
        again = call(handler, "POST", heartbeat_path(supervisor), key=key, body=beat)
        assert again.status == 200
        assert connection.connection.info.backend_pid != pid
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = kept


@pytest.mark.postgres_only
def test_no_transaction_is_left_open_after_daemon_calls(world, settings):
    """Successes and refusals from inside the services' transactions alike leave the connection idle."""
    from psycopg.pq import TransactionStatus

    key, supervisor = world
    handler = MakimaWSGIHandler()
    connection.settings_dict["CONN_MAX_AGE"], kept = 60, connection.settings_dict["CONN_MAX_AGE"]
    contract = supervisor.contract_id
    try:
        calls = [
            ("POST", heartbeat_path(supervisor), json.dumps(BEAT).encode(), 200),
            ("POST", f"/api/v1/contracts/{contract}/supervisor/phase/", b'{"phase":"execute"}', 200),
            (
                "POST",
                f"/api/v1/contracts/{contract}/supervisor/spawned-tasks/",
                b'{"taskId":"%s"}' % str(uuid.uuid4()).encode(),
                409,
            ),
            (
                "POST",
                f"/api/v1/contracts/{contract}/supervisor/resume/",
                b'{"source":"daemon_restart","reason":"t"}',
                200,
            ),
        ]
        for method, path, body, status in calls:
            answer = call(handler, method, path, key=key, body=body)
            assert answer.status == status, (path, answer.body)
            assert connection.connection is not None
            assert connection.get_autocommit() and not connection.in_atomic_block
            assert connection.connection.info.transaction_status == TransactionStatus.IDLE
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = kept
