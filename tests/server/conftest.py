"""The shipped server (the Procfile's web: command) on the live test database, over real sockets."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.conf import settings

from soak.server import ROOT, WebServer, service_env
from supervisors.api.authentication import clear_key_cache
from tests.api.live import live_database_url

#: Small, so that a 413 needs no megabytes on the wire; the in-process client gets the same limit.
BODY_LIMIT = 4096


@pytest.fixture(scope="session")
def static_root(tmp_path_factory) -> str:
    """collectstatic into a fresh directory, as a deployment does (hashed names, .gz beside each file)."""
    root = tmp_path_factory.mktemp("static")
    env = service_env(database_url="sqlite:///:memory:", secret_key="collectstatic-" + "x" * 50, port=0)
    env["STATIC_ROOT"] = str(root)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"], cwd=ROOT, env=env, check=True
    )
    return str(root)


@pytest.fixture
def start_server(transactional_db, static_root, tmp_path) -> Iterator[Callable[..., WebServer]]:
    """Start the shipped server (stopped after the test); keyword arguments are extra environment variables."""
    clear_key_cache()
    started: list[WebServer] = []

    def start(*, workers: int = 1, threads: int = 4, **extra_env: str) -> WebServer:
        env = {
            "STATIC_ROOT": static_root,
            "API_THROTTLE_RATE_PER_MINUTE": "0",
            "API_MAX_BODY_BYTES": str(BODY_LIMIT),
            **extra_env,
        }
        server = WebServer(
            database_url=live_database_url(),
            secret_key=settings.SECRET_KEY,
            workers=workers,
            threads=threads,
            extra_env=env,
            log_path=tmp_path / f"server-{len(started)}.log",
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case; a repeated header's values joined with ", "
    body: bytes
    keeps_alive: bool


def exchange(sock: socket.socket, request: bytes) -> Reply:
    """Send one raw HTTP/1.1 request on a kept-alive socket and read exactly one response (Content-Length framed)."""
    sock.sendall(request)
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection before answering")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
    keeps_alive = headers.get("connection", "").lower() != "close"
    buffer = bytearray(rest)

    def need(size: int) -> None:
        while len(buffer) < size:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the server closed the connection mid-body")
            buffer.extend(chunk)

    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            while b"\r\n" not in buffer:
                need(len(buffer) + 1)
            size_line, _, remainder = bytes(buffer).partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            buffer[:] = remainder
            need(size + 2)
            body += buffer[:size]
            del buffer[: size + 2]
            if size == 0:
                return Reply(status, headers, bytes(body), keeps_alive)
    length = int(headers.get("content-length", "0"))
    need(length)
    return Reply(status, headers, bytes(buffer[:length]), keeps_alive)


def raw_request(method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def connect(server: WebServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
