"""No variable of the server's process environment reaches a view or an error report.

granian starts each request's environ from a copy of the whole process
environment; the WSGI entry point (makima_supervisor.wsgi) keeps only the
request's own keys. Seen through the real server: ``request.META`` of a view,
Django's DEBUG error page (which hides SECRET_KEY by name but not other
variables) and the error log of a failing request in production.
"""

from __future__ import annotations

import json
import secrets

import pytest

from .conftest import connect, exchange, raw_request

pytestmark = pytest.mark.database_independent


def canaries() -> dict[str, str]:
    """Variables a deployment carries: a password in a URL, an API token, a header-like name (httpoxy)."""
    token = secrets.token_hex(12)
    return {
        "MAKIMA_CANARY_TOKEN": f"canary-token-{token}",
        "SMTP_CANARY_URL": f"smtp://mailer:canary-password-{token}@mail.invalid:587",
        "HTTP_PROXY": f"http://canary-proxy-{token}.invalid:3128",
    }


@pytest.mark.django_db(transaction=True)
def test_request_meta_holds_the_request_only(start_server):
    planted = canaries()
    server = start_server(DJANGO_SETTINGS_MODULE="tests.server.settings", **planted)
    sock = connect(server)
    try:
        reply = exchange(sock, raw_request("GET", "/__test__/meta?x=1", headers={"X-Daemon-Note": "hello"}))
    finally:
        sock.close()
    assert reply.status == 200
    meta = json.loads(reply.body)["meta"]
    for name in ("SECRET_KEY", "DATABASE_URL", "PATH", "HOME", "DJANGO_SETTINGS_MODULE", *planted):
        assert name not in meta, name
    for value in planted.values():
        assert value not in reply.body.decode()
    # What the request did carry is all there.
    assert meta["HTTP_X_DAEMON_NOTE"] == "hello"
    assert meta["QUERY_STRING"] == "x=1"
    assert meta["REQUEST_METHOD"] == "GET"
    assert meta["PATH_INFO"] == "/__test__/meta"
    assert meta["REMOTE_ADDR"] == "127.0.0.1"
    assert meta["wsgi.url_scheme"] == "http"


@pytest.mark.django_db(transaction=True)
def test_a_header_named_like_a_process_variable_still_arrives(start_server):
    """The filter drops a variable the client did not send, not a header it did."""
    server = start_server(DJANGO_SETTINGS_MODULE="tests.server.settings", HTTP_X_TRACE="from-the-environment")
    sock = connect(server)
    try:
        sent = exchange(sock, raw_request("GET", "/__test__/meta", headers={"X-Trace": "from-the-client"}))
        not_sent = exchange(sock, raw_request("GET", "/__test__/meta"))
    finally:
        sock.close()
    assert json.loads(sent.body)["meta"]["HTTP_X_TRACE"] == "from-the-client"
    assert "HTTP_X_TRACE" not in json.loads(not_sent.body)["meta"]


@pytest.mark.django_db(transaction=True)
def test_error_reports_show_no_process_variable(start_server, tmp_path):
    planted = canaries()
    # DEBUG: Django's technical 500 page lists request.META (and the settings, cleansed by name).
    debug = start_server(DJANGO_SETTINGS_MODULE="tests.server.settings", DEBUG="true", **planted)
    sock = connect(debug)
    try:
        page = exchange(sock, raw_request("GET", "/__test__/boom", headers={"Accept": "text/html"}))
    finally:
        sock.close()
    assert page.status == 500
    text = page.body.decode()
    assert "boom: an unhandled error" in text  # the report itself is there
    assert "REQUEST_METHOD" in text  # with the request's META table
    for name, value in planted.items():
        assert value not in text, name
    assert debug.env["DATABASE_URL"] not in text
    assert "DATABASE_URL" not in text

    # Production: the failing request's error report goes to the log.
    production = start_server(DJANGO_SETTINGS_MODULE="tests.server.settings", LOG_LEVEL="ERROR", **planted)
    sock = connect(production)
    try:
        answer = exchange(sock, raw_request("GET", "/__test__/boom"))
    finally:
        sock.close()
    assert answer.status == 500
    production.stop()
    log = production.log_path.read_text()
    assert "boom: an unhandled error" in log
    for name, value in planted.items():
        assert value not in log, name
