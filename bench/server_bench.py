"""Which HTTP server: each candidate against direct psycopg, side by side in one run (issue 12, items 1 and 3).

One command (PostgreSQL; everything on 127.0.0.1; about 6 minutes with the defaults):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/makima_bench .venv/bin/python bench/server_bench.py

Servers (--servers, comma-separated; all started at the beginning, on free ports,
and left running, idle when not measured):
  procfile      the shipped command: the Procfile's ``web:`` line, $PORT substituted (granian)
  gunicorn      gunicorn.conf.py as it ships (gthread, 2 x cores + 1 workers x 8 threads)
  gunicorn-2x8  gunicorn.conf.py with 2 workers x 8 threads (what bench/api_heartbeat_bench.py runs)
  granian-2x4   the Procfile's command with 4 threads per worker (GRANIAN_BLOCKING_THREADS=4)
  granian-1x8   the Procfile's command with one worker process (GRANIAN_WORKERS=1)

Workloads, each against the direct psycopg figure measured in the same round:
  heartbeat@N   supervisor heartbeats, N client processes (each its own daemon), keep-alive;
                direct: the heartbeat's UPDATE through psycopg, N processes
  healthz@8     GET /healthz (no database): the floor of any Django endpoint; direct: the UPDATE
  batch@8       the daemon heartbeat carrying --batch supervisors; ratio = supervisor heartbeats/s
                over HTTP / direct single-row UPDATEs/s
  resume@1      one client, back-to-back resumes of a supervisor with a --history-mb history (the
                whole restoration, the history in the response); direct: reading that history as
                text through psycopg (the least any server could do to answer)

Every round runs every workload once for every server and for direct psycopg, in an
order rotated from round to round, each for --seconds. Printed per server and
workload: the median ratio over the rounds and its range (min-max), the median
requests/s, and the server's CPU per request (user+system of the server's whole
process group, from /proc/<pid>/stat, over the slice, divided by the requests).
Compare ratios: absolute rates move with the machine's load; ``uptime`` is
printed at the start and the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_heartbeat_bench import (  # noqa: E402  (sets the Django settings' defaults first)
    direct_client,
    free_port,
    libpq_dsn,
    raw_http_client,
    set_counters_logged,
    setup_world,
)

from soak.server import procfile_web_command  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def gunicorn_command(port: int) -> list[str]:
    config = str(ROOT / "gunicorn.conf.py")
    return [sys.executable, "-m", "gunicorn", "-c", config, "--bind", f"127.0.0.1:{port}", "makima_supervisor.wsgi"]


@dataclass
class Candidate:
    name: str
    command: object  # port -> argv
    env: dict[str, str] = field(default_factory=dict)


CANDIDATES = {
    "procfile": Candidate("procfile", procfile_web_command),
    "gunicorn": Candidate("gunicorn", gunicorn_command),
    "gunicorn-2x8": Candidate("gunicorn-2x8", gunicorn_command, {"GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "8"}),
    "granian-2x4": Candidate("granian-2x4", procfile_web_command, {"GRANIAN_BLOCKING_THREADS": "4"}),
    "granian-1x8": Candidate("granian-1x8", procfile_web_command, {"GRANIAN_WORKERS": "1"}),
}


class Running:
    """A candidate started on a free port, in its own process group (its CPU is that group's)."""

    def __init__(self, candidate: Candidate, log_dir: Path) -> None:
        self.name = candidate.name
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "GRANIAN_"))}
        env |= {"PORT": str(self.port), "API_THROTTLE_RATE_PER_MINUTE": str(10**9), **candidate.env}
        self.log = open(log_dir / f"{self.name}.log", "ab")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            candidate.command(self.port), cwd=ROOT, env=env, stdout=self.log, stderr=self.log, start_new_session=True
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log.name}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer /healthz; see {self.log.name}")

    def cpu_seconds(self) -> float:
        """User + system CPU of every live process in the server's process group."""
        total = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == self.proc.pid:  # pgrp
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / CLK_TCK

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=40)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def run_clients(target, args_per_client, seconds) -> tuple[float, int, int]:
    """Start the client processes, let them run together for `seconds`: (rate, requests, errors)."""
    import multiprocessing as mp

    start, out = mp.Event(), mp.Queue()
    procs = [mp.Process(target=target, args=(*args, start, seconds, out)) for args in args_per_client]
    for proc in procs:
        proc.start()
    time.sleep(0.5)
    began = time.monotonic()
    start.set()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    elapsed = time.monotonic() - began
    for proc in procs:
        proc.join()
    done = sum(r[0] for r in results)
    return done / elapsed, done, sum(r[1] for r in results)


def resume_client(port, path, body, key, start, seconds, out):
    """Back-to-back resumes over one kept-alive connection (http.client reads the 5 MB body into one buffer)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    ok = errors = 0
    start.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            ok, errors = (ok + 1, errors) if response.status == 200 else (ok, errors + 1)
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    out.put((ok, errors))


def direct_history_client(dsn, contract_id, start, seconds, out):
    import psycopg

    conn = psycopg.connect(dsn, autocommit=True)
    ok = 0
    start.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.execute(
            "SELECT conversation_history::text FROM supervisor_states WHERE contract_id = %s", [contract_id]
        ).fetchone()
        ok += 1
    conn.close()
    out.put((ok, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default="procfile,gunicorn,granian-2x4")
    parser.add_argument("--workloads", default="heartbeat@8,heartbeat@4,healthz@8,batch@8,resume@1")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one slice (one figure of one round)")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--history-mb", type=float, default=5)
    options = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (e.g. postgres://postgres@127.0.0.1:5432/makima_bench).")
    os.environ.setdefault("DEBUG", "false")

    workloads = [(w.split("@")[0], int(w.split("@")[1])) for w in options.workloads.split(",")]
    world = setup_world(max(n for _, n in workloads), options.batch)
    resume = None
    if any(kind == "resume" for kind, _ in workloads):
        from resume_bench import setup as setup_resume

        resume = setup_resume(options.history_mb)  # (contract id, key, history bytes)
    dsn = libpq_dsn()
    set_counters_logged(dsn, False)
    heartbeat = {"state": "working", "currentActivity": "coding", "progress": 42}

    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"start: {uptime}")
    print(
        f"{os.cpu_count()} CPUs; {options.rounds} rounds x {options.seconds:g} s slices; order rotated each round; "
        f"servers: {options.servers}"
    )
    log_dir = Path(tempfile.mkdtemp(prefix="server-bench-"))
    servers = [Running(CANDIDATES[name], log_dir) for name in options.servers.split(",")]
    try:
        for server in servers:
            server.wait_ready()
        # ratios[(server, workload)] = [per-round ratio]; rates and cpu per request alike
        ratios: dict[tuple[str, str], list[float]] = {}
        rates: dict[tuple[str, str], list[float]] = {}
        cpus: dict[tuple[str, str], list[float]] = {}
        errors: dict[tuple[str, str], float] = {}
        direct_rates: dict[str, list[float]] = {}

        def http_args(server: Running, kind: str, clients: int):
            if kind == "resume":
                contract_id, key, _ = resume
                body = json.dumps({"source": "daemon_restart", "reason": "bench"}).encode()
                return resume_client, [(server.port, f"/api/v1/contracts/{contract_id}/supervisor/resume/", body, key)]
            if kind == "healthz":
                request = ("/healthz", None)
                return raw_http_client, [(server.port, request, c["key"]) for c in world[:clients]]
            args = []
            for c in world[:clients]:
                if kind == "batch":
                    items = [{"contractId": cid, **heartbeat} for cid in c["contracts"][1:]]
                    request = ("/api/v1/daemons/me/heartbeat/", {"supervisors": items})
                else:
                    request = (f"/api/v1/contracts/{c['contracts'][0]}/supervisor/heartbeat/", heartbeat)
                args.append((server.port, request, c["key"]))
            return raw_http_client, args

        def direct_args(kind: str, clients: int):
            if kind == "resume":
                return direct_history_client, [(dsn, resume[0])]
            return direct_client, [(dsn, c["contracts"][0], c["daemon_id"]) for c in world[:clients]]

        # Warm-up: every worker's connections, key caches, prepared statements.
        for server in servers:
            for kind, clients in workloads:
                target, args = http_args(server, kind, clients)
                run_clients(target, args, 0.5)

        for round_index in range(options.rounds):
            for kind, clients in workloads:
                label = f"{kind}@{clients}"
                entries = [*servers, None]  # None: direct psycopg
                shift = round_index % len(entries)
                entries = entries[shift:] + entries[:shift]
                results = {}
                for entry in entries:
                    if entry is None:
                        target, args = direct_args(kind, clients)
                        rate, _, _ = run_clients(target, args, options.seconds)
                        direct_rates.setdefault(label, []).append(rate)
                        results[None] = rate
                        continue
                    target, args = http_args(entry, kind, clients)
                    cpu_before = entry.cpu_seconds()
                    rate, requests, errs = run_clients(target, args, options.seconds)
                    cpu = entry.cpu_seconds() - cpu_before
                    results[entry.name] = rate
                    cpus.setdefault((entry.name, label), []).append(cpu / max(requests, 1) * 1e6)
                    errors[(entry.name, label)] = errors.get((entry.name, label), 0) + errs
                for server in servers:
                    rate = results[server.name] * (options.batch if kind == "batch" else 1)
                    ratios.setdefault((server.name, label), []).append(rate / results[None])
                    rates.setdefault((server.name, label), []).append(results[server.name])
            print(f"  round {round_index + 1}/{options.rounds} done", flush=True)
    finally:
        for server in servers:
            server.stop()

    print(f"end: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print()
    print("ratio = requests/s over HTTP / direct psycopg per s, same round (batch: supervisor heartbeats/s);")
    print("server CPU = user+system of the server's processes per request over the slice")
    header = f"{'workload':<13} {'server':<14} {'ratio median':>12} {'range':>13} {'req/s':>8} {'direct/s':>9} "
    print(header + f"{'CPU us/req':>10} {'errors':>6}")
    for kind, clients in workloads:
        label = f"{kind}@{clients}"
        direct = statistics.median(direct_rates[label])
        for server in servers:
            key = (server.name, label)
            values = ratios[key]
            print(
                f"{label:<13} {server.name:<14} {statistics.median(values):>12.3f} "
                f"{min(values):>6.3f}-{max(values):<6.3f} {statistics.median(rates[key]):>8.0f} {direct:>9.0f} "
                f"{statistics.median(cpus[key]):>10.0f} {errors[key]:>6.0f}"
            )
    print(f"\nserver logs: {log_dir}")


if __name__ == "__main__":
    main()
