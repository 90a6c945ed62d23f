"""The shipped server answers as the WSGI test client does: statuses, bodies and headers, endpoint by endpoint.

Every test suite but this one talks to Django in-process; this one sends the
same requests to the server a deployment runs (the Procfile's web: command,
production settings) over a real socket and compares. What may differ is only
what a server adds or what changes per request: Date, Server, Connection,
X-Request-Id, Expires, the body's framing (Content-Length or chunked), the
CSRF token and the cookies' values, and static files' hashed names (the test
client finds static files unhashed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import Client

from supervisors.services.world import create_daemon_key, record_daemon_heartbeat
from tests.factories import make_contract, make_daemon, make_supervisor

from .conftest import BODY_LIMIT, Reply, connect, exchange, raw_request

VOLATILE_HEADERS = {"date", "server", "connection", "keep-alive", "x-request-id", "expires", "set-cookie"}
#: How the body is framed on the wire (Content-Length, or chunked when the response did not set one): the
#: server's business; the bodies are compared whole.
FRAMING_HEADERS = {"content-length", "transfer-encoding"}
HASHED_NAME = re.compile(rb"\.[0-9a-f]{12}(\.[a-z0-9]+)")
CSRF_VALUE = re.compile(rb'(name="csrfmiddlewaretoken" value=")[^"]+')


def comparable_body(body: bytes) -> bytes:
    return CSRF_VALUE.sub(rb"\1", HASHED_NAME.sub(rb"\1", body))


def comparable_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in VOLATILE_HEADERS | FRAMING_HEADERS}


def cookie_names(set_cookie: str) -> set[str]:
    return {part.split("=", 1)[0].strip() for part in re.split(r",\s*(?=[A-Za-z_]+=)", set_cookie) if "=" in part}


def in_process(method: str, path: str, body: bytes, headers: dict[str, str]) -> Reply:
    """The same request through Django's test client (WSGI in-process)."""
    meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    meta["HTTP_HOST"] = "127.0.0.1"
    if "HTTP_CONTENT_TYPE" in meta:
        meta["CONTENT_TYPE"] = meta.pop("HTTP_CONTENT_TYPE")
    if body or method in ("POST", "PUT", "PATCH"):
        meta["CONTENT_LENGTH"] = str(len(body))
    client = Client()
    response = client.generic(method, path, data=body, content_type=meta.pop("CONTENT_TYPE", ""), **meta)
    reply_headers = {name.lower(): value for name, value in response.headers.items()}
    cookies = response.cookies.output(header="", sep=",").strip()
    if cookies:
        reply_headers["set-cookie"] = cookies
    return Reply(response.status_code, reply_headers, response.content, True)


@pytest.fixture
def world():
    daemon = make_daemon("compared")
    record_daemon_heartbeat(daemon.id)
    key = create_daemon_key(daemon.id).raw
    supervisor = make_supervisor(make_contract("compared work"), daemon=daemon)
    return {"key": key, "beat": f"/api/v1/contracts/{supervisor.contract_id}/supervisor/heartbeat/"}


def cases(world) -> list[tuple[str, str, str, bytes, dict[str, str]]]:
    """(name, method, path, body, headers): one request per kind of answer the service gives."""
    auth = {"Authorization": f"Bearer {world['key']}", "Content-Type": "application/json"}
    beat = json.dumps({"state": "working", "currentActivity": "compared", "progress": 5}).encode()
    return [
        ("healthz", "GET", "/healthz", b"", {}),
        ("heartbeat", "POST", world["beat"], beat, auth),
        ("401 no key", "POST", world["beat"], beat, {"Content-Type": "application/json"}),
        ("401 wrong key", "POST", world["beat"], beat, {**auth, "Authorization": "Bearer mk_wrong"}),
        ("404", "GET", "/api/v1/no-such-thing/", b"", auth),
        ("404 outside the API", "GET", "/nowhere", b"", {}),
        ("405", "GET", world["beat"], b"", auth),
        ("413", "POST", world["beat"], b"{" + b" " * (BODY_LIMIT + 10) + b"}", auth),
        ("415", "POST", world["beat"], b"state=working", {**auth, "Content-Type": "application/x-www-form-urlencoded"}),
        ("400 validation", "POST", world["beat"], json.dumps({"progress": "lots"}).encode(), auth),
        ("400 malformed JSON", "POST", world["beat"], b'{"progress": ', auth),
        ("admin login page", "GET", "/admin/login/", b"", {}),
        ("admin redirects to login", "GET", "/admin/", b"", {}),
        ("schema", "GET", "/api/schema/", b"", {"Accept": "application/json"}),
    ]


@pytest.mark.django_db(transaction=True)
def test_every_kind_of_answer_is_the_same_through_the_shipped_server(start_server, settings, world):
    # What soak.server.service_env gives the server: plain HTTP on 127.0.0.1.
    settings.API_MAX_BODY_BYTES = BODY_LIMIT
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = BODY_LIMIT
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.SECURE_HSTS_SECONDS = 0
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    server = start_server()
    sock = connect(server)
    try:
        for name, method, path, body, headers in cases(world):
            live = exchange(sock, raw_request(method, path, body=body, headers=headers))
            local = in_process(method, path, body, headers)
            assert live.status == local.status, (name, live)
            if name == "heartbeat":  # carries the time it was received: compare its shape
                assert json.loads(live.body).keys() == json.loads(local.body).keys(), name
            else:
                assert comparable_body(live.body) == comparable_body(local.body), (name, live)
            assert comparable_headers(live.headers) == comparable_headers(local.headers), name
            assert cookie_names(live.headers.get("set-cookie", "")) == cookie_names(
                local.headers.get("set-cookie", "")
            ), name
            assert live.keeps_alive, f"{name}: the server closed the kept-alive connection"
    finally:
        sock.close()


@pytest.mark.django_db(transaction=True)
def test_static_files_are_served_with_whitenoise_headers(start_server, static_root):
    """Hashed names cached for ever, compressed copies to clients that take them, the bytes as collected."""
    server = start_server()
    manifest = json.loads((Path(static_root) / "staticfiles.json").read_text())["paths"]
    hashed = manifest["admin/css/base.css"]
    original = (Path(static_root) / hashed).read_bytes()
    sock = connect(server)
    try:
        plain = exchange(sock, raw_request("GET", f"/static/{hashed}"))
        assert plain.status == 200
        assert plain.body == original
        assert plain.headers["content-type"].startswith("text/css")
        assert "immutable" in plain.headers["cache-control"]
        assert "max-age=315360000" in plain.headers["cache-control"]
        assert plain.headers["vary"] == "Accept-Encoding"
        assert plain.headers.get("access-control-allow-origin") == "*"

        gzipped = exchange(sock, raw_request("GET", f"/static/{hashed}", headers={"Accept-Encoding": "gzip"}))
        assert gzipped.status == 200
        assert gzipped.headers["content-encoding"] == "gzip"
        assert gzipped.body == (Path(static_root) / f"{hashed}.gz").read_bytes()

        unhashed = exchange(sock, raw_request("GET", "/static/admin/css/base.css"))
        assert unhashed.status == 200  # served too, but not cached for ever: its content may change
        assert "immutable" not in unhashed.headers.get("cache-control", "")

        missing = exchange(sock, raw_request("GET", "/static/admin/css/no-such-file.css"))
        assert missing.status == 404
        assert missing.keeps_alive
    finally:
        sock.close()
