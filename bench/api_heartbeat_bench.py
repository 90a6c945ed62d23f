"""Heartbeats over HTTP under gunicorn vs the same UPDATE issued directly through psycopg.

The gunicorn-era steps. The shipped server (granian, started from the Procfile's web: line) against
gunicorn and direct psycopg, with the targets of issue 12: bench/server_bench.py.

Usage (PostgreSQL only; all traffic stays on 127.0.0.1; each run is bounded by --seconds):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/makima_api \\
        /work/main/.venv/bin/python bench/api_heartbeat_bench.py --clients 8 --seconds 5

Every client is a process of its own acting as one daemon (its own API key and
supervisor), so clients do not contend for one row. ``--clients 2,4,8,16`` sweeps
the concurrency (each figure side by side with direct psycopg at the same
concurrency). The HTTP clients send one pre-encoded request over a kept-alive
connection and parse only the status line and Content-Length, as wrk does
(``--client http.client`` for the standard library's client, whose own CPU on a
machine where clients, server and database share the cores is charged against
the server). For each server variant the
script starts gunicorn (gunicorn.conf.py) on a free port, drives it with keep-alive
connections for --seconds, stops it, and then runs the direct psycopg loop with the
same number of processes; the two alternate in --rounds short slices so that load
from elsewhere on the machine weighs on both figures alike.

Variants (--variants, comma-separated, default all), each a step of the optimisation:
  sync-nocache      sync workers, key looked up on every request, CONN_HEALTH_CHECKS on
  gthread-nocache   gthread workers, otherwise the same
  gthread-cache     + API key cache (API_KEY_CACHE_SECONDS=5)
  gthread-nocheck   + no per-request connection health check (CONN_HEALTH_CHECKS=false)
  gthread-unprepared + rate counters in an UNLOGGED table, hot statements not prepared
  gthread-final     + the hot path's statements prepared on the server (the shipped defaults)
Then `batch`: the daemon heartbeat carrying --batch supervisors per request, in
supervisor heartbeats per second, against the direct single-row UPDATE rate; and
`floor`: GET /healthz (middleware, URL resolution, no database), the ceiling any
Django endpoint can reach under this gunicorn on this machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makima_supervisor.settings")

BENCH_PREFIX = "bench-heartbeat"

#: Each step keeps the previous ones. LOGGED_COUNTERS is not an environment variable of the
#: service: the bench sets the api_rate_counters table LOGGED for that run (as before the step).
VARIANTS: dict[str, dict[str, str]] = {
    "sync-nocache": {
        "WORKER_CLASS": "sync",
        "API_KEY_CACHE_SECONDS": "0",
        "CONN_HEALTH_CHECKS": "true",
        "LOGGED_COUNTERS": "1",
    },
    "gthread-nocache": {"API_KEY_CACHE_SECONDS": "0", "CONN_HEALTH_CHECKS": "true", "LOGGED_COUNTERS": "1"},
    "gthread-cache": {"API_KEY_CACHE_SECONDS": "5", "CONN_HEALTH_CHECKS": "true", "LOGGED_COUNTERS": "1"},
    "gthread-nocheck": {"API_KEY_CACHE_SECONDS": "5", "CONN_HEALTH_CHECKS": "false", "LOGGED_COUNTERS": "1"},
    "gthread-unprepared": {
        "API_KEY_CACHE_SECONDS": "5",
        "CONN_HEALTH_CHECKS": "false",
        "DB_PREPARE_HOT_STATEMENTS": "false",
    },
    "gthread-final": {"API_KEY_CACHE_SECONDS": "5", "CONN_HEALTH_CHECKS": "false"},
}


def set_counters_logged(dsn: str, logged: bool) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE api_rate_counters SET {'LOGGED' if logged else 'UNLOGGED'}")


DIRECT_SQL = (
    "UPDATE supervisor_states SET state = %s, current_activity = %s, progress = %s, "
    "last_activity = %s, updated_at = %s "
    "WHERE contract_id = %s AND task_id IN (SELECT id FROM tasks WHERE daemon_id = %s)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup_world(clients: int, batch: int) -> list[dict]:
    """One daemon per client, each with a key, one supervisor, and `batch` more for the batch run."""
    import django

    django.setup()
    from django.core.management import call_command

    from supervisors.models import Contract, Daemon, RateCounter, SupervisorState, Task
    from supervisors.services.world import create_daemon_key, record_daemon_heartbeat

    call_command("migrate", verbosity=0)
    Contract.objects.filter(name__startswith=BENCH_PREFIX).delete()
    Daemon.objects.filter(name__startswith=BENCH_PREFIX).delete()
    RateCounter.objects.all().delete()
    world = []
    for index in range(clients):
        daemon = Daemon.objects.create(name=f"{BENCH_PREFIX}-{index}")
        record_daemon_heartbeat(daemon.id)
        key = create_daemon_key(daemon.id, name="bench").raw
        contracts = []
        for n in range(batch + 1):
            contract = Contract.objects.create(name=f"{BENCH_PREFIX}-{index}-{n}", phase="plan")
            task = Task.objects.create(contract=contract, name="supervisor", is_supervisor=True, daemon=daemon)
            SupervisorState.objects.create(contract=contract, task=task, phase="plan", state="working")
            contracts.append(str(contract.id))
        world.append({"daemon_id": str(daemon.id), "key": key, "contracts": contracts})
    from django.db import connections

    connections.close_all()
    return world


def start_gunicorn(port: int, env_overrides: dict[str, str], workers: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, **env_overrides, "GUNICORN_ACCESSLOG": "", "GUNICORN_LOGLEVEL": "warning"}
    env.setdefault("API_THROTTLE_RATE_PER_MINUTE", str(10**9))  # counted (cost included), never hit
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(ROOT / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
    if env_overrides.get("WORKER_CLASS"):
        args += ["--worker-class", env_overrides["WORKER_CLASS"]]
    args.append("makima_supervisor.wsgi")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError("gunicorn did not start")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def http_client(port, path_body, key, start, seconds, out):
    """Send requests over one keep-alive connection until the time is up; report (ok, errors)."""
    path, body = path_body
    method, payload = ("GET", None) if body is None else ("POST", json.dumps(body).encode())
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    ok = errors = 0
    start.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                ok += 1
            else:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out.put((ok, errors))


def raw_http_client(port, path_body, key, start, seconds, out):
    """Like http_client, with one pre-encoded request and minimal response parsing (as wrk does).

    http.client parses every response's headers with the email package, which
    costs the client process about as much CPU as the server spends on a
    heartbeat; on a machine where clients and server share the cores, that
    measured the client rather than the service.
    """
    path, body = path_body
    method, payload = ("GET", b"") if body is None else ("POST", json.dumps(body).encode())
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    request = head.encode() + payload

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def exchange(sock: socket.socket) -> tuple[bytes, bool]:
        """Send the request, read one response: (status, whether the server keeps the connection)."""
        sock.sendall(request)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed before a response" if not buffer else "closed mid-response")
            buffer += chunk
        headers, _, rest = buffer.partition(b"\r\n\r\n")
        length, keep = 0, True
        for line in headers.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed mid-response")
            rest += chunk
        return headers[9:12], keep

    sock = connect()
    ok = errors = 0
    start.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            try:
                status, keep = exchange(sock)
            except ConnectionResetError as exc:
                # A kept-alive connection the server closed while idle (a worker recycled):
                # what every HTTP client does is open a new one and send again.
                if "before" not in str(exc):
                    raise
                sock.close()
                sock = connect()
                status, keep = exchange(sock)
            if status == b"200":
                ok += 1
            else:
                errors += 1
            if not keep:
                sock.close()
                sock = connect()
        except (OSError, ValueError):
            errors += 1
            sock.close()
            sock = connect()
    sock.close()
    out.put((ok, errors))


def direct_client(dsn, contract_id, daemon_id, start, seconds, out):
    import datetime

    import psycopg

    conn = psycopg.connect(dsn, autocommit=True)
    ok = 0
    start.wait()
    deadline = time.monotonic() + seconds
    with conn.cursor() as cursor:
        while time.monotonic() < deadline:
            now = datetime.datetime.now(datetime.UTC)
            cursor.execute(DIRECT_SQL, ["working", "coding", ok % 100, now, now, contract_id, daemon_id])
            ok += 1
    conn.close()
    out.put((ok, 0))


def run_clients(target, args_per_client, seconds) -> tuple[float, int]:
    start, out = mp.Event(), mp.Queue()
    procs = [mp.Process(target=target, args=(*args, start, seconds, out)) for args in args_per_client]
    for proc in procs:
        proc.start()
    time.sleep(0.5)
    began = time.monotonic()
    start.set()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    elapsed = time.monotonic() - began
    for proc in procs:
        proc.join()
    return sum(r[0] for r in results) / elapsed, sum(r[1] for r in results)


def libpq_dsn() -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    parts = {"dbname": db["NAME"], "user": db.get("USER"), "password": db.get("PASSWORD")}
    parts |= {"host": db.get("HOST") or "127.0.0.1", "port": db.get("PORT") or 5432}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--clients",
        default="8",
        help="concurrent clients (each a process and a daemon), or a comma-separated list to sweep: 2,4,8,16",
    )
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="HTTP and direct slices alternate this many times")
    parser.add_argument("--batch", type=int, default=50, help="supervisors per daemon heartbeat in the batch run")
    parser.add_argument("--variants", default=",".join([*VARIANTS, "batch", "floor"]))
    parser.add_argument(
        "--client",
        choices=["raw", "http.client"],
        default="raw",
        help="raw: one pre-encoded request per client, minimal parsing (the default, like wrk); "
        "http.client: the standard library's client, whose own CPU cost weighs on the server's share",
    )
    options = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (e.g. postgres://postgres@127.0.0.1:5432/makima_api).")

    client = raw_http_client if options.client == "raw" else http_client
    concurrency = [int(n) for n in options.clients.split(",")]
    world = setup_world(max(concurrency), options.batch)
    dsn = libpq_dsn()
    heartbeat = {"state": "working", "currentActivity": "coding", "progress": 42}
    print(
        f"{options.clients} clients, {options.seconds:g} s per figure, gunicorn {options.workers} workers "
        f"x {options.threads} threads, {os.cpu_count()} CPUs, all on 127.0.0.1, {options.client} HTTP client"
    )
    print(f"{'variant':<18} {'clients':>7} {'HTTP req/s':>11} {'direct/s':>10} {'ratio':>6} {'errors':>7}")
    for name in [v for v in options.variants.split(",") if v in VARIANTS or v in ("batch", "floor")]:
        port = free_port()
        overrides = dict(VARIANTS.get(name, VARIANTS["gthread-final"]))
        set_counters_logged(dsn, bool(overrides.pop("LOGGED_COUNTERS", "")))
        proc = start_gunicorn(port, overrides, options.workers, options.threads)
        try:
            args = [(port, request_of(name, client, heartbeat), client["key"]) for client in world]
            direct_args = [(dsn, client["contracts"][0], client["daemon_id"]) for client in world]
            run_clients(client, args, 1.0)  # warm-up: connections, key cache
            for clients in concurrency:
                http_rate, direct_rate, errors = side_by_side(
                    client, args[:clients], direct_args[:clients], options.seconds, options.rounds
                )
                report(name, clients, http_rate, direct_rate, errors, options.batch)
        finally:
            stop(proc)
            set_counters_logged(dsn, False)


def request_of(variant: str, client: dict, heartbeat: dict) -> tuple[str, dict | None]:
    """The path and JSON body (None: a GET) one client sends over and over in this variant."""
    if variant == "floor":
        return "/healthz", None
    if variant == "batch":
        items = [{"contractId": c, **heartbeat} for c in client["contracts"][1:]]
        return "/api/v1/daemons/me/heartbeat/", {"supervisors": items}
    return f"/api/v1/contracts/{client['contracts'][0]}/supervisor/heartbeat/", heartbeat


def side_by_side(client, args, direct_args, seconds: float, rounds: int) -> tuple[float, float, float]:
    """HTTP and direct throughput, interleaved in short slices so that load from elsewhere
    on the machine hits both figures alike; each figure is its total count over its total time."""
    slice_seconds = seconds / rounds
    http_total = direct_total = errors = 0.0
    for _ in range(rounds):
        rate, errs = run_clients(client, args, slice_seconds)
        http_total += rate * slice_seconds
        errors += errs
        rate, _ = run_clients(direct_client, direct_args, slice_seconds)
        direct_total += rate * slice_seconds
    return http_total / seconds, direct_total / seconds, errors


def report(name: str, clients: int, http_rate: float, direct_rate: float, errors: float, batch: int) -> None:
    if name == "batch":
        rows = http_rate * batch
        print(
            f"{'batch x' + str(batch):<18} {clients:>7} {http_rate:>11.0f} {direct_rate:>10.0f} "
            f"{rows / direct_rate:>6.2f} {errors:>7.0f}   -> {rows:.0f} supervisor heartbeats/s over HTTP"
        )
    else:
        ratio = http_rate / direct_rate
        print(f"{name:<18} {clients:>7} {http_rate:>11.0f} {direct_rate:>10.0f} {ratio:>6.2f} {errors:>7.0f}")


if __name__ == "__main__":
    main()
