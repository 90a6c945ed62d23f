"""Benchmark: failover at scale. K of D daemons die at once; the survivors claim their supervisors over HTTP.

Why: issue 16 promises that every orphaned supervisor runs again on a live
daemon within a bounded time and with nobody involved. This measures that
time for a large outage, through the real path (``POST /api/v1/supervisors/claim/``
on gunicorn, the survivors claiming concurrently), and, side by side in the
same run, the same restorations by an operator's ``restore_supervisors
--orphaned`` in-process, so the price of going through HTTP and per-claim
transactions shows as a ratio.

It builds N supervisors on D daemons with bulk_create (each with a short
conversation and spawned tasks), kills K daemons by backdating their lease
(``last_heartbeat_at`` an hour ago: gone by DAEMON_GONE_AFTER_SECONDS, which
is left at its default), starts gunicorn, and lets each of the D - K
survivors claim (``capacity`` each) in its own thread until a claim comes back
empty. Then it rebuilds the same outage and restores the orphans with the
command. It WIPES the service's tables in the database it is pointed at.

    createdb ms_failover_bench
    /work/main/.venv/bin/python bench/failover_bench.py \
        --database-url postgres://postgres@127.0.0.1:5432/ms_failover_bench

Options: --supervisors N (default 10000), --daemons D (50), --kill K (10),
--capacity C (claim capacity, default 50 = FAILOVER_MAX_CLAIM), --workers W
and --threads T (gunicorn; default gunicorn.conf.py's), --batch-size B
(restore_supervisors', default 200).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from restore_bench import setup, wipe  # noqa: E402

CLAIM = "/api/v1/supervisors/claim/"


def build(supervisors: int, daemons: int, kill: int) -> tuple[list[tuple[uuid.UUID, str]], set[uuid.UUID]]:
    """The fleet in bulk: daemons with keys, supervisors spread evenly; K daemons' leases backdated.

    Returns the survivors (id, raw key) and the contracts of the killed daemons' supervisors."""
    from django.db import connection, transaction
    from django.utils import timezone

    from supervisors.enums import DaemonStatus, SupervisorStatus, TaskStatus
    from supervisors.models import Contract, Daemon, SupervisorState, Task
    from supervisors.services.world import create_daemon_key

    now = timezone.now()
    history = [{"role": "user" if i % 2 else "assistant", "content": f"message {i} " + "x" * 200} for i in range(12)]
    fleet = Daemon.objects.bulk_create(
        [Daemon(name=f"bench-d{i:03d}", status=DaemonStatus.CONNECTED, last_heartbeat_at=now) for i in range(daemons)]
    )
    keys = {d.id: create_daemon_key(d.id, name="bench").raw for d in fleet}
    contracts, tasks, states = [], [], []
    orphaned: set[uuid.UUID] = set()
    killed = {d.id for d in fleet[:kill]}
    for i in range(supervisors):
        daemon = fleet[i % daemons]
        contract = Contract(id=uuid.uuid4(), name=f"bench {i}", phase="build")
        task = Task(
            id=uuid.uuid4(),
            contract_id=contract.id,
            name="supervisor",
            is_supervisor=True,
            daemon_id=daemon.id,
            status=TaskStatus.RUNNING,
        )
        spawned = [uuid.uuid4() for _ in range(5)]
        tasks.append(task)
        tasks += [Task(id=t, contract_id=contract.id, name="work", status=TaskStatus.RUNNING) for t in spawned]
        contracts.append(contract)
        states.append(
            SupervisorState(
                contract_id=contract.id,
                task_id=task.id,
                phase="build",
                state=SupervisorStatus.WORKING,
                current_activity="building",
                conversation_history=history,
                spawned_task_ids=spawned,
                pending_task_ids=spawned[:2],
                pending_questions=[],
                last_activity=now - timedelta(seconds=i % 600),
            )
        )
        if daemon.id in killed:
            orphaned.add(contract.id)
    with transaction.atomic():
        Contract.objects.bulk_create(contracts, batch_size=2000)
        Task.objects.bulk_create(tasks, batch_size=5000)
        SupervisorState.objects.bulk_create(states, batch_size=1000)
        # The crash: K daemons fall silent at once; their lease ran out an hour ago.
        Daemon.objects.filter(id__in=killed).update(last_heartbeat_at=now - timedelta(hours=1))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    survivors = [(d.id, keys[d.id]) for d in fleet if d.id not in killed]
    return survivors, orphaned


def claim_over_http(
    host: str, port: int, survivors: list[tuple[uuid.UUID, str]], capacity: int
) -> tuple[float, float, int, Counter, list[str]]:
    """Every survivor claims in its own thread until an empty answer; all start together.

    Returns (seconds until the last supervisor was claimed, seconds until every claimer stopped, claim requests,
    contract -> times claimed, errors)."""
    from soak.client import Client, Recorder

    recorder = Recorder()
    barrier = threading.Barrier(len(survivors) + 1)
    claimed: Counter = Counter()
    last_claimed = [0.0]
    requests = [0]
    errors: list[str] = []
    lock = threading.Lock()

    def claimer(key: str) -> None:
        client = Client(host, port, recorder, headers={"Authorization": f"Bearer {key}"}, timeout=120)
        try:
            barrier.wait(timeout=60)
            while True:
                reply = client.request("POST", CLAIM, {"capacity": capacity}, endpoint="claim")
                now = time.perf_counter()
                with lock:
                    requests[0] += 1
                if not reply.ok or reply.body["failed"]:
                    with lock:
                        errors.append(f"{reply.status} {str(reply.body)[:200]}")
                    return
                if not reply.body["claimed"]:
                    return
                with lock:
                    claimed.update(c["contractId"] for c in reply.body["claimed"])
                    last_claimed[0] = max(last_claimed[0], now)
        finally:
            client.close()

    threads = [threading.Thread(target=claimer, args=(key,), daemon=True) for _, key in survivors]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=60)
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return last_claimed[0] - started, time.perf_counter() - started, requests[0], claimed, errors


def restore_in_process(batch_size: int) -> tuple[float, dict]:
    """The operator's way to the same end: ``restore_supervisors --orphaned`` (no daemon takes them over)."""
    from django.core.management import call_command

    out = io.StringIO()
    started = time.perf_counter()
    call_command(
        "restore_supervisors",
        "--orphaned",
        "--json",
        "--source",
        "daemon_restart",
        "--reason",
        "failover bench",
        "--batch-size",
        str(batch_size),
        stdout=out,
        stderr=io.StringIO(),
    )
    return time.perf_counter() - started, json.loads(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="PostgreSQL (concurrent claims need SKIP LOCKED)")
    parser.add_argument("--supervisors", type=int, default=10_000)
    parser.add_argument("--daemons", type=int, default=50)
    parser.add_argument("--kill", type=int, default=10)
    parser.add_argument("--capacity", type=int, default=50)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=200)
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be PostgreSQL")
    if not 0 < args.kill < args.daemons:
        parser.error("--kill must be between 1 and --daemons - 1")
    setup(args.database_url)
    from django.db import connection

    from soak.server import GunicornServer
    from supervisors.models import RestorationLog, SupervisorState
    from supervisors.services.claims import orphaned_supervisors

    print(f"database: {connection.vendor} ({connection.settings_dict['NAME']}); {os.cpu_count()} CPUs")
    wipe()
    started = time.perf_counter()
    survivors, orphaned = build(args.supervisors, args.daemons, args.kill)
    print(
        f"built {args.supervisors} supervisors on {args.daemons} daemons in {time.perf_counter() - started:.1f}s; "
        f"{args.kill} daemons killed at once: {len(orphaned)} supervisors orphaned, {len(survivors)} survivors"
    )
    connection.close()
    server = GunicornServer(
        database_url=args.database_url,
        secret_key=os.environ["SECRET_KEY"],
        workers=args.workers,
        threads=args.threads,
        extra_env={"API_THROTTLE_RATE_PER_MINUTE": "0"},
        log_path=Path("/tmp") / f"failover-bench-{secrets.token_hex(3)}.log",
    )
    with server:
        all_claimed, all_stopped, requests, claimed, errors = claim_over_http(
            server.host, server.port, survivors, args.capacity
        )
    left = orphaned_supervisors().count()
    twice = [c for c, n in claimed.items() if n > 1]
    wrong = set(map(uuid.UUID, claimed)) ^ orphaned
    logs = RestorationLog.objects.filter(source="task_reassignment", success=True).count()
    on_survivors = SupervisorState.objects.filter(
        contract_id__in=orphaned, task__daemon_id__in=[d for d, _ in survivors]
    ).count()
    http_rate = len(claimed) / all_claimed
    print(
        f"claims over HTTP (gunicorn {server.env.get('GUNICORN_WORKERS', 'default')} workers x "
        f"{server.env.get('GUNICORN_THREADS', '8')} threads, {len(survivors)} survivors, capacity {args.capacity}): "
        f"all {len(claimed)} running again after {all_claimed:.2f}s (every claimer done after {all_stopped:.2f}s); "
        f"{requests} claims = {requests / all_stopped:.0f} claims/s, {http_rate:.0f} supervisors claimed/s"
    )
    print(
        f"  checked: claimed twice {len(twice)}, not orphaned or left out {len(wrong)}, still orphaned {left}, "
        f"on a survivor {on_survivors}/{len(orphaned)}, restoration log rows {logs}, errors {len(errors)} "
        + "; ".join(errors[:3])
    )

    wipe()
    build(args.supervisors, args.daemons, args.kill)
    seconds, summary = restore_in_process(args.batch_size)
    restored = sum(n for outcome, n in summary["counts"].items() if outcome != "skipped")
    command_rate = restored / seconds
    print(
        f"restore_supervisors --orphaned --batch-size {args.batch_size} in-process: {restored} in {seconds:.2f}s = "
        f"{command_rate:.0f} supervisors/s"
    )
    print(
        f"side by side: claims over HTTP restore {http_rate:.0f}/s, the command {command_rate:.0f}/s: "
        f"the command is {command_rate / http_rate:.2f}x the claims' rate"
    )
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
