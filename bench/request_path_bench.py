"""CPU per daemon call in-process: the old request path (the whole MIDDLEWARE, signals sent) against the lean one.

Usage (PostgreSQL, the figures the issue's targets are about; SQLite works too):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/makima_h_lean_bench \\
        .venv/bin/python bench/request_path_bench.py --requests 1000 --rounds 5

One process drives the WSGI callables directly (no HTTP, no client library: a
fresh environ per request, as a server would build it) and measures process
CPU time (``time.process_time``: this process only, so the database server's
CPU is not in it, the psycopg client side is) per request. The variants run the
same requests in alternating rounds, the order rotating each round, so load
from elsewhere on the machine weighs on both alike:

  full   django.core.handlers.wsgi.WSGIHandler: every request through
         settings.MIDDLEWARE and the root URLconf (the request path before issue 12)
  lean   makima_supervisor.handler.MakimaWSGIHandler (what wsgi.py serves):
         daemons' Bearer calls to /api/v1/ through the daemon stack

Requests (--kinds, comma-separated; each one daemon's call with its Bearer key):

  heartbeat  POST .../supervisor/heartbeat/ (the lean dispatch, supervisors.api.lean)
  batch      POST /api/v1/daemons/me/heartbeat/ with --batch supervisors
  put        PUT .../supervisor/ (a whole small state, DRF)
  ask        POST .../supervisor/questions/ (a new question each time, DRF)
  answer     POST .../questions/<id>/answer/ (answers the question ``ask`` left, DRF)
  resume     POST .../supervisor/resume/ (the restoration protocol, small history, DRF)
  healthz    GET /healthz (no database; the floor of any request)

``--instructions`` counts instead, with valgrind's callgrind, the instructions each
variant executes per request (deterministic where CPU time on a shared machine is
not): one child process per kind and variant under valgrind, instrumentation
switched on (callgrind_control) only around the measured requests, after the
same warm-up. Slow (Django starts under valgrind): keep --requests small (50).

``--profile KIND`` runs that kind through the lean handler under cProfile
instead and prints the top functions by cumulative and own time.
The access line is written (JSON, to /dev/null) as in production; throttling is off (no window roll-overs).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makima_supervisor.settings")
os.environ.setdefault("LOG_FORMAT", "json")
os.environ.setdefault("API_THROTTLE_RATE_PER_MINUTE", "0")
# As under gunicorn (gunicorn.conf.py): the request metrics in memory-mapped files, the slower storage.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="path-bench-prometheus-"))
if "DATABASE_URL" not in os.environ:
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='path-bench-')}/bench.sqlite3"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402

BENCH_PREFIX = "bench-request-path"
KINDS = ("heartbeat", "batch", "put", "ask", "answer", "resume", "healthz")

Request = tuple[str, str, bytes, dict[str, str], int]  # method, path, body, extra environ, expected status


class World:
    """One daemon, its key, and --batch supervisors; the first is the one the single-supervisor calls use."""

    def __init__(self, batch: int) -> None:
        from supervisors.models import Contract, Daemon
        from supervisors.services.world import create_daemon_key, record_daemon_heartbeat
        from tests.factories import make_contract, make_supervisor

        Contract.objects.filter(name__startswith=BENCH_PREFIX).delete()
        Daemon.objects.filter(name__startswith=BENCH_PREFIX).delete()
        daemon = Daemon.objects.create(name=f"{BENCH_PREFIX}-{time.time_ns()}")
        record_daemon_heartbeat(daemon.id)
        self.key = create_daemon_key(daemon.id).raw
        self.supervisors = [
            make_supervisor(make_contract(f"{BENCH_PREFIX}-{i}"), daemon=daemon) for i in range(max(batch, 1))
        ]
        first = self.supervisors[0]
        self.base = f"/api/v1/contracts/{first.contract_id}/supervisor/"
        self.task_id = str(first.task_id)
        self.batch = batch
        self.last_question: str | None = None

    def request(self, kind: str) -> Request:
        """The next request of this kind (a question asked is the one the next answer answers)."""
        if kind == "heartbeat":
            body = b'{"state":"working","currentActivity":"bench","progress":5}'
            return "POST", f"{self.base}heartbeat/", body, {}, 200
        if kind == "batch":
            items = [
                {"contractId": str(s.contract_id), "state": "working", "currentActivity": "bench", "progress": 5}
                for s in self.supervisors[: self.batch]
            ]
            body = json.dumps({"status": "connected", "supervisors": items}).encode()
            return "POST", "/api/v1/daemons/me/heartbeat/", body, {}, 200
        if kind == "put":
            state = {
                "taskId": self.task_id,
                "phase": "plan",
                "state": "working",
                "conversationHistory": [{"role": "user", "content": "Plan the work."}],
                "pendingTaskIds": [],
                "spawnedTaskIds": [],
                "pendingQuestions": [],
                "currentActivity": "bench",
                "progress": 10,
                "errorMessage": None,
            }
            return "PUT", self.base, json.dumps(state).encode(), {}, 200
        if kind == "ask":
            self.last_question = str(uuid.uuid4())
            question = {
                "id": self.last_question,
                "question": "Proceed?",
                "choices": ["yes", "no"],
                "context": None,
                "questionType": "general",
                "askedAt": "2026-11-01T12:00:00+00:00",
            }
            return "POST", f"{self.base}questions/", json.dumps(question).encode(), {}, 201
        if kind == "answer":
            assert self.last_question is not None, "answer follows ask"
            path = f"{self.base}questions/{self.last_question}/answer/"
            return "POST", path, b'{"answer":"yes"}', {}, 200
        if kind == "resume":
            return "POST", f"{self.base}resume/", b'{"source":"daemon_restart","reason":"bench"}', {}, 200
        if kind == "healthz":
            return "GET", "/healthz", b"", {}, 200
        raise ValueError(kind)


def environ_for(request: Request, key: str) -> dict:
    method, path, body, extra, _ = request
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        **extra,
    }
    if method != "GET":
        environ["HTTP_AUTHORIZATION"] = f"Bearer {key}"
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def call(handler: Callable, environ: dict, expected: int) -> None:
    seen = []

    def start_response(status, headers, exc_info=None):
        seen.append(status)

    response = handler(environ, start_response)
    for _chunk in response:
        pass
    response.close()
    if not seen[0].startswith(str(expected)):
        raise RuntimeError(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}: {seen[0]} (expected {expected})")


def run(handler: Callable, world: World, kind: str, n: int) -> float:
    """CPU seconds per request; ``answer`` requests are each preceded by an (unmeasured) ``ask``."""
    total = 0.0
    for _ in range(n):
        if kind == "answer":
            ask = world.request("ask")
            call(handler, environ_for(ask, world.key), ask[4])
        request = world.request(kind)
        environ = environ_for(request, world.key)
        started = time.process_time()
        call(handler, environ, request[4])
        total += time.process_time() - started
    return total / n


def handlers() -> dict[str, Callable]:
    """``full``: Django's handler over settings.MIDDLEWARE without the dispatcher; ``lean``: what wsgi.py serves."""
    from makima_supervisor.daemon_stack import DISPATCHER
    from makima_supervisor.handler import MakimaWSGIHandler

    shipped = settings.MIDDLEWARE
    settings.MIDDLEWARE = [path for path in shipped if path != DISPATCHER]
    try:
        full = WSGIHandler()
    finally:
        settings.MIDDLEWARE = shipped
    return {"full": full, "lean": MakimaWSGIHandler()}


def quiet_logs() -> None:
    devnull = open(os.devnull, "w")  # noqa: SIM115
    for handler in logging.getLogger().handlers + logging.getLogger("django").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)


def profile(world: World, kind: str, n: int) -> None:
    import cProfile
    import pstats

    handler = handlers()["lean"]
    run(handler, world, kind, 100)
    profiler = cProfile.Profile(time.process_time)  # CPU, as the figures
    profiler.enable()
    run(handler, world, kind, n)
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)


def callgrind(kind: str, variant: str, n: int, batch: int) -> float:
    """Instructions per request of ``variant`` on ``kind``, counted by callgrind in a child process."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix="path-bench-cg-") as directory:
        out = Path(directory) / "callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
            sys.executable, __file__, "--child", variant, "--kinds", kind, "--requests", str(n), "--batch", str(batch),
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        for line in out.read_text().splitlines():
            if line.startswith("totals:"):
                return int(line.split()[1]) / n
    raise RuntimeError("callgrind wrote no totals")


def child(world: World, variant: str, kind: str, n: int) -> None:
    """Under callgrind: warm up, then count only the measured requests."""
    import subprocess

    handler = handlers()[variant]
    run(handler, world, kind, 30)
    toggle = ["callgrind_control", "-i"]
    subprocess.run([*toggle, "on", str(os.getpid())], check=True, capture_output=True)
    run(handler, world, kind, n)
    subprocess.run([*toggle, "off", str(os.getpid())], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="requests per kind, variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--batch", type=int, default=50, help="supervisors per batch heartbeat")
    parser.add_argument("--profile", choices=KINDS, help="profile this kind through the lean handler instead")
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind instead")
    parser.add_argument("--child", choices=("full", "lean"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    quiet_logs()
    if args.child:
        child(World(args.batch), args.child, kinds[0], args.requests)
        return
    call_command("migrate", verbosity=0)
    if args.instructions:
        print(f"instructions per request (callgrind; {args.requests} requests after 30 to warm up):")
        for kind in kinds:
            full, lean = (callgrind(kind, variant, args.requests, args.batch) for variant in ("full", "lean"))
            print(f"  {kind:9s} full {full / 1e6:7.3f} M   lean {lean / 1e6:7.3f} M   lean/full {lean / full:.2f}")
        return
    world = World(args.batch)
    if args.profile:
        profile(world, args.profile, args.requests)
        return
    variants = handlers()
    for handler in variants.values():
        for kind in kinds:
            run(handler, world, kind, 50)  # warm: key cache, prepared statements, lazy imports
    results: dict[tuple[str, str], list[float]] = {(k, v): [] for k in kinds for v in variants}
    names = list(variants)
    for round_no in range(args.rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for kind in kinds:
            for name in order:
                results[(kind, name)].append(run(variants[name], world, kind, args.requests))
    print(
        f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, {args.requests} requests x "
        f"{args.rounds} rounds per kind and variant (batch of {args.batch}); CPU per request, median of rounds "
        f"[range]; lean/full ratio per round, median [range]"
    )
    for kind in kinds:
        full, lean = results[(kind, "full")], results[(kind, "lean")]
        ratios = [b / a for a, b in zip(full, lean, strict=True)]
        print(
            f"  {kind:9s} full {statistics.median(full) * 1e6:7.1f} us [{min(full) * 1e6:.0f}-{max(full) * 1e6:.0f}]"
            f"   lean {statistics.median(lean) * 1e6:7.1f} us [{min(lean) * 1e6:.0f}-{max(lean) * 1e6:.0f}]"
            f"   lean/full {statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"
        )
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
