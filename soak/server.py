"""Start the service on 127.0.0.1, on a free port: as shipped (the Procfile's web: line) or under gunicorn."""

from __future__ import annotations

import http.client
import os
import shlex
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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "GRANIAN_", "PYTEST_"))}
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
            "PORT": str(port),
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_ACCESSLOG": "",
            "GUNICORN_LOGLEVEL": "warning",
            "LOG_LEVEL": "ERROR",
        }
    )
    env.update(extra or {})
    return env


def procfile_web_command(port: int | str = "$PORT", host: str = "127.0.0.1") -> list[str]:
    """The Procfile's ``web:`` command, $PORT substituted, on ``host`` instead of 0.0.0.0, and ``python``
    this interpreter (the project's virtualenv): what a platform runs, reachable from this machine only."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            command = line.removeprefix("web:").strip().replace("${PORT}", str(port)).replace("$PORT", str(port))
            args = [host if arg == "0.0.0.0" else arg for arg in shlex.split(command)]
            if args[0] in ("python", "python3"):
                args[0] = sys.executable
            elif Path(sys.executable).with_name(args[0]).exists():
                args[0] = str(Path(sys.executable).with_name(args[0]))
            return args
    raise RuntimeError("the Procfile has no web: line")


class WebServer:
    """The service as shipped (the Procfile's web: command) as a child process in its own process group;
    ``stop()`` ends exactly that group. ``workers`` and ``threads`` map to the server's own variables."""

    name = "web"

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
            extra[self.workers_variable] = str(workers)
        if threads is not None:
            extra[self.threads_variable] = str(threads)
        self.env = service_env(database_url=database_url, secret_key=secret_key, port=self.port, extra=extra)
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log = None

    workers_variable = "GRANIAN_WORKERS"
    threads_variable = "GRANIAN_BLOCKING_THREADS"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def command(self) -> list[str]:
        return procfile_web_command(self.port)

    def start(self, timeout: float = 30.0) -> WebServer:
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command(),
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
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
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

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class GunicornServer(WebServer):
    """gunicorn with the repository's gunicorn.conf.py: the documented alternative to the shipped server."""

    name = "gunicorn"
    workers_variable = "GUNICORN_WORKERS"
    threads_variable = "GUNICORN_THREADS"

    def command(self) -> list[str]:
        return [gunicorn_executable(), "-c", str(ROOT / "gunicorn.conf.py"), "makima_supervisor.wsgi"]
