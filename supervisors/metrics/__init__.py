"""Prometheus metrics: request figures counted in each process, domain figures read from the database per scrape.

* :mod:`.http` counts requests and their latency per route (in every worker
  process; with ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client's
  multiprocess mode adds the workers up at scrape time).
* :mod:`.domain` reads the service's state (supervisors, questions, daemons,
  restorations, the watchdog, the job queue) from the database when
  ``/metrics`` is scraped, a fixed number of queries (``DOMAIN_SOURCES``: the
  one place to add a figure, e.g. the outbox's backlog), so every process
  answers the same and nothing needs multiprocess handling.
* :mod:`.snapshot` keeps the one figure set that needs a pass over all
  supervisors out of the scrape: a job computes it, the scrapes ask for it.
* :mod:`.view` is the endpoint and its protection (``METRICS_TOKEN`` or loopback).
"""
