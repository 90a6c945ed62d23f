"""Benchmark of the admin over many supervisors (100,000 by default; the issue's target is 1,000,000).

Pages: needs-attention, the list (unfiltered, filtered, searched), a supervisor
page with a 5 MB history (and a search in it), its timeline of 1,000 events, a
daemon page with 10,000 supervisors, the dashboard.

Run (PostgreSQL; the rows stay in that database for the next run):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/makima_admin \
        /work/main/.venv/bin/python bench/admin_bench.py [--rows 100000] [--repeat 5]

Prints, per page: median and best time in milliseconds and the number of SQL
queries; the needs-attention refresh job's pass (first, and again with nothing
changed); and, measured side by side in the same run, what the admin avoids:
the whole-table attention expression against the stored page, an exact
COUNT(*) against the planner's estimate, sorting by last activity against the
indexed contract-name order, and loading the whole 5 MB history against the
one page of it the supervisor page reads.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makima_supervisor.test_settings")
# The needs-attention page reads its stored answer as in production (the test settings recompute it per view).
os.environ.setdefault("ATTENTION_MAX_AGE_SECONDS", "86400")
os.environ.setdefault("ATTENTION_REFRESH_SECONDS", "86400")

import warnings

import django

warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collectstatic needed here

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from supervisors.enums import SupervisorStatus  # noqa: E402
from supervisors.models import Contract, SupervisorState, Task  # noqa: E402

PREFIX = "bench-"
BIG = "bench-5mb-history-v2"
STATES = [s.value for s in SupervisorStatus]


def seed(rows: int) -> None:
    """bulk_create contracts, supervisor tasks and supervisors until there are ``rows`` bench supervisors."""
    have = SupervisorState.objects.filter(contract__name__startswith=PREFIX).count()
    if have >= rows:
        print(f"seed: {have} bench supervisors already there")
        return
    now = timezone.now()
    rng = random.Random(6)
    started = time.perf_counter()
    batch = 5000
    for start in range(have, rows, batch):
        n = min(batch, rows - start)
        with transaction.atomic():
            contracts = Contract.objects.bulk_create(
                [Contract(id=uuid.uuid4(), name=f"{PREFIX}{start + i:06d}", phase="build") for i in range(n)]
            )
            tasks = Task.objects.bulk_create(
                [Task(id=uuid.uuid4(), contract=c, name="supervisor", is_supervisor=True) for c in contracts]
            )
            supervisors = []
            for c, t in zip(contracts, tasks, strict=True):
                state = rng.choice(STATES)
                questions = []
                if state == SupervisorStatus.WAITING_FOR_USER:
                    questions = [
                        {
                            "id": str(uuid.uuid4()),
                            "question": "Proceed?",
                            "choices": ["yes", "no"],
                            "context": None,
                            "questionType": "general",
                            "askedAt": (now - timedelta(minutes=rng.randint(1, 600))).isoformat(),
                        }
                    ]
                supervisors.append(
                    SupervisorState(
                        contract=c,
                        task=t,
                        phase="build",
                        state=state,
                        progress=rng.randint(0, 100),
                        current_activity=f"step {rng.randint(1, 50)}",
                        pending_questions=questions,
                        conversation_history=[{"role": "user", "content": "start"}],
                        last_activity=now - timedelta(seconds=rng.randint(0, 2 * 86400)),
                    )
                )
            SupervisorState.objects.bulk_create(supervisors)
    print(f"seed: {rows - have} supervisors bulk-created in {time.perf_counter() - started:.1f} s")


def with_error_messages() -> None:
    """Failed and blocked bench supervisors carry an error message (what the list's search reads)."""
    from django.db import models
    from django.db.models import F, Value
    from django.db.models.functions import Cast, Concat

    # "step N" with N from the row's progress (0-100): a search for "step 17" finds about 2 in 100 of them.
    updated = (
        SupervisorState.objects.filter(state__in=["failed", "blocked"])
        .filter(contract__name__startswith=PREFIX)
        .filter(error_message__isnull=True)
        .update(
            error_message=Concat(
                Value("tool call failed at step "),
                Cast(F("progress"), output_field=models.TextField()),
                Value(": the parser test fails"),
                output_field=models.TextField(),
            )
        )
    )
    if updated:
        print(f"seed: error messages on {updated} failed or blocked supervisors")


def big_supervisor() -> SupervisorState:
    """One supervisor whose history is ~5 MB: 5,000 messages of ~1 KB."""
    found = SupervisorState.objects.filter(contract__name=BIG).defer("conversation_history").first()
    if found:
        return found
    rng = random.Random(5)
    words = [f"{rng.getrandbits(40):x}" for _ in range(5000)] + ["the", "parser", "test", "fails", "build", "ok"]
    contract = Contract.objects.create(name=BIG, phase="build")
    task = Task.objects.create(contract=contract, name="supervisor", is_supervisor=True)
    history = [
        {"role": "assistant" if i % 2 else "user", "content": f"message {i}: " + " ".join(rng.choices(words, k=100))}
        for i in range(5000)
    ]
    return SupervisorState.objects.create(
        contract=contract, task=task, phase="build", state="working", conversation_history=history
    )


def with_timeline(supervisor: SupervisorState, events: int = 1000) -> SupervisorState:
    """The supervisor with ``events`` timeline events (phase changes), recorded in one statement."""
    from supervisors.enums import EventKind
    from supervisors.models import SupervisorEvent
    from supervisors.services.actors import Actor
    from supervisors.services.events import NewEvent, record_events

    have = SupervisorEvent.objects.filter(supervisor=supervisor).count()
    with transaction.atomic():
        record_events(
            [
                NewEvent(supervisor.id, EventKind.PHASE_CHANGED, Actor.system("bench"), {"from": "a", "to": "b"})
                for _ in range(max(0, events - have))
            ]
        )
    return supervisor


def busy_daemon(supervisors: int = 10_000):
    """A daemon running ``supervisors`` of the bench's supervisors, half of them gone (its lease expired)."""
    from supervisors.models import Daemon

    daemon, _ = Daemon.objects.get_or_create(name="bench-daemon-10k", defaults={"status": "connected"})
    have = Task.objects.filter(daemon=daemon).count()
    if have < supervisors:
        ids = Task.objects.filter(daemon__isnull=True, contract__name__startswith=PREFIX).values_list("id", flat=True)
        Task.objects.filter(pk__in=list(ids[: supervisors - have])).update(daemon=daemon)
    Daemon.objects.filter(pk=daemon.pk).update(last_heartbeat_at=timezone.now() - timedelta(hours=1))
    return daemon


def measure(client: Client, url: str, repeat: int) -> tuple[float, float, int, int]:
    client.get(url, secure=True)  # warm caches and the connection
    times = []
    queries = 0
    size = 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get(url, secure=True)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        queries = len(ctx.captured_queries)
        size = len(response.content)
    return statistics.median(times), min(times), queries, size


def side_by_side(label_a: str, fn_a, label_b: str, fn_b, repeat: int) -> None:
    a, b = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        fn_a()
        a.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        fn_b()
        b.append((time.perf_counter() - started) * 1000)
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"  {label_a:<46} {ma:9.2f} ms")
    print(f"  {label_b:<46} {mb:9.2f} ms   ({ma / mb if mb else float('inf'):.0f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    call_command("migrate", verbosity=0)
    seed(args.rows)
    with_error_messages()
    big = with_timeline(big_supervisor())
    if connection.vendor == "postgresql":
        # Stored as every history written since migration 0017 is (lz4 where the server has it): a history
        # written before keeps pglz until its next write.
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE supervisor_states SET conversation_history = conversation_history || '[]'::jsonb "
                "WHERE id = %s AND pg_column_compression(conversation_history) IS DISTINCT FROM "
                "(SELECT CASE attcompression WHEN 'l' THEN 'lz4' ELSE 'pglz' END FROM pg_attribute "
                "WHERE attrelid = 'supervisor_states'::regclass AND attname = 'conversation_history')",
                [big.pk],
            )
            cursor.execute(
                "SELECT pg_column_compression(conversation_history) FROM supervisor_states WHERE id = %s", [big.pk]
            )
            print(f"5 MB history compressed with {cursor.fetchone()[0]}")
    daemon = busy_daemon()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # VACUUM too: a mass update of the seed leaves the trigram indexes' pending lists full.
            cursor.execute("VACUUM ANALYZE supervisor_states, contracts, tasks, daemons")
            cursor.execute("SELECT pg_column_size(conversation_history) FROM supervisor_states WHERE id = %s", [big.pk])
            stored = cursor.fetchone()[0]
            cursor.execute(
                "SELECT octet_length(conversation_history::text) FROM supervisor_states WHERE id = %s", [big.pk]
            )
            text = cursor.fetchone()[0]
        print(f"5 MB history: {text / 1e6:.1f} MB as JSON text, {stored / 1e6:.1f} MB stored after TOAST compression")
    total = SupervisorState.objects.count()
    print(f"supervisors in the table: {total}; load average: {os.getloadavg()}")

    from supervisors.attention import refresh_attention

    first = refresh_attention()
    again = refresh_attention()
    print(
        f"needs-attention refresh (the job's pass): {first.duration_ms} ms, again with nothing changed "
        f"{again.duration_ms} ms; {sum(again.counts.values())} supervisors need attention"
    )

    setup_test_environment()
    user = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser(
        "bench-admin", password="bench"
    )
    client = Client()
    client.force_login(user)

    listing = reverse("admin:supervisors_supervisorstate_changelist")
    from supervisors.selectors import estimated_row_count

    # The paginator's last page: the list counts from the planner's estimate when it is large.
    shown_total = estimated_row_count("supervisor_states") if total >= 10_000 else total
    last_page = max(1, -(-(shown_total or total) // 50))
    page = reverse("admin:supervisors_supervisorstate_change", args=[big.pk])
    attention = reverse("admin:supervisors_supervisorstate_attention")
    pages = [
        ("needs attention, all kinds", attention),
        ("needs attention, daemon gone", f"{attention}?kind=daemon_gone"),
        ("needs attention, waiting for a human, page 20", f"{attention}?kind=waiting&page=20"),
        ("list, unfiltered (estimated count)", listing),
        ("list, unfiltered, page 500", f"{listing}?p={min(500, max(1, total // 50))}"),
        ("list, unfiltered, last page (read from the end)", f"{listing}?p={last_page}"),
        ("list, state=working", f"{listing}?state__exact=working"),
        ("list, stale=yes", f"{listing}?stale=yes"),
        ("list, has pending questions", f"{listing}?has_questions=yes"),
        ("list, search 'bench-0999'", f"{listing}?q=bench-0999"),
        ("list, search an error message 'step 17'", f"{listing}?q=step+17"),
        ("list, search a rare contract name 'bench-099999'", f"{listing}?q=bench-099999"),
        ("list, search a daemon by name", f"{listing}?q=bench-daemon-10k"),
        ("supervisor page, 5 MB history, page 1", page),
        ("supervisor page, 5 MB history, page 150", f"{page}?cpage=150"),
        ("supervisor page, search 'parser' in 5 MB", f"{page}?csearch=parser"),
        ("daemon page, 10,000 supervisors", reverse("admin:supervisors_daemon_change", args=[daemon.pk])),
        ("dashboard", reverse("admin:supervisors_supervisorstate_dashboard")),
        ("timeline, 1,000 events, page 1", reverse("admin:supervisors_supervisorstate_timeline", args=[big.pk])),
        (
            "timeline, 1,000 events, page 20, one kind",
            reverse("admin:supervisors_supervisorstate_timeline", args=[big.pk]) + "?page=20&kind=phase_changed",
        ),
    ]
    print(f"\n{'page':<44} {'median ms':>10} {'best ms':>9} {'queries':>8} {'KB':>7}")
    for label, url in pages:
        median, best, queries, size = measure(client, url, args.repeat)
        print(f"{label:<44} {median:10.1f} {best:9.1f} {queries:8d} {size / 1024:7.0f}")

    print("\nwhat the admin avoids, measured side by side:")
    from supervisors.attention import attention_queryset, stored_page_ids, without_jit
    from supervisors.selectors import conversation_page, estimated_row_count

    def whole_table_attention() -> None:
        with without_jit():
            list(attention_queryset()[:50])

    side_by_side(
        "needs attention: the expression over every row",
        whole_table_attention,
        "needs attention: one page of the stored answer",
        lambda: list(stored_page_ids(None)[:50]),
        1,
    )
    side_by_side(
        "list ids sorted by last activity (no index)",
        lambda: list(SupervisorState.objects.order_by("last_activity").values_list("pk", flat=True)[:50]),
        "list ids sorted by contract name (indexed)",
        lambda: list(
            SupervisorState.objects.order_by("contract__name", "contract_id").values_list("pk", flat=True)[:50]
        ),
        args.repeat,
    )

    side_by_side(
        "exact COUNT(*) over supervisor_states",
        lambda: SupervisorState.objects.count(),
        "planner estimate (pg_class.reltuples)" if connection.vendor == "postgresql" else "estimate (n/a on SQLite)",
        lambda: estimated_row_count("supervisor_states"),
        args.repeat,
    )
    base = SupervisorState.objects.defer("conversation_history").order_by("-last_activity", "-pk")
    side_by_side(
        "list rows: one joined query, sorted",
        lambda: list(base.select_related("contract", "task")[:50]),
        "list rows: page ids first, then 50 rows",
        lambda: list(
            base.filter(pk__in=list(base.values_list("pk", flat=True)[:50])).select_related("contract", "task")
        ),
        args.repeat,
    )
    side_by_side(
        "load the whole 5 MB history into Python",
        lambda: SupervisorState.objects.filter(pk=big.pk).values_list("conversation_history", flat=True)[0],
        "read one page of 25 messages in the database",
        lambda: conversation_page(big.pk, offset=2500, limit=25),
        args.repeat,
    )


if __name__ == "__main__":
    main()
