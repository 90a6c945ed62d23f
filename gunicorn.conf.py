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
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# The same proxies the service trusts (TRUSTED_PROXIES) unless FORWARDED_ALLOW_IPS says otherwise.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or os.environ.get("TRUSTED_PROXIES", "127.0.0.1,::1")
