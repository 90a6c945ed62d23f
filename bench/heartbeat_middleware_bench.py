"""CPU a supervisor heartbeat costs in-process, with and without the request log and metrics middleware.

Usage (SQLite in a temporary file by default; DATABASE_URL=postgres://... for PostgreSQL):

    .venv/bin/python bench/heartbeat_middleware_bench.py --requests 3000 --rounds 5

One process drives Django's WSGI handler directly (no HTTP, no client library:
an environ built once per request), alternating rounds of three variants so
load from elsewhere on the machine weighs on all alike, and prints the process
CPU time per heartbeat (median of the rounds):

  bare       MIDDLEWARE without makima_supervisor.request_log.RequestLogMiddleware
             (and without axes' middleware): the heartbeat path before issue 17
  metrics    with it, the access line's level disabled (LOG_LEVEL=WARNING)
  logged     with it and the access line written (JSON, to /dev/null)

The figures include the database work (the same in all three); the differences
are what the request id, the metrics and the access line cost.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makima_supervisor.settings")
os.environ.setdefault("LOG_FORMAT", "json")
os.environ.setdefault("API_THROTTLE_RATE_PER_MINUTE", "0")  # every request the same (no window roll-overs)
# As under gunicorn (gunicorn.conf.py): the request metrics in memory-mapped files, the slower storage.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="hb-bench-prometheus-"))
if "DATABASE_URL" not in os.environ:
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='hb-bench-')}/bench.sqlite3"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402

OUR_LAYERS = ("makima_supervisor.request_log.RequestLogMiddleware", "axes.middleware.AxesMiddleware")


def world() -> tuple[str, str]:
    from supervisors.services.world import create_daemon_key, record_daemon_heartbeat
    from tests.factories import make_contract, make_daemon, make_supervisor

    daemon = make_daemon(f"bench-{time.time_ns()}")
    record_daemon_heartbeat(daemon.id)
    key = create_daemon_key(daemon.id).raw
    supervisor = make_supervisor(make_contract("bench"), daemon=daemon)
    return key, f"/api/v1/contracts/{supervisor.contract_id}/supervisor/heartbeat/"


def handler_with(middleware: list[str]) -> WSGIHandler:
    settings.MIDDLEWARE = middleware
    return WSGIHandler()


def run(handler: WSGIHandler, key: str, path: str, n: int) -> float:
    body = json.dumps({"state": "working", "currentActivity": "bench", "progress": 5}).encode()

    def start_response(status, headers, exc_info=None):
        if not status.startswith("200"):
            raise RuntimeError(status)

    started = time.process_time()
    for _ in range(n):
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "HTTP_HOST": "testserver",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": f"Bearer {key}",
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
        }
        for _chunk in handler(environ, start_response):
            pass
    return (time.process_time() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="heartbeats per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    key, path = world()
    devnull = open(os.devnull, "w")  # noqa: SIM115
    for handler in logging.getLogger().handlers + logging.getLogger("django").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)
    full = list(settings.MIDDLEWARE)
    bare = [m for m in full if m not in OUR_LAYERS]
    access = logging.getLogger("makima.access")
    variants = {
        "bare": (handler_with(bare), logging.WARNING),
        "metrics": (handler_with(full), logging.WARNING),
        "logged": (handler_with(full), logging.INFO),
    }
    for handler, _ in variants.values():
        run(handler, key, path, 200)  # warm: key cache, lease, prepared statements
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (handler, level) in variants.items():
            access.setLevel(level)
            results[name].append(run(handler, key, path, args.requests))
    print(
        f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, "
        f"{args.requests} heartbeats x {args.rounds} rounds per variant; CPU per heartbeat (median):"
    )
    base = statistics.median(results["bare"])
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:8s} {median * 1e6:8.1f} us  ({(median - base) * 1e6:+.1f} us vs bare)")


if __name__ == "__main__":
    main()
