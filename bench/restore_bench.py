"""Benchmark: ``manage.py restore_supervisors --all`` over many supervisors, in supervisors per second.

Builds the data itself with bulk_create (a mix of what an outage leaves
behind: valid interrupted supervisors, ones whose state is broken and need a
checkpoint, stale ones, and ones needing manual intervention because their
contract was archived; each with 20 spawned tasks), then runs the real command
and prints the figures.

It WIPES the service's tables in the database it is pointed at. Usage:

    # SQLite (a scratch file, created and migrated here)
    /work/main/.venv/bin/python bench/restore_bench.py --database-url sqlite:////tmp/restore_bench.sqlite3

    # PostgreSQL
    /work/main/.venv/bin/python bench/restore_bench.py \
        --database-url postgres://postgres@127.0.0.1:5432/makima_restore

Options: --supervisors N (default 10000), --batch-size N (default 200),
--repeat (also time a second run over the now-restored supervisors),
--compare N (default 1000: restore N fresh supervisors one by one with
restore_supervisor and N with the command, side by side, and print the ratio).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makima_supervisor.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def wipe() -> None:
    from django.db import connection

    tables = [
        "supervisor_restoration_log",
        "supervisor_checkpoints",
        "supervisor_conversation_snapshots",
        "supervisor_question_answers",
        "idempotency_keys",
        "daemon_api_keys",
        "supervisor_states",
        "tasks",
        "contracts",
        "daemons",
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE " + ", ".join(tables) + " CASCADE")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")


def build(n: int, tasks_per_supervisor: int = 20) -> dict[str, int]:
    """The outage's leftovers, in bulk. Returns how many of each kind."""
    from django.db import transaction
    from django.utils import timezone

    from supervisors.enums import ContractStatus, SavePoint, SupervisorStatus, TaskStatus
    from supervisors.models import Contract, ConversationSnapshot, SupervisorCheckpoint, SupervisorState, Task

    now = timezone.now()
    history = [{"role": "user" if i % 2 else "assistant", "content": f"message {i} " + "x" * 200} for i in range(12)]
    kinds = {"valid": 0, "checkpoint": 0, "stale": 0, "manual": 0}
    contracts, tasks, states = [], [], []
    plan = []
    for i in range(n):
        kind = ("valid", "valid", "valid", "valid", "checkpoint", "checkpoint", "stale", "stale", "stale", "manual")[
            i % 10
        ]
        kinds[kind] += 1
        contract = Contract(
            id=uuid.uuid4(),
            name=f"bench {i}",
            phase="build",
            status=ContractStatus.ARCHIVED if kind == "manual" else ContractStatus.ACTIVE,
        )
        contracts.append(contract)
        supervisor_task = Task(
            id=uuid.uuid4(), contract_id=contract.id, name="supervisor", is_supervisor=True, status=TaskStatus.RUNNING
        )
        tasks.append(supervisor_task)
        spawned = []
        for j in range(tasks_per_supervisor):
            status = TaskStatus.DONE if j % 4 == 0 else TaskStatus.RUNNING
            task = Task(id=uuid.uuid4(), contract_id=contract.id, parent_task_id=None, name=f"task {j}", status=status)
            tasks.append(task)
            spawned.append(task.id)
        pending = spawned[:6]
        state = SupervisorState(
            id=uuid.uuid4(),
            contract_id=contract.id,
            task_id=supervisor_task.id,
            phase="build",
            state=SupervisorStatus.WORKING if kind == "stale" else SupervisorStatus.INTERRUPTED,
            current_activity="waiting for module builds",
            progress=40,
            conversation_history="lost in the crash" if kind == "checkpoint" else history,
            spawned_task_ids=spawned,
            pending_task_ids=pending,
            pending_questions=[],
            last_activity=now - timedelta(hours=2) if kind == "stale" else now - timedelta(seconds=30),
        )
        states.append(state)
        plan.append((kind, state, spawned, pending))
    with transaction.atomic():
        Contract.objects.bulk_create(contracts, batch_size=2000)
        Task.objects.bulk_create(tasks, batch_size=5000)
        SupervisorState.objects.bulk_create(states, batch_size=1000)
        snapshots = [
            ConversationSnapshot(supervisor_id=s.id, digest="bench", messages=history, message_count=len(history))
            for _, s, _, _ in plan
        ]
        ConversationSnapshot.objects.bulk_create(snapshots, batch_size=1000)
        snapshot_of = dict(ConversationSnapshot.objects.values_list("supervisor_id", "id"))
        checkpoints = []
        for kind, state, spawned, pending in plan:
            base = {
                "supervisor_id": state.id,
                "state": SupervisorStatus.WAITING_FOR_TASKS,
                "phase": "build",
                "current_activity": "spawning",
                "progress": 35,
                "spawned_task_ids": spawned,
                "pending_task_ids": pending,
                "pending_questions": [],
                "conversation_id": snapshot_of[state.id],
            }
            checkpoints.append(SupervisorCheckpoint(reason=SavePoint.TASK_SPAWNED, **base))
            if kind == "checkpoint":  # the newest checkpoint is broken too: the one before it is used
                checkpoints.append(
                    SupervisorCheckpoint(reason=SavePoint.PHASE_CHANGED, **{**base, "pending_task_ids": [uuid.uuid4()]})
                )
            else:
                checkpoints.append(SupervisorCheckpoint(reason=SavePoint.PHASE_CHANGED, **base))
        SupervisorCheckpoint.objects.bulk_create(checkpoints, batch_size=2000)
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return kinds


def run_command(batch_size: int) -> tuple[float, dict]:
    from django.core.management import call_command

    out = io.StringIO()
    started = time.perf_counter()
    call_command(
        "restore_supervisors",
        "--all",
        "--json",
        "--source",
        "daemon_restart",
        "--batch-size",
        str(batch_size),
        stdout=out,
        stderr=io.StringIO(),
    )
    return time.perf_counter() - started, json.loads(out.getvalue())


def one_by_one() -> tuple[float, int]:
    """The same supervisors through restore_supervisor, one transaction each (the API's resume path)."""
    from supervisors.enums import RestorationSource
    from supervisors.models import SupervisorState
    from supervisors.services.actors import Actor
    from supervisors.services.restoration import restore_supervisor

    actor = Actor.command("restore_bench")
    contract_ids = list(SupervisorState.objects.order_by("id").values_list("contract_id", flat=True))
    started = time.perf_counter()
    for contract_id in contract_ids:
        restore_supervisor(contract_id, source=RestorationSource.DAEMON_RESTART, actor=actor)
    return time.perf_counter() - started, len(contract_ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="sqlite:////tmp/restore_bench.sqlite3")
    parser.add_argument("--supervisors", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--repeat", action="store_true", help="time a second run over the restored supervisors")
    parser.add_argument(
        "--compare",
        type=int,
        default=1000,
        metavar="N",
        help="also restore N fresh supervisors one by one and N in batches, side by side (0: skip)",
    )
    args = parser.parse_args()
    setup(args.database_url)
    from django.db import connection

    wipe()
    started = time.perf_counter()
    kinds = build(args.supervisors)
    built = time.perf_counter() - started
    print(f"database: {connection.vendor} ({connection.settings_dict['NAME']}); {os.cpu_count()} CPUs")
    print(f"built {args.supervisors} supervisors x 20 spawned tasks in {built:.1f}s: {kinds}")
    seconds, summary = run_command(args.batch_size)
    counts = summary["counts"]
    total = sum(counts.values())
    print(
        f"restore_supervisors --all --batch-size {args.batch_size}: {total} supervisors in {seconds:.2f}s = "
        f"{total / seconds:.0f} supervisors/s"
    )
    print("  by outcome: " + ", ".join(f"{outcome} {n}" for outcome, n in counts.items() if n))
    if args.compare:
        wipe()
        build(args.compare)
        single_seconds, count = one_by_one()
        wipe()
        build(args.compare)
        batch_seconds, _ = run_command(args.batch_size)
        print(
            f"side by side over {count} supervisors: one by one (restore_supervisor) {count / single_seconds:.0f}/s, "
            f"batched (restore_supervisors) {count / batch_seconds:.0f}/s: batching is "
            f"{single_seconds / batch_seconds:.1f}x faster"
        )
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    if args.repeat:
        seconds, summary = run_command(args.batch_size)
        total = sum(n for outcome, n in summary["counts"].items() if outcome != "skipped")
        print(
            f"second run (over the same, now restored): {total} in {seconds:.2f}s = {total / seconds:.0f} supervisors/s"
        )


if __name__ == "__main__":
    main()
