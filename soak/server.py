"""Start the service under gunicorn (the repository's gunicorn.conf.py) on 127.0.0.1, on a free port."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn_executable() -> str:
    """gunicorn next to the running Python (the project's virtualenv)."""
    candidate = Path(sys.executable).with_name("gunicorn")
    return str(candidate) if candidate.exists() else "gunicorn"


def service_env(*, database_url: str, secret_key: str, port: int, extra: Mapping[str, str] | None = None) -> dict:
    """Production settings (DEBUG off), reachable over plain HTTP on 127.0.0.1 only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "PYTEST_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "makima_supervisor.settings",
            "DATABASE_URL": database_url,
            "SECRET_KEY": secret_key,
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "SECURE_HSTS_SECONDS": "0",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_ACCESSLOG": "",
            "GUNICORN_LOGLEVEL": "warning",
            "LOG_LEVEL": "ERROR",
        }
    )
    env.update(extra or {})
    return env


class GunicornServer:
    """gunicorn as a child process in its own process group; ``stop()`` ends exactly that group."""

    def __init__(
        self,
        *,
        database_url: str,
        secret_key: str,
        workers: int | None = None,
        threads: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = free_port()
        extra = dict(extra_env or {})
        if workers is not None:
            extra["GUNICORN_WORKERS"] = str(workers)
        if threads is not None:
            extra["GUNICORN_THREADS"] = str(threads)
        self.env = service_env(database_url=database_url, secret_key=secret_key, port=self.port, extra=extra)
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def start(self, timeout: float = 30.0) -> GunicornServer:
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [gunicorn_executable(), "-c", str(ROOT / "gunicorn.conf.py"), "makima_supervisor.wsgi"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )
        self.wait_until(lambda status: status == 200, path="/healthz", timeout=timeout)
        return self

    def get_status(self, path: str) -> int | None:
        """The status of a GET, or None when nothing answers."""
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            return status
        except OSError:
            return None

    def wait_until(self, accept, *, path: str, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log_path}")
            status = self.get_status(path)
            if accept(status):
                return status
            time.sleep(0.1)
        raise TimeoutError(f"{path} still answers {status} after {timeout} s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        self.process = None

    def __enter__(self) -> GunicornServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
