"""A fresh checkout of the project, for tests that run its scripts and manage.py as a newcomer would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_checkout(tmp_path: Path) -> Path:
    """The files a clone of the working tree would have (tracked and new, never ignored ones like .env).

    Copied from the working tree rather than cloned from HEAD, so uncommitted changes are tested too;
    ``.venv`` is a link to this run's virtual environment, as ``scripts/bootstrap`` would have made one.
    """
    target = tmp_path / "makima-supervisor"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if name == ".venv" or not source.is_file():  # .venv is a link in worktrees; deleted files are listed too
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(Path(sys.prefix))
    return target


def clean_environment(**extra: str) -> dict[str, str]:
    """What a newcomer's shell has: no SECRET_KEY, DEBUG, DATABASE_URL or settings module exported."""
    environment = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    environment.update(extra)
    return environment
