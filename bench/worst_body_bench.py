"""CPU time of the worst bodies the API accepts: does any accepted write cost more than a second?

Run (SQLite by default; a PostgreSQL database of your own works too, its rows are left there):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ms_bench \\
        /work/main/.venv/bin/python bench/worst_body_bench.py [--repeat 3]

Each body is sent in-process through Django's test client (no HTTP server, so
nothing but the service's own work is timed) with the settings' defaults
(API_MAX_BODY_BYTES, SUPERVISOR_MAX_CONVERSATION_MESSAGES). Prints, per case:
the status, the body size, and the best CPU time (``time.process_time`` of this
process: parsing, validation, serialising for the database) and wall time
(which also includes the database server's work). The table in
docs/persistence.md ("The worst accepted body") comes from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makima_supervisor.test_settings")
warnings.filterwarnings("ignore", message="No directory at")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from supervisors.models import Contract, Daemon, SupervisorState, Task  # noqa: E402
from supervisors.services.world import create_daemon_key, record_daemon_heartbeat  # noqa: E402

PREFIX = "bench-worst-body"


def encode(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def fill(limit: int, overhead: int, unit: int) -> int:
    """How many ``unit``-byte items fit in a body of ``limit`` bytes after ``overhead``."""
    return (limit - overhead - 64) // unit


def cases(task_id: str) -> list[tuple[str, str, str, Callable[[], bytes]]]:
    """(label, method, path tail, body factory): the bodies, largest and densest first."""
    limit = settings.API_MAX_BODY_BYTES
    most = settings.SUPERVISOR_MAX_CONVERSATION_MESSAGES
    values = settings.API_MAX_JSON_VALUES
    base = {"taskId": task_id, "phase": "plan", "state": "working"}
    pad = "x" * (fill(limit, 300, most) - 30)  # messages sized to fill the body at the limit
    dense = fill(limit, 300, 2)  # "0," per element
    per_message = fill(limit, 300, most) // 2 - 10
    return [
        ("most messages, tiny", "PUT", "", lambda: encode({**base, "conversationHistory": [{"role": "u"}] * most})),
        (
            "most messages, filling the body",
            "PUT",
            "",
            lambda: encode({**base, "conversationHistory": [{"role": "u", "content": pad}] * most}),
        ),
        (
            "one message of dense numbers",
            "PUT",
            "",
            lambda: encode({**base, "conversationHistory": [{"role": "u", "c": [0] * dense}]}),
        ),
        (
            "most messages of dense numbers",
            "PUT",
            "",
            lambda: encode(
                {**base, "conversationHistory": [{"role": "u", "c": [0] * per_message} for _ in range(most)]}
            ),
        ),
        (
            "dense empty objects",
            "PUT",
            "",
            lambda: encode({**base, "conversationHistory": [{"role": "u", "c": [{}] * fill(limit, 300, 3)}]}),
        ),
        (
            "escaped text (\\u0041 per character)",
            "PUT",
            "",
            lambda: encode({**base, "conversationHistory": [{"role": "u", "c": "?"}]}).replace(
                b'"?"', b'"' + b"\\u0041" * fill(limit, 200, 6) + b'"'
            ),
        ),
        ("PATCH most messages, tiny", "PATCH", "", lambda: encode({"conversationHistory": [{"role": "u"}] * most})),
        (
            "numbers at the value limit",
            "PUT",
            "",
            lambda: encode({**base, "conversationHistory": [{"role": "u", "c": [0] * (values - 20)}]}),
        ),
        (
            "empty objects at the value limit",
            "PUT",
            "",
            lambda: encode({**base, "conversationHistory": [{"role": "u", "c": [{}] * (values - 20)}]}),
        ),
        (
            "most messages at the value limit",
            "PUT",
            "",
            lambda: encode(
                {
                    **base,
                    "conversationHistory": [{"role": "u", "c": [0] * (values // most - 3)} for _ in range(most)],
                }
            ),
        ),
        (
            "PATCH numbers at the value limit",
            "PATCH",
            "",
            lambda: encode({"conversationHistory": [{"role": "u", "c": [0] * (values - 20)}]}),
        ),
        (
            "PATCH one message of dense numbers",
            "PATCH",
            "",
            lambda: encode({"conversationHistory": [{"role": "u", "c": [0] * dense}]}),
        ),
        (
            "refused: one message too many",
            "PATCH",
            "",
            lambda: encode({"conversationHistory": [{"role": "u"}] * (most + 1)}),
        ),
        (
            "refused: 1,000,000 messages",
            "PATCH",
            "",
            lambda: encode({"conversationHistory": [{"role": "u", "content": "x"}] * 1_000_000}),
        ),
        ("refused: dense numbers to heartbeat/", "POST", "heartbeat/", lambda: encode({"x": [0] * dense})),
        ("refused: dense numbers to phase/", "POST", "phase/", lambda: encode({"phase": "plan", "x": [0] * dense})),
        ("refused: dense numbers to questions/", "POST", "questions/", lambda: encode({"choices": [0] * dense})),
        ("refused: dense numbers to resume/", "POST", "resume/", lambda: encode({"x": [0] * dense})),
    ]


def setup() -> tuple[Client, str, str]:
    call_command("migrate", verbosity=0)
    Contract.objects.filter(name__startswith=PREFIX).delete()
    Daemon.objects.filter(name__startswith=PREFIX).delete()
    daemon = Daemon.objects.create(name=PREFIX)
    record_daemon_heartbeat(daemon.id)
    key = create_daemon_key(daemon.id, name="bench").raw
    contract = Contract.objects.create(name=PREFIX, phase="plan")
    task = Task.objects.create(contract=contract, name="supervisor", is_supervisor=True, daemon=daemon)
    SupervisorState.objects.create(contract=contract, task=task, phase="plan", state="working")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, f"/api/v1/contracts/{contract.id}/supervisor/", str(task.id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="Runs per case; the best is shown (default 3).")
    parser.add_argument("--only", default="", help="Run only cases whose label contains this text.")
    args = parser.parse_args()
    settings.SECURE_SSL_REDIRECT = False
    settings.API_THROTTLE_RATE_PER_MINUTE = 0
    settings.ALLOWED_HOSTS = ["testserver"]
    client, url, task_id = setup()
    print(
        f"API_MAX_BODY_BYTES={settings.API_MAX_BODY_BYTES} "
        f"SUPERVISOR_MAX_CONVERSATION_MESSAGES={settings.SUPERVISOR_MAX_CONVERSATION_MESSAGES} "
        f"API_MAX_JSON_VALUES={settings.API_MAX_JSON_VALUES} "
        f"database={settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}"
    )
    client.get(url)  # warm up: URL resolution, first queries
    print(f"| {'case':40} | method | status | body MB | CPU s | wall s |")
    print(f"| {'-' * 40} | ------ | ------ | ------- | ----- | ------ |")
    for label, method, tail, make in cases(task_id):
        if args.only not in label:
            continue
        body = make()
        best_cpu = best_wall = float("inf")
        status = 0
        for _ in range(args.repeat):
            cpu, wall = time.process_time(), time.perf_counter()
            response = client.generic(method, url + tail, body, content_type="application/json")
            best_cpu = min(best_cpu, time.process_time() - cpu)
            best_wall = min(best_wall, time.perf_counter() - wall)
            status = response.status_code
        print(f"| {label:40} | {method:6} | {status:6} | {len(body) / 1e6:7.1f} | {best_cpu:5.2f} | {best_wall:6.2f} |")
        del body


if __name__ == "__main__":
    main()
