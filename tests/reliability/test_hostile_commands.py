"""Hostile arguments for every management command: one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import ManagementUtility
from django.db import connections

from .hostile import COMMAND_CASES
from .test_hostile_input import snapshot

ROOT = Path(__file__).resolve().parents[2]


def run_command(argv: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """``manage.py *argv`` in this process, as a shell would run it: (exit code, stderr).

    run_from_argv closes every connection when it ends; the test's own
    connection (its transaction) stays open so the next check can read.
    """
    monkeypatch.setattr(connections, "close_all", lambda: None)
    try:
        ManagementUtility(["manage.py", *argv]).execute()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, capsys.readouterr().err


@pytest.mark.django_db
@pytest.mark.parametrize(
    "argv", COMMAND_CASES, ids=[" ".join(a).encode("ascii", "replace").decode() for a in COMMAND_CASES]
)
def test_a_hostile_command_line_is_one_line_on_stderr_with_exit_code_2(argv, capsys, monkeypatch, settings):
    settings.SECURE_SSL_REDIRECT = False  # its start-up warning (behind a proxy?) is not what is tested here
    before = snapshot()
    code, err = run_command(argv, capsys, monkeypatch)
    assert code == 2, f"exit code {code}: {err[-2000:]}"
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert snapshot() == before


def test_bytes_that_are_not_utf8_on_a_real_command_line_are_a_usage_error():
    """The shell passes bytes; Python turns a non-UTF-8 one into a lone surrogate that no text column holds."""
    env = {**os.environ, "DEBUG": "true", "SECRET_KEY": "test-only-" + "k" * 50}
    done = subprocess.run(
        [sys.executable, "manage.py", "restore_supervisors", "--all", "--reason", b"\xff\xfe crashed"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr.decode(errors="replace")
    assert done.stderr.count(b"\n") == 1 and b"not valid UTF-8" in done.stderr
