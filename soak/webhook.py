"""A real webhook receiver for the soak and the tests: an HTTP server on 127.0.0.1, in a thread, scripted.

Each request takes the next step of the script (then ``ok`` for ever):
``500`` answers 500, ``close`` closes the connection without an answer,
``hang`` holds the request until :meth:`Receiver.release` (a worker can be
killed while it waits), ``ok`` answers 200. Every request is recorded
(headers, body, the answer it got), so tests see retries and duplicates.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent / "docs" / "notifications.md"


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    answer: str

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.payload["id"]


class Receiver:
    def __init__(self, script: list[str] | None = None) -> None:
        self.script = list(script or [])
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.hanging = threading.Event()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    step = receiver.script.pop(0) if receiver.script else "ok"
                    receiver.received.append(Received(dict(self.headers.items()), body, step))
                if step == "hang":
                    receiver.hanging.set()
                    receiver._release.wait(60)
                    step = "close"
                if step == "close":
                    self.close_connection = True
                    self.connection.close()
                    return
                status = 500 if step == "500" else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        self._release.set()

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.answer == "ok"]

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.received)


def documented_verify():
    """The ``verify`` function of docs/notifications.md's snippet, executed as the docs show it."""
    text = DOCS.read_text()
    match = re.search(r"<!-- verify-snippet -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/notifications.md lost its verification snippet"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), str(DOCS), "exec"), namespace)
    return namespace["verify"]
