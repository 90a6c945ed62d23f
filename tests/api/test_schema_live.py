"""schemathesis with every default check against the live service: the shipped server in a child process, real HTTP.

It runs the way a daemon author would try the contract (the ``st`` command line
against /api/schema/): examples, coverage, fuzzing and the stateful phase that
follows the schema's links from a new contract to its supervisor task, the
supervisor, a question, its answer and acknowledgement. Bounded and repeatable:
a fixed number of examples per operation, deterministic generation.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

CONFIG = Path(__file__).with_name("schemathesis.toml")
ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 10


def schemathesis_cli() -> str:
    return str(Path(sys.executable).with_name("st"))


def run_schemathesis(base_url: str, key: str, report_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            schemathesis_cli(),
            "--config-file",
            str(CONFIG),
            "run",
            f"{base_url}/api/schema/?format=json",
            "--header",
            f"Authorization: Bearer {key}",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--generation-deterministic",
            # Text cannot hold NUL (U+0000): PostgreSQL refuses it, and so does the API (400), as the schema's
            # description says; JSON Schema has no way to say it of free JSON (the conversation).
            "--generation-allow-x00",
            "false",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
            "--report",
            "ndjson",
            "--report-dir",
            str(report_dir),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=report_dir.parent,  # its cache (.schemathesis/) goes there, not into the repository
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks", "PYTHONPATH": str(ROOT)},
    )


def answered(report_dir: Path) -> Counter:
    """(method, path template, status) of every request the stateful phase sent, counted."""
    seen: Counter = Counter()
    for report in report_dir.glob("*.ndjson"):
        for line in report.read_text().splitlines():
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished or finished["phase"] != "stateful":
                continue
            recorder = finished["recorder"]
            for case_id, interaction in recorder.get("interactions", {}).items():
                case = recorder["cases"][case_id]["value"]
                status = (interaction.get("response") or {}).get("status_code")
                seen[(case["method"], case["path"], status)] += 1
    return seen


def test_schemathesis_with_every_default_check_passes_against_the_live_service(live_api, tmp_path):
    key = live_api.new_daemon_key("schemathesis")
    result = run_schemathesis(live_api.base_url, key, tmp_path / "report")
    output = result.stdout + result.stderr

    assert result.returncode == 0, output[-20_000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅ {phase}\b", output), f"phase {phase} did not pass:\n{output[-5000:]}"
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", output)
    assert links and int(links.group(2)) >= 30 and int(links.group(1)) >= 5, output[-5000:]
    # The links lead to real supervisors, not only to 404s.
    seen = answered(tmp_path / "report")
    supervisor = "/api/v1/contracts/{contractId}/supervisor/"
    assert seen[("PUT", supervisor, 201)] > 0, sorted(seen.items())
    reached = {path for (method, path, status) in seen if path.startswith(supervisor) and status == 200}
    assert len(reached) >= 2, sorted(seen.items())


def test_the_schema_declares_the_links_from_contract_to_acknowledgement(client):
    from tests.api.contract import api_schema

    links = {}
    for item in api_schema()["paths"].values():
        for operation in item.values():
            for response in operation["responses"].values():
                for link in response.get("links", {}).values():
                    links.setdefault(operation["operationId"], set()).add(link["operationId"])
    assert {"task_create", "contract_get"} <= links["contract_create"]
    assert "supervisor_save" in links["task_create"]
    assert {"supervisor_question_ask", "supervisor_resume", "supervisor_get"} <= links["supervisor_save"]
    assert {"supervisor_question_answer", "supervisor_question_withdraw"} <= links["supervisor_question_ask"]
    assert links["supervisor_question_answer"] == {"supervisor_answer_ack"}
