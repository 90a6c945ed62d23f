"""Debian's nginx in front of a test server, configured by deploy/nginx/makima-supervisor.conf itself."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "makima-supervisor.conf"


def nginx_executable() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


class NginxFront:
    """nginx (master and workers) in the foreground of its own temp dir, proxying ``port`` -> ``upstream``."""

    def __init__(self, *, upstream: str, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        site = Template(SITE.read_text()).safe_substitute(MAKIMA_LISTEN=f"127.0.0.1:{port}", MAKIMA_UPSTREAM=upstream)
        (workdir / "site.conf").write_text(site)
        (workdir / "nginx.conf").write_text(
            "daemon off;\nworker_processes 1;\nuser root;\n"
            f"pid {workdir}/nginx.pid;\nerror_log {workdir}/error.log warn;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"  access_log off;\n  client_body_temp_path {workdir}/body;\n  proxy_temp_path {workdir}/proxy;\n"
            f"  include {workdir}/site.conf;\n"
            "}\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> NginxFront:
        executable = nginx_executable()
        assert executable is not None, "nginx is not installed"
        self.process = subprocess.Popen(
            [executable, "-p", str(self.workdir), "-c", str(self.workdir / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.workdir / 'error.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("nginx did not listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None
