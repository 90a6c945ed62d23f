# ruff: noqa: E402  (Django is set up before the project is imported)
"""Appending one message to a 5 MB conversation against an empty one: full PUT against the delta form.

Side by side in one run, interleaved round by round, through the whole Django
request path in-process (a daemon's API key, the real middleware, views and
services, real PostgreSQL; no sockets), for each way of sending one new message:

* ``put``: the whole history plus the message (what daemons did before issue 12);
* ``append``: ``POST supervisor/conversation/`` with ``expectedLength`` and the message;
* ``phase+append``: a save point (phase change, with its checkpoint) carrying the
  message as ``conversationAppend``.

Per request: bytes sent (the body), Python CPU of this process (the service's
work; the body is encoded before the clock starts, as the daemon's cost is not
the service's), wall time, and WAL bytes (``pg_current_wal_insert_lsn`` before
and after; cluster-wide, so other sessions can only add: the minimum and the
median are shown). Ratios are 5 MB over empty, medians of the rounds.

With ``--compression both`` every round runs once with the conversation column
compressed by pglz and once by lz4 (``ALTER TABLE ... SET COMPRESSION``, a
catalog change; each append writes a new value, compressed by the setting of
the moment). The bench's database is left with the column as it found it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/makima_h_delta_bench \\
        .venv/bin/python bench/append_bench.py [--rounds 15] [--compression both|pglz|lz4] [--content hex|text]

``--content hex`` (the default, as bench/persistence_bench.py) barely compresses; ``text`` is English-like
words, which TOAST compresses about threefold, as real transcripts partly do.

It creates its rows in the database named and deletes them at the end; run
``manage.py migrate`` on that database first. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makima_supervisor.settings")
os.environ.setdefault("DEBUG", "true")

import django

django.setup()

from django.conf import settings
from django.db import connection
from django.test import Client

from bench.persistence_bench import big_history
from supervisors.models import Contract, Daemon, SupervisorState, Task
from supervisors.services.world import create_daemon_key, record_daemon_heartbeat

settings.DEBUG = False  # no query log: it would keep every 5 MB statement in memory and cost CPU

SIZES = ("empty", "5MB")
MODES = ("put", "append", "phase+append")
TABLE = SupervisorState._meta.db_table


@dataclass
class Subject:
    """One supervisor the bench appends to, and the history it holds (the daemon's own copy)."""

    contract_id: uuid.UUID
    task_id: uuid.UUID
    history: list[dict] = field(default_factory=list)


@dataclass
class Sample:
    sent: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    wal: list[int] = field(default_factory=list)


def wal_lsn() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()")
        return cursor.fetchone()[0]


def wal_bytes(before: str, after: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(%s, %s)", [after, before])
        return int(cursor.fetchone()[0])


def set_compression(method: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN conversation_history SET COMPRESSION {method}")


def column_compression() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attcompression FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attname = 'conversation_history'",
            [TABLE],
        )
        return {"p": "pglz", "l": "lz4"}.get(cursor.fetchone()[0], "default")


def text_history(target_bytes: int = 5 * 1024 * 1024) -> list[dict]:
    """About ``target_bytes`` of word salad: compressible like prose and code, unlike hex."""
    rng = random.Random(12)
    words = [
        "the", "test", "passes", "function", "return", "limiter", "request", "daemon", "supervisor", "error",
        "config", "value", "import", "class", "self", "None", "assert", "rate", "window", "bucket", "token",
    ]  # fmt: skip
    messages, size = [], 0
    while size < target_bytes:
        content = " ".join(rng.choice(words) for _ in range(400)) + f" #{len(messages)}"
        messages.append({"role": "user" if len(messages) % 2 else "assistant", "content": content})
        size += len(content) + 40
    return messages


def make_subject(daemon: Daemon, name: str, history: list[dict]) -> Subject:
    contract = Contract.objects.create(name=f"append bench {name}", phase="plan")
    task = Task.objects.create(
        contract=contract, name="supervisor", is_supervisor=True, status="running", daemon=daemon
    )
    SupervisorState.objects.create(
        contract=contract, task=task, phase="plan", state="working", conversation_history=list(history)
    )
    return Subject(contract_id=contract.id, task_id=task.id, history=list(history))


def request_of(mode: str, subject: Subject, message: dict, round_no: int) -> tuple[str, str, bytes]:
    """(method, path, body) of one way of sending ``message``."""
    base = f"/api/v1/contracts/{subject.contract_id}/supervisor/"
    append = {"expectedLength": len(subject.history), "messages": [message]}
    if mode == "put":
        body = {
            "taskId": str(subject.task_id),
            "phase": "plan",
            "state": "working",
            "conversationHistory": [*subject.history, message],
        }
        return "put", base, json.dumps(body).encode()
    if mode == "append":
        return "post", base + "conversation/", json.dumps(append).encode()
    return "post", base + "phase/", json.dumps({"phase": f"p{round_no % 7}", "conversationAppend": append}).encode()


def measure(client: Client, mode: str, subject: Subject, round_no: int, into: Sample) -> None:
    message = {"role": "assistant", "content": f"round {round_no}: the tests pass; moving on."}
    method, path, body = request_of(mode, subject, message, round_no)
    before = wal_lsn()
    cpu = time.process_time()
    wall = time.perf_counter()
    response = getattr(client, method)(path, data=body, content_type="application/json")
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    into.wal.append(wal_bytes(before, wal_lsn()))
    if response.status_code != 200:
        raise SystemExit(f"{mode} answered {response.status_code}: {response.content[:300]!r}")
    subject.history.append(message)
    into.sent.append(len(body))
    into.cpu.append(cpu)
    into.wall.append(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--compression", choices=["both", "pglz", "lz4"], default="both")
    parser.add_argument("--content", choices=["hex", "text"], default="hex")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("Run it on PostgreSQL: DATABASE_URL=postgres://...")
    methods = ["pglz", "lz4"] if args.compression == "both" else [args.compression]
    found = column_compression()

    daemon = Daemon.objects.create(name=f"append bench {uuid.uuid4().hex[:6]}", status="connected")
    record_daemon_heartbeat(daemon.id)
    key = create_daemon_key(daemon.id, name="bench").raw
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="localhost")
    big = big_history() if args.content == "hex" else text_history()
    text_bytes = len(json.dumps(big).encode())
    subjects = {
        (method, size, mode): make_subject(daemon, f"{method} {size} {mode}", big if size == "5MB" else [])
        for method in methods
        for size in SIZES
        for mode in MODES
    }
    samples = {key: Sample() for key in subjects}
    try:
        for round_no in range(args.rounds + 1):  # round 0 warms up (and converts each value to the method)
            for method in methods:
                set_compression(method)
                order = list(MODES) if round_no % 2 else list(reversed(MODES))
                for mode in order:
                    for size in SIZES if round_no % 2 else reversed(SIZES):
                        target = samples[(method, size, mode)] if round_no else Sample()
                        measure(client, mode, subjects[(method, size, mode)], round_no, target)
        report(samples, methods, args.rounds, text_bytes)
    finally:
        Contract.objects.filter(name__startswith="append bench").delete()
        daemon.delete()
        if found in ("pglz", "lz4"):
            set_compression(found)
        else:
            set_compression("default")


def report(samples: dict, methods: list[str], rounds: int, text_bytes: int) -> None:
    print(f"one message appended; {rounds} rounds; 5 MB history = {text_bytes / 1e6:.2f} MB of JSON text")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT pg_column_size(conversation_history) FROM {TABLE} WHERE octet_length(conversation_history::text) "
            "> 1000000 LIMIT 1"
        )
        print(f"stored (after TOAST compression): {cursor.fetchone()[0] / 1e6:.2f} MB")
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    header = (
        f"{'column':6} {'mode':13} {'size':6} {'sent B':>9} {'CPU ms':>8} {'wall ms':>8} "
        f"{'WAL min B':>10} {'WAL med B':>10}"
    )
    print(header)
    for method in methods:
        for mode in MODES:
            for size in SIZES:
                s = samples[(method, size, mode)]
                print(
                    f"{method:6} {mode:13} {size:6} {statistics.median(s.sent):9.0f} "
                    f"{statistics.median(s.cpu) * 1e3:8.2f} {statistics.median(s.wall) * 1e3:8.2f} "
                    f"{min(s.wal):10d} {statistics.median(s.wal):10.0f}"
                )
    print("ratios 5MB / empty (medians):")
    for method in methods:
        for mode in MODES:
            big, small = samples[(method, "5MB", mode)], samples[(method, "empty", mode)]
            print(
                f"  {method:6} {mode:13} sent x{statistics.median(big.sent) / statistics.median(small.sent):8.1f}  "
                f"CPU x{statistics.median(big.cpu) / statistics.median(small.cpu):6.2f}  "
                f"wall x{statistics.median(big.wall) / statistics.median(small.wall):6.2f} (target <= 2 for append)  "
                f"WAL x{statistics.median(big.wal) / max(statistics.median(small.wal), 1):8.1f}"
            )


if __name__ == "__main__":
    main()
