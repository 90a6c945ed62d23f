# ruff: noqa: E402  (Django is set up before the project is imported)
"""Benchmark of the persistence hot paths on PostgreSQL; prints figures, asserts nothing.

1. Heartbeat on a supervisor with a ~5 MB conversation history against one with
   an empty history, interleaved in one run: time per heartbeat, WAL bytes per
   heartbeat (pg_current_wal_lsn before and after), and how many of the
   updates PostgreSQL made HOT.
2. 1,000 spawned tasks added one by one to one supervisor (each call a save
   point with its checkpoint and pruning): mean cost of the first 100 calls
   against the last 100.
3. For information: one save point (phase change, with its checkpoint) on the
   5 MB supervisor against the empty one.
4. Checkpoint storage for a conversation that grows at every save point:
   bytes stored against one copy of the newest history.

Run it (it creates and then deletes its own rows, in the database you name):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/makima_persist DEBUG=true \\
        /work/main/.venv/bin/python bench/persistence_bench.py [--heartbeats 500] [--tasks 1000] [--saves 40]

WAL is cluster-wide: other sessions writing at the same time add to a sample,
never subtract, so the minimum and the median over many single-heartbeat
samples are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makima_supervisor.settings")
os.environ.setdefault("DEBUG", "true")

import django

django.setup()

from django.core.management import call_command
from django.db import connection

from supervisors.models import Contract, ConversationSnapshot, SupervisorCheckpoint, SupervisorState, Task
from supervisors.services.conversations import stored_bytes
from supervisors.services.state import (
    add_supervisor_spawned_task,
    update_supervisor_detailed_state,
    update_supervisor_heartbeat_state,
    update_supervisor_phase,
)

FIVE_MB = 5 * 1024 * 1024


def big_history(target_bytes: int = FIVE_MB) -> list[dict]:
    """About ``target_bytes`` of conversation that compresses poorly (hex), as real transcripts partly do."""
    message_size = 2500
    count = target_bytes // (message_size + 40)
    return [
        {"role": "user" if i % 2 else "assistant", "content": secrets.token_hex(message_size // 2)}
        for i in range(count)
    ]


def make_supervisor(name: str, history: list[dict]) -> SupervisorState:
    contract = Contract.objects.create(name=f"bench {name}", phase="plan")
    task = Task.objects.create(contract=contract, name="supervisor", is_supervisor=True, status="running")
    return SupervisorState.objects.create(
        contract=contract, task=task, phase="plan", state="working", conversation_history=history
    )


def wal_lsn() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        return cursor.fetchone()[0]


def wal_bytes(before: str, after: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(%s, %s)", [after, before])
        return int(cursor.fetchone()[0])


def hot_updates(supervisor_table: str = "supervisor_states") -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = %s", [supervisor_table]
        )
        return cursor.fetchone()


def stored_size(supervisor: SupervisorState) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_column_size(conversation_history) FROM supervisor_states WHERE id = %s", [supervisor.pk]
        )
        return cursor.fetchone()[0]


def heartbeat_bench(heartbeats: int) -> None:
    supervisors = {
        "5MB": make_supervisor("5MB", big_history()),
        "1MB": make_supervisor("1MB", big_history(FIVE_MB // 5)),
        "empty": make_supervisor("empty", []),
    }
    for name, s in supervisors.items():
        print(
            f"history {name:>5}: {len(s.conversation_history)} messages, "
            f"{stored_size(s):,} bytes stored (after TOAST compression)"
        )
    names = list(supervisors)
    times: dict[str, list[float]] = {name: [] for name in names}
    wal: dict[str, list[int]] = {name: [] for name in names}
    for warm in range(20):
        for s in supervisors.values():
            update_supervisor_heartbeat_state(s.contract_id, state="working", current_activity="warm", progress=warm)
    upd0, hot0 = hot_updates()
    for i in range(heartbeats):
        for name in names[i % 3 :] + names[: i % 3]:  # rotate who goes first
            s = supervisors[name]
            before = wal_lsn()
            start = time.perf_counter()
            update_supervisor_heartbeat_state(
                s.contract_id, state="working", current_activity=f"step {i}", progress=i % 101
            )
            times[name].append(time.perf_counter() - start)
            wal[name].append(wal_bytes(before, wal_lsn()))
    upd1, hot1 = hot_updates()

    def ms(values: list[float]) -> str:
        return f"mean {statistics.fmean(values) * 1e3:.3f} ms, median {statistics.median(values) * 1e3:.3f} ms"

    print(f"\nheartbeat x{heartbeats} each, interleaved")
    for name in names:
        print(
            f"  {name:>5}: {ms(times[name])}; WAL per heartbeat: min {min(wal[name])} B, "
            f"median {statistics.median(wal[name]):.0f} B"
        )
    ratio_mean = statistics.fmean(times["5MB"]) / statistics.fmean(times["empty"])
    ratio_median = statistics.median(times["5MB"]) / statistics.median(times["empty"])
    wal_ratio = min(wal["5MB"]) / min(wal["1MB"])
    print(f"  time ratio 5MB/empty: mean {ratio_mean:.3f}, median {ratio_median:.3f} (target <= 1.2)")
    print(f"  WAL ratio 5MB/1MB (min): {wal_ratio:.3f} (target: independent of history size)")
    total = upd1 - upd0
    print(f"  HOT updates on supervisor_states: {hot1 - hot0} of {total}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'supervisor_states' ORDER BY 1")
        print(f"  (indexes on supervisor_states: {', '.join(row[0] for row in cursor.fetchall())})")

    for name, s in supervisors.items():
        samples = []
        for i in range(5):
            start = time.perf_counter()
            update_supervisor_phase(s.contract_id, f"phase {i}")
            samples.append(time.perf_counter() - start)
        print(f"  save point (phase change + checkpoint), {name:>5}: median {statistics.median(samples) * 1e3:.2f} ms")
    for s in supervisors.values():
        s.contract.delete()


def timed_spawns(supervisor: SupervisorState, tasks: list[Task]) -> list[float]:
    durations = []
    for task in tasks:
        start = time.perf_counter()
        add_supervisor_spawned_task(supervisor.contract_id, task.id)
        durations.append(time.perf_counter() - start)
    return durations


def children(supervisor: SupervisorState, count: int) -> list[Task]:
    return Task.objects.bulk_create(
        [Task(contract=supervisor.contract, name=f"child {i}", status="running") for i in range(count)]
    )


def quartile(values: list[float]) -> float:
    """Lower quartile: the figure other processes' load disturbs least."""
    return statistics.quantiles(values, n=4)[0]


def report(label: str, first: list[float], last: list[float]) -> float:
    def ms(values: list[float]) -> str:
        return (
            f"mean {statistics.fmean(values) * 1e3:.3f} ms, median {statistics.median(values) * 1e3:.3f} ms, "
            f"lower quartile {quartile(values) * 1e3:.3f} ms"
        )

    print(f"  {label}")
    print(f"    first {len(first)}: {ms(first)}")
    print(f"    last  {len(last)}: {ms(last)}")
    ratio = statistics.fmean(last) / statistics.fmean(first)
    print(
        f"    ratio last/first: mean {ratio:.3f}, median {statistics.median(last) / statistics.median(first):.3f}, "
        f"lower quartile {quartile(last) / quartile(first):.3f} (target <= 1.5)"
    )
    return ratio


def spawn_bench(count: int) -> None:
    history = [{"role": "user", "content": "Build the thing."}] * 20
    block = min(100, count // 2)
    print(f"\nspawned tasks: {count} added one by one to one supervisor (wait=True: spawned and pending)")

    # 1. As the issue words it: one supervisor, calls 1..count in order.
    supervisor = make_supervisor("spawn", history)
    durations = timed_spawns(supervisor, children(supervisor, count))
    row = SupervisorState.objects.defer("conversation_history").get(pk=supervisor.pk)
    assert len(row.spawned_task_ids) == len(row.pending_task_ids) == count
    report("in order (calls 1..100 then, later, the last 100)", durations[:block], durations[-block:])
    kept = supervisor.checkpoints.count()
    snapshots = supervisor.conversation_snapshots.count()
    print(f"    checkpoints kept: {kept}, conversation snapshots: {snapshots}")
    supervisor.contract.delete()

    # 2. The same calls side by side, so that load from other processes on the
    # machine hits both blocks alike: a fresh supervisor gets its first tasks
    # while one already holding count - block tasks gets its last ones.
    # Three rounds, each with new supervisors.
    for round_number in range(1, 4):
        fresh = make_supervisor("fresh", history)
        full = make_supervisor("full", history)
        fresh_tasks, full_tasks = children(fresh, block), children(full, count)
        timed_spawns(full, full_tasks[: count - block])
        first: list[float] = []
        last: list[float] = []
        for i in range(block):
            pairs = [(fresh, fresh_tasks[i], first), (full, full_tasks[count - block + i], last)]
            for supervisor, task, into in pairs if i % 2 else reversed(pairs):
                into.extend(timed_spawns(supervisor, [task]))
        report(
            f"interleaved, round {round_number} (tasks 1..{block} of one supervisor "
            f"vs {count - block + 1}..{count} of another)",
            first,
            last,
        )
        fresh.contract.delete()
        full.contract.delete()


def storage_bench(saves: int) -> None:
    """Checkpoint storage for a conversation that grows at each save point (a PATCH adding messages)."""
    supervisor = make_supervisor("storage", big_history(FIVE_MB // 5))
    history = list(supervisor.conversation_history)
    added_per_save = 20
    for _ in range(saves):
        history = history + big_history(added_per_save * 2540)[:added_per_save]
        update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": history})
    one_copy = len(json.dumps(history).encode())
    kept = list(SupervisorCheckpoint.objects.filter(supervisor=supervisor))
    naive = sum(
        ConversationSnapshot.objects.filter(id=c.conversation_id).values_list("message_count", flat=True)[0]
        for c in kept
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(pg_column_size(messages)), 0), COUNT(*) FROM supervisor_conversation_snapshots "
            "WHERE supervisor_id = %s",
            [supervisor.pk],
        )
        on_disk, snapshots = cursor.fetchone()
    print(f"\ncheckpoint storage: {saves} saves, each adding {added_per_save} messages to a ~1 MB conversation")
    print(f"  final history: {len(history)} messages, {one_copy / 1e6:.2f} MB as JSON text")
    print(
        f"  checkpoints kept: {len(kept)}, snapshots: {snapshots}, "
        f"snapshot bytes (size_bytes): {stored_bytes(supervisor) / 1e6:.2f} MB, on disk: {on_disk / 1e6:.2f} MB"
    )
    print(
        f"  a copy per checkpoint would hold {naive} messages (~{naive / len(history):.1f} x the final history); "
        f"stored: {stored_bytes(supervisor) / one_copy:.2f} x"
    )
    supervisor.contract.delete()


def wal_by_size() -> None:
    """Minimum WAL per heartbeat for histories from empty to 5 MB: flat once the history is out of line."""
    print("\nWAL per heartbeat by history size (minimum of 40)")
    for count in (0, 1, 20, 400, 2000):
        supervisor = make_supervisor(f"wal {count}", big_history(count * 2540)[:count] if count else [])
        samples = []
        for i in range(40):
            before = wal_lsn()
            update_supervisor_heartbeat_state(
                supervisor.contract_id, state="working", current_activity=f"s{i}", progress=i
            )
            samples.append(wal_bytes(before, wal_lsn()))
        print(f"  {count:5d} messages, {stored_size(supervisor):>10,} bytes stored: {min(samples)} B")
        supervisor.contract.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heartbeats", type=int, default=500, help="heartbeats per supervisor (default 500)")
    parser.add_argument("--tasks", type=int, default=1000, help="spawned tasks to add (default 1000)")
    parser.add_argument("--saves", type=int, default=40, help="growing-conversation saves (default 40)")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("This benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    call_command("migrate", verbosity=0)
    print(f"PostgreSQL {connection.pg_version}, database {connection.settings_dict['NAME']}")
    heartbeat_bench(args.heartbeats)
    spawn_bench(args.tasks)
    storage_bench(args.saves)
    wal_by_size()


if __name__ == "__main__":
    main()
