"""The service as a daemon meets it: the shipped server (the Procfile's web: command) in a child process.

On the live test database, over real HTTP.

Used by the tests that must not go through WSGI in-process: schemathesis against
the running server, the docs' examples, and a client generated from the schema.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from soak.server import WebServer
from supervisors.api.authentication import clear_key_cache
from supervisors.services.ownership import forget_lease_renewals
from supervisors.services.world import create_daemon_key, record_daemon_heartbeat
from tests.factories import make_daemon


def live_database_url() -> str:
    """The live test database as a URL a child process can open (SQLite: its file; PostgreSQL: host and name)."""
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    from tests.reliability.conftest import database_url_of

    return database_url_of(settings_dict)


@dataclass
class LiveApi:
    """A running service and what a test needs to talk to it."""

    base_url: str
    server: WebServer

    def new_daemon_key(self, name: str) -> str:
        """A daemon (alive now) and its API key, committed so the server sees them."""
        daemon = make_daemon(name)
        record_daemon_heartbeat(daemon.id)
        return create_daemon_key(daemon.id, name="live").raw

    def request(self, method: str, path: str, *, key: str | None = None, body: Any = None) -> tuple[int, Any]:
        """One request with the standard library: the status and the parsed JSON body (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        return status, json.loads(raw) if raw else None


def start_live_api(log_path: Path, **extra_env: str) -> Iterator[LiveApi]:
    """The shipped server (one worker, a few threads: SQLite takes one writer), throttling off; stopped after."""
    clear_key_cache()
    forget_lease_renewals()
    env = {"API_THROTTLE_RATE_PER_MINUTE": "0", "ALLOWED_HOSTS": "127.0.0.1,localhost", **extra_env}
    server = WebServer(
        database_url=live_database_url(),
        secret_key=settings.SECRET_KEY,
        workers=1,
        threads=4,
        extra_env=env,
        log_path=log_path,
    )
    with server:
        yield LiveApi(base_url=f"http://127.0.0.1:{server.port}", server=server)
