"""docs/api.md's walkthrough runs: every `sh` and `python` block of "A daemon's life" against a live server.

The shell blocks run in order as one bash script, the Python blocks in order as
one program (each on its own contract), with the service's address and two
fresh daemons' keys in the environment, as the guide tells a reader to set them.
A block that no longer matches the API fails here, so the docs cannot rot.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SECTION = "## A daemon's life, step by step"


def code_blocks(language: str) -> list[str]:
    """The fenced blocks of ``language`` in the walkthrough section, in order."""
    text = GUIDE.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return re.findall(rf"^```{language}\n(.*?)^```$", text[start:end], flags=re.M | re.S)


def environment(live_api, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "MAKIMA_URL": live_api.base_url,
        "MAKIMA_KEY": live_api.new_daemon_key(f"{prefix}-daemon-7"),
        "MAKIMA_KEY_2": live_api.new_daemon_key(f"{prefix}-daemon-8"),
    }


def run(command: list[str], script: str, env: dict[str, str]) -> str:
    result = subprocess.run(command, input=script, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n--- the script ---\n{script}"
    return result.stdout


def test_the_walkthrough_has_both_languages_for_every_step():
    assert len(code_blocks("sh")) == len(code_blocks("python")) == 11


def test_the_curl_walkthrough_runs_against_a_live_server(live_api):
    output = run(["bash"], "\n".join(code_blocks("sh")), environment(live_api, "curl"))
    lines = output.split()
    assert "curl-daemon-7" in lines and "yes" in lines and ("404" in lines or "409" in lines), output


def test_the_python_walkthrough_runs_against_a_live_server(live_api):
    output = run([sys.executable, "-"], "\n".join(code_blocks("python")), environment(live_api, "python"))
    assert "python-daemon-7" in output and "SUPERVISOR RESTORED" in output, output
