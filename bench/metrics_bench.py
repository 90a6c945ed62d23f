"""How long a /metrics scrape takes over 1,000,000 supervisors (target: under 200 ms).

Run (PostgreSQL only; a scratch database: the rows stay there for the next run, --reset drops them):

    createdb -h 127.0.0.1 -U postgres makima_metrics_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/makima_metrics_bench \\
        .venv/bin/python bench/metrics_bench.py --supervisors 1000000 --scrapes 20 --explain

Seeds with SQL (generate_series, in chunks of --chunk rows; about 400 MB at 1M
supervisors; conversation histories stand in small, as the TOAST pointers real
multi-kilobyte histories leave in the row, see --history-bytes): supervisors in every state (5 % waiting
for a human with one or two questions, a share stale, a share blocked and
failed), one daemon per --per-daemon supervisors with leases spread over five
minutes, --log-rows restoration log rows spread over a week (a claim every
fourth), a week of watchdog runs (one every 15 s) and of finished jobs plus a
few waiting ones. Then VACUUM ANALYZE and two figures:

* the scrape: --scrapes scrapes of the domain figures exactly as /metrics
  produces them (the registry, the collector, the text encoding; no HTTP), with
  the supervisor figures' snapshot fresh, as a scrape finds it in operation:
  median, p95, max, statements per scrape, each source's share;
* the refresh job's pass over supervisor_states (what a scrape would cost if it
  did that itself; it runs in the background every METRICS_REFRESH_SECONDS):
  median wall time, and with --explain its plan.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makima_supervisor.test_settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from supervisors.enums import ACTIVE_STATES  # noqa: E402
from supervisors.metrics import domain, snapshot  # noqa: E402
from supervisors.selectors import stale_threshold  # noqa: E402
from supervisors.services.claims import CLAIM_REASON  # noqa: E402

PREFIX = "mbench-"

# g % 100 -> state: 40 % working, 20 % waiting for tasks, 5 % waiting for a human, 5 % idle,
# 2 % blocked, 1 % failed, 25 % completed, 1 % interrupted, 1 % initializing.
STATE_OF = """CASE
    WHEN g %% 100 < 40 THEN 'working' WHEN g %% 100 < 60 THEN 'waiting_for_tasks'
    WHEN g %% 100 < 65 THEN 'waiting_for_user' WHEN g %% 100 < 70 THEN 'idle'
    WHEN g %% 100 < 72 THEN 'blocked' WHEN g %% 100 < 73 THEN 'failed'
    WHEN g %% 100 < 98 THEN 'completed' WHEN g %% 100 < 99 THEN 'interrupted' ELSE 'initializing' END"""

QUESTION = """jsonb_build_object('id', gen_random_uuid(), 'question', 'Proceed with step ' || g || '?',
    'choices', jsonb_build_array('yes', 'no'), 'context', NULL, 'questionType', 'general',
    'askedAt', to_char((now() - ((g %% 86400) || ' seconds')::interval) AT TIME ZONE 'UTC',
                       'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))"""


def bench_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM contracts WHERE name LIKE %s", [PREFIX + "%"])
        return cursor.fetchone()[0]


def reset() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM contracts WHERE name LIKE %s", [PREFIX + "%"])  # cascades to tasks, supervisors
        cursor.execute("DELETE FROM daemons WHERE name LIKE %s", [PREFIX + "%"])
        cursor.execute("DELETE FROM supervisor_restoration_log WHERE actor_label = 'mbench'")
        cursor.execute("DELETE FROM watchdog_runs WHERE gone_daemon_names = '[\"mbench\"]'::jsonb")
        cursor.execute("DELETE FROM django_tasks_database_dbtaskresult WHERE task_path = 'mbench.job'")


def seed(args: argparse.Namespace) -> None:
    have = bench_rows()
    if have >= args.supervisors:
        print(f"seed: {have} bench supervisors already there")
        return
    started = time.perf_counter()
    daemons = max(1, args.supervisors // args.per_daemon)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM daemons WHERE name LIKE %s", [PREFIX + "%"])
        if cursor.fetchone()[0] < daemons:
            cursor.execute(
                "INSERT INTO daemons (id, name, status, last_heartbeat_at, created_at) "
                "SELECT gen_random_uuid(), %s || g, 'connected', now() - (g %% 300) * interval '1 second', now() "
                "FROM generate_series(1, %s) g",
                [PREFIX + "daemon-", daemons],
            )
        for start in range(have, args.supervisors, args.chunk):
            end = min(args.supervisors, start + args.chunk) - 1
            with transaction.atomic():
                cursor.execute(
                    "CREATE TEMP TABLE mb_ids ON COMMIT DROP AS "
                    "SELECT g, gen_random_uuid() AS cid, gen_random_uuid() AS tid, "
                    "  (SELECT array_agg(id ORDER BY name) FROM daemons WHERE name LIKE %s) AS pool "
                    "FROM generate_series(%s, %s) g",
                    [PREFIX + "daemon-%", start, end],
                )
                cursor.execute(
                    "INSERT INTO contracts (id, name, phase) SELECT cid, %s || g, 'build' FROM mb_ids", [PREFIX]
                )
                cursor.execute(
                    "INSERT INTO tasks (id, contract_id, daemon_id, name, status, is_supervisor) "
                    "SELECT tid, cid, pool[1 + g %% cardinality(pool)], 'supervisor', 'running', true FROM mb_ids",
                    [],
                )
                cursor.execute(
                    f"""
INSERT INTO supervisor_states (id, contract_id, task_id, conversation_history, phase, last_activity, state,
                               current_activity, progress, error_message, spawned_task_ids, pending_questions)
SELECT gen_random_uuid(), cid, tid,
       jsonb_build_array(jsonb_build_object('role', 'user', 'content', repeat('x', %s))),
       'build', now() - ((g %% 1200) || ' seconds')::interval, {STATE_OF},
       'step ' || (g %% 50), g %% 101,
       CASE WHEN {STATE_OF} IN ('blocked', 'failed') THEN 'bench' END,
       ARRAY[tid],
       CASE WHEN {STATE_OF} = 'waiting_for_user'
            THEN CASE WHEN g %% 2 = 0 THEN jsonb_build_array({QUESTION})
                      ELSE jsonb_build_array({QUESTION}, {QUESTION}) END
            ELSE '[]'::jsonb END
FROM mb_ids""",
                    [args.history_bytes],
                )
            print(f"seed: {end + 1} supervisors ({time.perf_counter() - started:.0f} s)", flush=True)
        cursor.execute(
            """
INSERT INTO supervisor_restoration_log (contract_id, started_at, duration_ms, source, actor_kind, actor_label,
    reason, previous_state, recovery_action, issues, warnings, success, restoration_count,
    redelivered_question_ids, finished_task_ids, outcome)
SELECT gen_random_uuid(), now() - (g * (604800.0 / %s)) * interval '1 second', 5,
       (ARRAY['daemon_restart', 'task_reassignment', 'manual'])[1 + g %% 3], 'daemon', 'mbench',
       CASE WHEN g %% 4 = 0 THEN %s ELSE '' END, 'working', 'Proceed', '[]', '[]', true, 1, '[]', '[]',
       (ARRAY['restored', 'restored_from_checkpoint', 'started_fresh', 'needs_person'])[1 + g %% 4]
FROM generate_series(1, %s) g""",
            [args.log_rows, CLAIM_REASON, args.log_rows],
        )
        cursor.execute(
            """
INSERT INTO watchdog_runs (started_at, finished_at, daemons_marked_gone, supervisors_interrupted, stale,
                           interrupted, gone_daemon_names, error)
SELECT now() - g * interval '15 seconds', now() - g * interval '15 seconds' + interval '20 ms', 0, 0, 0,
       '[]', '["mbench"]', ''
FROM generate_series(1, 40320) g"""
        )
        cursor.execute(
            """
INSERT INTO django_tasks_database_dbtaskresult (id, status, enqueued_at, started_at, finished_at, args_kwargs,
    priority, task_path, worker_ids, queue_name, backend_name, run_after, return_value,
    exception_class_path, traceback)
SELECT gen_random_uuid(), CASE WHEN g <= 20 THEN 'READY' ELSE 'SUCCESSFUL' END,
       now() - g * interval '15 seconds', NULL, NULL, '{"args": [], "kwargs": {}}', 0, 'mbench.job', '[]',
       'default', 'default', now(), NULL, '', ''
FROM generate_series(1, 40320) g"""
        )
    print(f"seed: done in {time.perf_counter() - started:.0f} s; VACUUM ANALYZE ...", flush=True)
    with connection.cursor() as cursor:
        for table in (
            "supervisor_states",
            "contracts",
            "tasks",
            "daemons",
            "supervisor_restoration_log",
            "watchdog_runs",
            "django_tasks_database_dbtaskresult",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")


def scrape_once() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(domain.DomainCollector())
    return generate_latest(registry)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supervisors", type=int, default=1_000_000)
    parser.add_argument("--per-daemon", type=int, default=1000, help="supervisors per daemon")
    parser.add_argument("--log-rows", type=int, default=100_000, help="restoration log rows over a week")
    parser.add_argument(
        "--history-bytes",
        type=int,
        default=40,
        help="inline size of each conversation history (real ones are kilobytes to megabytes and stored out of "
        "line by TOAST, leaving a pointer of ~20 bytes in the row: 40 mimics that; 600 makes every row fat)",
    )
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--explain", action="store_true", help="print the supervisors statement's plan")
    parser.add_argument("--reset", action="store_true", help="delete the bench rows first")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("metrics_bench needs PostgreSQL: set DATABASE_URL=postgres://... (a scratch database)")
    call_command("migrate", verbosity=0)
    if args.reset:
        reset()
    seed(args)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), pg_size_pretty(pg_total_relation_size('supervisor_states')) FROM supervisor_states"
        )
        total, size = cursor.fetchone()
    snapshot.refresh_supervisor_figures()
    scrape_once()  # warm: connection, plan cache
    times = []
    with CaptureQueriesContext(connection) as queries:
        scrape_once()
    for _ in range(args.scrapes):
        started = time.perf_counter()
        body = scrape_once()
        times.append((time.perf_counter() - started) * 1000)
    per_source = {}
    now = timezone.now()
    for name, source in domain.DOMAIN_SOURCES:
        runs = []
        for _ in range(max(3, args.scrapes // 4)):
            started = time.perf_counter()
            source(now)
            runs.append((time.perf_counter() - started) * 1000)
        per_source[name] = statistics.median(runs)
    passes = []
    for _ in range(max(3, args.scrapes // 4)):
        started = time.perf_counter()
        snapshot.compute_supervisor_figures()
        passes.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print(f"supervisor_states: {total} rows, {size}; scrape body {len(body)} bytes")
    print(
        f"scrape: median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms "
        f"over {args.scrapes} scrapes; {len(queries.captured_queries)} statements per scrape "
        f"(expected {domain.QUERIES_PER_SCRAPE}); target < 200 ms"
    )
    print("per source (median ms): " + ", ".join(f"{n} {ms:.1f}" for n, ms in per_source.items()))
    print(
        f"refresh job's pass over supervisor_states: median {statistics.median(passes):.1f} ms, "
        f"max {max(passes):.1f} ms over {len(passes)} (in the background, every METRICS_REFRESH_SECONDS)"
    )
    if args.explain:
        with connection.cursor() as cursor:
            cursor.execute(
                "EXPLAIN (ANALYZE, BUFFERS) " + snapshot._STATEMENT["postgresql"],
                [sorted(ACTIVE_STATES), stale_threshold(timezone.now())],
            )
            print("\n".join(row[0] for row in cursor.fetchall()))


if __name__ == "__main__":
    main()
