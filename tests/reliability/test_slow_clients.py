"""Slow clients cannot stall the service (issue 13, item 4), in the documented production setup.

The WSGI servers' threads read request bodies themselves: 12 connections that
declare a 100 kB body and trickle a few bytes held every thread of a small
gunicorn (and of granian, the shipped server: it hands a request to a Python
thread once its headers are in, and the thread then waits for the body), and
/healthz timed out for as long as they stayed. The README's
production front is nginx (deploy/nginx/makima-supervisor.conf), which reads
whole bodies before passing a request on. Here 50 such connections trickle
through that very config while /healthz and a heartbeat must each answer
within a second, with the shipped server (the Procfile's web: command) behind
it. Bounded: the trickle lasts a few seconds and stops by itself.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest
from django.conf import settings

from soak.server import WebServer, free_port
from supervisors.services.world import create_daemon_key, record_daemon_heartbeat
from tests.factories import make_contract, make_daemon, make_supervisor

from .nginx import NginxFront, nginx_executable

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(nginx_executable() is None, reason="needs Debian's nginx (apt-get install nginx; .ci/run does)"),
]

SLOW_CLIENTS = 50
TRICKLE_SECONDS = 6.0


def trickle(port: int, stop: threading.Event, opened: list[socket.socket]) -> None:
    """A client that promises a 100 kB heartbeat body and sends a byte every half second."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    opened.append(sock)
    sock.sendall(
        b"POST /api/v1/daemons/me/heartbeat/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    )
    while not stop.wait(0.5):
        try:
            sock.sendall(b" ")
        except OSError:
            return


def timed(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    status = conn.getresponse().status
    conn.close()
    return status, time.monotonic() - started


def test_fifty_trickling_clients_do_not_delay_healthz_or_a_heartbeat(live_database_url, tmp_path):
    daemon = make_daemon("steady")
    record_daemon_heartbeat(daemon.id)
    key = create_daemon_key(daemon.id).raw
    supervisor = make_supervisor(make_contract("steady work"), daemon=daemon)
    beat = json.dumps({"state": "working", "progress": 7}).encode()
    beat_headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    beat_path = f"/api/v1/contracts/{supervisor.contract_id}/supervisor/heartbeat/"

    with WebServer(
        database_url=live_database_url,
        secret_key=settings.SECRET_KEY,
        workers=1,
        threads=4,
        log_path=tmp_path / "server.log",
    ) as server:
        front = NginxFront(upstream=f"127.0.0.1:{server.port}", port=free_port(), workdir=tmp_path).start()
        stop, opened = threading.Event(), []
        clients = [threading.Thread(target=trickle, args=(front.port, stop, opened)) for _ in range(SLOW_CLIENTS)]
        try:
            for client in clients:
                client.start()
            deadline = time.monotonic() + TRICKLE_SECONDS
            answers = []
            while time.monotonic() < deadline:
                answers.append(timed(front.port, "GET", "/healthz"))
                answers.append(timed(front.port, "POST", beat_path, beat, beat_headers))
            assert len(opened) == SLOW_CLIENTS  # every slow client was connected while we measured
        finally:
            stop.set()
            for client in clients:
                client.join(timeout=10)
            for sock in opened:
                sock.close()
            front.stop()
    assert {status for status, _ in answers} == {200}
    slowest = max(seconds for _, seconds in answers)
    assert slowest < 1.0, f"the slowest of {len(answers)} answers took {slowest:.2f} s"
