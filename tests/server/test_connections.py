"""Kept-alive connections stay usable after error answers, the body of which the service never read."""

from __future__ import annotations

import pytest

from .conftest import BODY_LIMIT, connect, exchange, raw_request

pytestmark = pytest.mark.database_independent


@pytest.mark.django_db(transaction=True)
def test_a_kept_alive_connection_survives_errors_whose_body_was_not_read(start_server):
    """A daemon's HTTP client reuses its connection after a 401, 403, 404 or 413: the server must skip the
    body the service refused without reading, not close the connection nor read that body as the next request."""
    server = start_server()
    body = b'{"state": "working", "padding": "' + b"x" * 3000 + b'"}'
    json_headers = {"Content-Type": "application/json"}
    refusals = [
        ("POST", "/api/v1/daemons/me/heartbeat/", body, json_headers, 401),  # no key: refused before parsing
        ("POST", "/api/v1/no-such-endpoint/", body, json_headers, 404),
        ("PUT", "/healthz", body, json_headers, 403),  # CSRF: a browser-side refusal, body unread
        ("POST", "/api/v1/daemons/me/heartbeat/", body + b" " * BODY_LIMIT, json_headers, 413),  # over the limit
    ]
    sock = connect(server)
    local_port = sock.getsockname()[1]
    try:
        for method, path, payload, headers, expected in refusals:
            reply = exchange(sock, raw_request(method, path, body=payload, headers=headers))
            assert reply.status == expected, (path, reply)
            assert reply.keeps_alive, f"{expected}: Connection: close"
            after = exchange(sock, raw_request("GET", "/healthz"))
            assert (after.status, after.body) == (200, b'{"status": "ok"}'), f"after the {expected}"
        assert sock.getsockname()[1] == local_port  # one connection throughout
    finally:
        sock.close()
