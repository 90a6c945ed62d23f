"""gunicorn settings: ``gunicorn -c gunicorn.conf.py makima_supervisor.wsgi``.

Threaded workers (gthread): requests spend most of their time waiting on
PostgreSQL, so a few processes with several threads each serve far more of
them than one-request-per-process sync workers. Every knob is an environment
variable; nothing that matters lives in a worker's memory, so any number of
instances can run behind a load balancer.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 8))
# Large conversation histories (tens of MB) take a while to upload on slow links.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 30))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 5))
# Recycle workers now and then so slow leaks cannot accumulate.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 10000))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", 1000))
# Off by default: the service writes its own access line per request, with the request id, the daemon
# or user and the route (logger makima.access; ACCESS_LOG). GUNICORN_ACCESSLOG=- turns gunicorn's on.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# The same proxies the service trusts (TRUSTED_PROXIES) unless FORWARDED_ALLOW_IPS says otherwise.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or os.environ.get("TRUSTED_PROXIES", "127.0.0.1,::1")

# --- Prometheus metrics across worker processes (supervisors/metrics) -----------------------------
# Each worker counts its own requests; prometheus_client's multiprocess mode keeps the counts in
# memory-mapped files in PROMETHEUS_MULTIPROC_DIR, and /metrics adds every worker's up. It must be
# in the environment before a worker imports prometheus_client, so it is set here, in the master.
# Unset: a fresh private directory, removed when gunicorn exits. Set: that directory, emptied at
# start (counts of an earlier run must not be added to this one's).
_own_multiproc_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_multiproc_dir:
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="makima-prometheus-")


def on_starting(server):
    """Start from zero: remove what an earlier run left in the metrics directory."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        # Only prometheus_client's own files (counter_<pid>.db, gauge_livesum_<pid>.db, ...), never anything else.
        if name.endswith(".db") and name.startswith(("counter_", "gauge_", "histogram_", "summary_")):
            os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    """A worker that stopped: its live gauges no longer count (its counters do, as they should)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_multiproc_dir:
        import shutil

        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
