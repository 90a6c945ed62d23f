"""How far the database lets a heartbeat go: its own statement through psycopg, against the direct UPDATE.

bench/server_bench.py compares heartbeats over HTTP with the bench's direct
UPDATE (``DIRECT_SQL``: the row, owned by the daemon). The service's statement
does more: the epoch fence and, counted for the API's throttle, the rate
counter's UPSERT in the same round trip. This script runs the three statements
alone, each from N psycopg processes (one daemon and supervisor each), in
alternating slices, so the part of the HTTP ratio the database takes is known:

  direct    the server bench's DIRECT_SQL (the 1.0 every HTTP ratio is measured against)
  fenced    the service's single heartbeat UPDATE on a daemon (ownership and epoch fence)
  counted   what a daemon's heartbeat really sends: the rate counter's UPSERT and the
            fenced UPDATE in one statement (PostgreSQL's data-modifying CTE)

Usage (PostgreSQL only; about half a minute):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/makima_perf .venv/bin/python bench/heartbeat_statement_bench.py

The median ratio to ``direct`` of ``counted`` is the most any HTTP server could
reach on heartbeats here with no CPU of its own; what separates it from the
server bench's heartbeat ratio is the server's CPU per request.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_heartbeat_bench import direct_client, libpq_dsn, run_clients, setup_world  # noqa: E402

KINDS = ("direct", "fenced", "counted")


def service_client(kind: str, sql: str, dsn: str, contract: str, daemon: str, start, seconds, out) -> None:
    """The service's statement (``fenced`` or ``counted``) in a loop; ``direct`` is the server bench's own client."""
    import psycopg

    from supervisors.services.world import PendingCount

    conn = psycopg.connect(dsn, autocommit=True)
    contract_id, daemon_id = uuid.UUID(contract), uuid.UUID(daemon)
    count = PendingCount.now(f"bench-statement:{daemon}", limit=10**9, window_seconds=60)
    done = 0
    start.wait()
    deadline = time.monotonic() + seconds
    with conn.cursor() as cursor:
        while time.monotonic() < deadline:
            now = datetime.datetime.now(datetime.UTC)
            row = ["working", "coding", done % 100, now, now, contract_id, None, daemon_id]
            if kind == "fenced":
                cursor.execute(sql, row)
            else:
                cursor.execute(sql, [count.key, count.window_start, *row, count.limit])
                cursor.fetchone()
            done += 1
    conn.close()
    out.put((done, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    options = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (the counted statement is PostgreSQL's).")
    os.environ.setdefault("DEBUG", "false")
    world = setup_world(options.clients, 0)

    from supervisors.services.heartbeat_sql import statements

    sql = statements()
    texts = {"fenced": sql.single_on_daemon, "counted": sql.single_counted}
    dsn = libpq_dsn()
    args = [(dsn, c["contracts"][0], c["daemon_id"]) for c in world]
    rates: dict[str, list[float]] = {kind: [] for kind in KINDS}
    targets = {"direct": direct_client, **{k: functools.partial(service_client, k, texts[k]) for k in texts}}
    for round_index in range(options.rounds):
        shift = round_index % len(KINDS)
        for kind in KINDS[shift:] + KINDS[:shift]:
            rate, _ = run_clients(targets[kind], args, options.seconds)
            rates[kind].append(rate)
    print(f"{options.clients} psycopg processes, {options.rounds} rounds x {options.seconds:g} s, order rotated")
    print(f"{'statement':<9} {'per s':>8} {'ratio to direct (median, range)':>34}")
    for kind in KINDS:
        ratios = [r / d for r, d in zip(rates[kind], rates["direct"], strict=True)]
        print(
            f"{kind:<9} {statistics.median(rates[kind]):>8.0f} "
            f"{statistics.median(ratios):>20.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        )
    print(f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
