"""Latency of resume for a supervisor with a 5 MB conversation history, over HTTP under gunicorn.

Usage (PostgreSQL; traffic stays on 127.0.0.1; bounded by --requests):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/makima_api \\
        /work/main/.venv/bin/python bench/resume_bench.py --requests 40 --history-mb 5

Each request runs the whole restoration protocol (row lock, validation, state
write, restoration log) and returns the context with the full history. Requests
are sequential from one client, so the figures are latencies, not throughput.
Also measured: a retried resume answered from its Idempotency-Key (no restoration).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_heartbeat_bench import free_port, start_gunicorn, stop  # noqa: E402

BENCH_PREFIX = "bench-resume"


def make_history(megabytes: float) -> list[dict]:
    """Messages of about 2 KB each, shaped like an agent's conversation."""
    text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 35
    count = int(megabytes * 1024 * 1024 / (len(text) + 120))
    return [
        {"role": "user" if i % 2 else "assistant", "content": text, "meta": {"turn": i, "tool_calls": []}}
        for i in range(count)
    ]


def setup(megabytes: float) -> tuple[str, str, int]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from supervisors.models import Contract, Daemon, SupervisorState, Task
    from supervisors.services.world import create_daemon_key, record_daemon_heartbeat

    call_command("migrate", verbosity=0)
    Contract.objects.filter(name__startswith=BENCH_PREFIX).delete()
    Daemon.objects.filter(name__startswith=BENCH_PREFIX).delete()
    daemon = Daemon.objects.create(name=BENCH_PREFIX)
    record_daemon_heartbeat(daemon.id)
    key = create_daemon_key(daemon.id, name="bench").raw
    contract = Contract.objects.create(name=BENCH_PREFIX, phase="plan")
    task = Task.objects.create(contract=contract, name="supervisor", is_supervisor=True, daemon=daemon)
    history = make_history(megabytes)
    SupervisorState.objects.create(
        contract=contract, task=task, phase="plan", state="working", conversation_history=history
    )
    size = len(json.dumps(history))
    connections.close_all()
    return str(contract.id), key, size


def timed_post(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict) -> tuple[float, int, int]:
    start = time.perf_counter()
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return (time.perf_counter() - start) * 1000, response.status, len(data)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--history-mb", type=float, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    options = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (e.g. postgres://postgres@127.0.0.1:5432/makima_api).")
    contract_id, key, size = setup(options.history_mb)
    port = free_port()
    # Back-to-back resumes of one supervisor would otherwise be refused as duplicates (409).
    proc = start_gunicorn(port, {}, options.workers, options.threads)
    path = f"/api/v1/contracts/{contract_id}/supervisor/resume/"
    body = json.dumps({"source": "daemon_restart", "reason": "bench"}).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        timed_post(conn, path, body, headers)  # warm-up
        fresh, sizes = [], set()
        for _ in range(options.requests):
            ms, status, length = timed_post(conn, path, body, headers)
            assert status == 200, status
            fresh.append(ms)
            sizes.add(length)
        replay_headers = {**headers, "Idempotency-Key": f"bench-{uuid.uuid4()}"}
        timed_post(conn, path, body, replay_headers)  # the first answer, stored
        replays = []
        for _ in range(options.requests):
            ms, status, _ = timed_post(conn, path, body, replay_headers)
            assert status == 200, status
            replays.append(ms)
    finally:
        stop(proc)
    print(
        f"resume, history {size / 1024 / 1024:.1f} MB ({max(sizes) / 1024 / 1024:.1f} MB response), "
        f"{options.requests} sequential requests, gunicorn {options.workers}x{options.threads}, 127.0.0.1"
    )
    for name, values in (("restoring", fresh), ("Idempotency-Key replay", replays)):
        print(
            f"  {name:<24} p50 {statistics.median(values):7.1f} ms   p99 {percentile(values, 99):7.1f} ms   "
            f"min {min(values):7.1f} ms"
        )


if __name__ == "__main__":
    main()
