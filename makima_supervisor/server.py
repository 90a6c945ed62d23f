"""The production HTTP server: granian (WSGI interface) with the service's defaults.

``python -m makima_supervisor.server [granian options] makima_supervisor.wsgi:application`` is granian's own
command line (every ``--option`` and ``GRANIAN_*`` variable of ``granian --help``
works and wins over the defaults below), run after two things gunicorn.conf.py
did for gunicorn:

- ``PROMETHEUS_MULTIPROC_DIR`` is in the environment before any worker starts, so
  every worker writes its request counts to memory-mapped files there and
  /metrics adds all workers up (supervisors.metrics). Unset: a fresh private
  directory, removed when the server exits. Set: that directory, emptied of
  prometheus_client's files at start (an earlier run's counts must not be added
  to this one's). Workers that a SIGHUP or a crash replaced keep their files, so
  their counts stay in the totals, as counters should.
- Defaults chosen by bench/server_bench.py (docs/performance.md, "HTTP server"):
  the WSGI interface, one worker process
  per core (WEB_CONCURRENCY), 8 Python threads per worker (WEB_THREADS; each may
  hold a database connection), HTTP/1.1 with keep-alive, crashed workers
  respawned, a worker that will not stop 30 s after SIGHUP/SIGTERM killed, and a
  graceful restart (SIGHUP) that stops an old worker only 10 s after its
  replacement started (see DEFAULTS).

Why a launcher and not the bare ``granian`` command: granian has no
configuration file and no hook that runs in its main process before workers
start; this module is that file.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

#: granian's own variables (``granian --help`` lists them); set only when the environment has not.
DEFAULTS = {
    "GRANIAN_INTERFACE": "wsgi",
    "GRANIAN_HTTP": "1",  # daemons and nginx speak HTTP/1.1; h2 would only add a code path
    "GRANIAN_WEBSOCKETS": "false",
    "GRANIAN_RESPAWN_FAILED_WORKERS": "true",
    "GRANIAN_WORKERS_KILL_TIMEOUT": "30",
    # On SIGHUP granian starts a new worker, waits this long, then stops the old one. On Linux each
    # worker listens on its own SO_REUSEPORT socket, which it opens only once Django is loaded (1-3 s,
    # more on a busy machine): with granian's 3.5 s the old worker could stop first and connections were
    # refused meanwhile (tests/server/test_restart.py). 10 s leaves the new worker time to listen.
    "GRANIAN_RESPAWN_INTERVAL": "10",
    "GRANIAN_LOG_LEVEL": "info",  # start, listening address, workers spawned and stopped (as gunicorn logs)
}

_PROMETHEUS_FILES = ("counter_", "gauge_", "histogram_", "summary_")


def apply_defaults(environ: dict | os._Environ = os.environ) -> None:
    """The service's defaults for granian, each overridable by its own GRANIAN_* variable."""
    for name, value in DEFAULTS.items():
        environ.setdefault(name, value)
    environ.setdefault("GRANIAN_WORKERS", environ.get("WEB_CONCURRENCY") or str(os.cpu_count() or 1))
    environ.setdefault("GRANIAN_BLOCKING_THREADS", environ.get("WEB_THREADS") or "8")


def prepare_metrics_directory(environ: dict | os._Environ = os.environ) -> str | None:
    """Set PROMETHEUS_MULTIPROC_DIR for the workers and empty it; the private directory to remove at exit, if any."""
    own = None
    if not environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own = tempfile.mkdtemp(prefix="makima-prometheus-")
        environ["PROMETHEUS_MULTIPROC_DIR"] = own
    directory = environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        # Only prometheus_client's own files (counter_<pid>.db, ...), never anything else.
        if name.endswith(".db") and name.startswith(_PROMETHEUS_FILES):
            os.remove(os.path.join(directory, name))
    return own


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    apply_defaults()
    own = prepare_metrics_directory()
    if own:
        atexit.register(shutil.rmtree, own, ignore_errors=True)
    from granian.cli import cli

    # Exits through SystemExit, so the atexit cleanup runs.
    cli.main(args=args, prog_name="granian", auto_envvar_prefix="GRANIAN")


if __name__ == "__main__":
    main()
