"""A plain HTTP client (http.client, keep-alive) that records every request it makes."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

#: Status recorded when no HTTP answer came back (connection refused, reset, timeout).
NO_ANSWER = 0


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]
    #: The request was retried after a 503: the first attempt may or may not have been done.
    after_unavailable: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Unexpected:
    endpoint: str
    status: int
    expected: tuple[int, ...]
    body: Any


@dataclass
class Recorder:
    """Every request's endpoint, status and latency; the statuses nobody expected."""

    samples: dict[tuple[str, int], list[float]] = field(default_factory=lambda: defaultdict(list))
    unexpected: list[Unexpected] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Request body bytes per endpoint label: what each kind of save point costs on the wire.
    sent: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def record(
        self, endpoint: str, status: int, seconds: float, expected: tuple[int, ...], body: Any, *, sent: int = 0
    ) -> None:
        with self.lock:
            self.samples[(endpoint, status)].append(seconds)
            if sent:
                self.sent[endpoint].append(sent)
            if status not in expected:
                self.unexpected.append(Unexpected(endpoint, status, expected, body))

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.samples.values())

    def count(self, predicate) -> int:
        return sum(len(v) for (_, status), v in self.samples.items() if predicate(status))


class Client:
    """One keep-alive connection (use one Client per thread); JSON in and out."""

    def __init__(
        self,
        host: str,
        port: int,
        recorder: Recorder,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.recorder, self.timeout = host, port, recorder, timeout
        self.headers = dict(headers or {})
        self._conn: http.client.HTTPConnection | None = None
        #: How often a 503 (database unavailable) is retried, as a daemon would; 0 = never.
        self.retries_on_unavailable = 0

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        endpoint: str,
        expect: tuple[int, ...] = (200,),
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        """Send one request; ``endpoint`` is the label it is counted under (a path template)."""
        all_headers = {**self.headers, **(headers or {})}
        payload = raw
        if payload is None and body is not None:
            payload = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        label = f"{method} {endpoint}"
        after_unavailable = False
        for attempt in range(self.retries_on_unavailable + 1):
            started = time.perf_counter()
            reply = self._send(method, path, payload, all_headers)
            if reply.status == NO_ANSWER:  # a dropped keep-alive connection: one fresh try
                reply = self._send(method, path, payload, all_headers)
            reply.after_unavailable = after_unavailable
            allowed = expect
            if self.retries_on_unavailable:
                # After a 503 the earlier attempt may have been done after all: "already done" answers are fine.
                allowed = (*expect, 503, *((200, 201, 404, 409) if after_unavailable else ()))
            self.recorder.record(
                label, reply.status, time.perf_counter() - started, allowed, reply.body, sent=len(payload or b"")
            )
            if reply.status == 503 and not _is_error_shape(reply.body):
                self.recorder.record(f"{label} (503 outside the error shape)", 599, 0.0, (), reply.body)
            if reply.status != 503 or attempt == self.retries_on_unavailable:
                return reply
            after_unavailable = True
            time.sleep(0.05 * 2**attempt)
        return reply

    def _send(self, method: str, path: str, payload: bytes | None, headers: dict[str, str]) -> Reply:
        try:
            conn = self._connection()
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
            reply_headers = {k.lower(): v for k, v in response.getheaders()}
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return Reply(NO_ANSWER, {"transport_error": repr(exc)}, {})
        if reply_headers.get("connection", "").lower() == "close":
            self.close()
        try:
            body = json.loads(data) if data else None
        except ValueError:
            body = data[:500].decode("utf-8", "replace")
        return Reply(response.status, body, reply_headers)


def _is_error_shape(body: Any) -> bool:
    return isinstance(body, dict) and set(body) == {"code", "message", "fields"}
