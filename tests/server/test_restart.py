"""A graceful restart (SIGHUP to the server's main process, as systemd's ExecReload or `kill -HUP` sends):
new workers start, the old ones finish what they are serving and go, and no connection is refused meanwhile."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time

import pytest

from soak.server import WebServer

pytestmark = pytest.mark.database_independent

#: Longer than the pause between a new worker's start and the old one's stop (GRANIAN_RESPAWN_INTERVAL,
#: 10 s by default in makima_supervisor.server), so the old worker is stopped while it serves the request.
SLOW_SECONDS = 12


def get(server: WebServer, path: str, timeout: float = 30) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)  # a new connection each time
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.django_db(transaction=True)
def test_sighup_restarts_workers_without_dropping_a_request_or_a_connection(start_server):
    server = start_server(DJANGO_SETTINGS_MODULE="tests.server.settings")
    status, body = get(server, "/__test__/pid")
    assert status == 200
    old_pid = json.loads(body)["pid"]

    in_flight: dict = {}

    def slow_request() -> None:
        try:
            in_flight["answer"] = get(server, f"/__test__/slow?seconds={SLOW_SECONDS}")
        except Exception as error:  # reported by the assertion below
            in_flight["error"] = error

    slow = threading.Thread(target=slow_request)
    slow.start()
    time.sleep(0.5)  # the slow request is being served by the old worker
    os.kill(server.process.pid, signal.SIGHUP)

    probes, failures, new_pid = 0, [], None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (slow.is_alive() or new_pid is None):
        try:
            status, body = get(server, "/__test__/pid", timeout=10)
            probes += 1
            if status != 200:
                failures.append(status)
            elif json.loads(body)["pid"] != old_pid:
                new_pid = json.loads(body)["pid"]
        except OSError as error:  # refused or reset: what a graceful restart must not do
            failures.append(repr(error))
        time.sleep(0.05)
    slow.join(timeout=30)

    assert "error" not in in_flight, in_flight
    status, body = in_flight["answer"]
    assert status == 200 and json.loads(body) == {"pid": old_pid, "done": True}  # the old worker finished it
    assert failures == [], f"{len(failures)} of {probes} probes failed during the restart: {failures[:5]}"
    assert new_pid is not None and new_pid != old_pid  # a new worker serves now
    assert server.process.poll() is None  # the main process stayed
    for _ in range(100):  # and the old worker is gone
        if not os.path.exists(f"/proc/{old_pid}"):
            break
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{old_pid}")
