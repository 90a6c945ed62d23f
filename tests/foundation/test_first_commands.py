"""After the README's run command, the manage.py commands it shows work as typed, with nothing exported."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.foundation.conftest import clean_environment

pytestmark = pytest.mark.database_independent


def run(checkout: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), cwd=checkout, env=clean_environment(), capture_output=True, text=True, timeout=180
    )


def test_readme_commands_work_after_the_run_command_writes_its_env(fresh_checkout: Path):
    """scripts/serve's first step (scripts/dev-env) is all a newcomer needs for manage.py to start."""
    assert not (fresh_checkout / ".env").exists()
    before = run(fresh_checkout, ".venv/bin/python", "manage.py", "check")
    assert before.returncode != 0 and "SECRET_KEY is not set" in before.stderr

    wrote = run(fresh_checkout, "scripts/dev-env")
    assert wrote.returncode == 0, wrote.stderr
    dotenv = (fresh_checkout / ".env").read_text()
    assert "DEBUG=true" in dotenv
    secret = next(line.split("=", 1)[1] for line in dotenv.splitlines() if line.startswith("SECRET_KEY="))
    assert len(secret) >= 50

    for command in (
        ["check"],
        ["restore_supervisors", "--help"],
        ["migrate", "--no-input"],
        ["create_daemon_key", "daemon-7", "--create-daemon"],
        ["restore_supervisors", "--state", "interrupted", "--dry-run"],
        ["validate_supervisors", "--all"],
    ):
        result = run(fresh_checkout, ".venv/bin/python", "manage.py", *command)
        assert result.returncode == 0, f"manage.py {' '.join(command)}: {result.stderr}"
    assert (
        "mks_"
        in run(
            fresh_checkout, ".venv/bin/python", "manage.py", "create_daemon_key", "daemon-8", "--create-daemon"
        ).stdout
    )


def test_the_run_command_keeps_an_existing_env(fresh_checkout: Path):
    run(fresh_checkout, "scripts/dev-env")
    first = (fresh_checkout / ".env").read_text()
    assert run(fresh_checkout, "scripts/dev-env").returncode == 0
    assert (fresh_checkout / ".env").read_text() == first


def test_env_file_is_git_ignored(fresh_checkout: Path):
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=Path(__file__).resolve().parents[2])
    assert ignored.returncode == 0


def test_a_development_env_is_not_read_when_secret_key_is_in_the_environment(fresh_checkout: Path):
    """Production sets SECRET_KEY in its environment: a stray development .env cannot switch DEBUG on."""
    run(fresh_checkout, "scripts/dev-env")
    result = subprocess.run(
        [".venv/bin/python", "manage.py", "shell", "-c", "from django.conf import settings; print(settings.DEBUG)"],
        cwd=fresh_checkout,
        env=clean_environment(
            SECRET_KEY="k7Yp2vQ9zL4xW8mN3bR6tF1hJ5cD0sG2aE7uI9oP4yT6rV8nM3qX1wZ5lK0jH2gB",
            ALLOWED_HOSTS="supervisor.example.com",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_the_run_command_serves_and_the_readme_commands_work_beside_it(fresh_checkout: Path, tmp_path: Path):
    """./scripts/serve in a fresh checkout with nothing exported: a login printed, the service up, then the
    README's commands typed in another shell of the same kind work, and stopping serve stops everything."""
    import os
    import signal
    import time
    import urllib.request

    from soak.server import free_port

    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        serve = subprocess.Popen(
            ["scripts/serve"],
            cwd=fresh_checkout,
            env=clean_environment(ADDRESS=f"127.0.0.1:{port}"),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        status, deadline = None, time.monotonic() + 150
        while status != 200 and time.monotonic() < deadline:
            assert serve.poll() is None, log.read_text()
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status
            except OSError:
                time.sleep(0.2)
        assert status == 200, log.read_text()
        printed = log.read_text()
        assert "Login: admin" in printed and "Password: " in printed
        assert f"Admin: http://127.0.0.1:{port}/admin/" in printed  # where it really is, not a fixed port
        for command in (
            ["restore_supervisors", "--help"],
            ["create_daemon_key", "daemon-7", "--create-daemon"],
            ["restore_supervisors", "--state", "interrupted", "--dry-run"],
            ["restore_supervisors", "--orphaned", "--dry-run", "--json"],
        ):
            result = run(fresh_checkout, ".venv/bin/python", "manage.py", *command)
            assert result.returncode in (0, 3), f"manage.py {' '.join(command)}: {result.stderr}"  # 3: needs a person
        admin = urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=5)
        assert admin.status == 200
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(timeout=10)
