"""Per-route request counts and latencies, cheap enough for the heartbeats' path.

Labels are the URL *pattern* (``api/v1/contracts/<str:contractId>/supervisor/heartbeat/``),
never the raw path, so the number of series is bounded by the URL map; a request
that matched no pattern is ``route="unmatched"``. Each distinct
(route, method, status) keeps its label children in a dict, so a request costs
two dictionary lookups and three increments (a counter, a histogram bucket and
its sum): a few microseconds, no database.

Multiple worker processes: prometheus_client picks its value storage when it is
first imported. With ``PROMETHEUS_MULTIPROC_DIR`` in the environment (gunicorn.conf.py
sets it for the master before any worker starts) every process writes its
values to memory-mapped files there and the scrape adds them up
(:mod:`supervisors.metrics.view`); without it (runserver, tests) the values
live in the one process.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "makima_http_requests",
    "HTTP requests answered, by route pattern, method and status code.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "makima_http_request_duration_seconds",
    "Time from the request reaching the service's middleware to its response, by route pattern and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_CHILDREN = 5000  # routes x methods x statuses stays far below; a guard against a surprise, not a limit in use

#: (route, method, status) -> (counter child, histogram child)
_children: dict[tuple[str, str, int], tuple[object, object]] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration."""
    key = (route, method, status)
    children = _children.get(key)
    if children is None:
        children = _children_for(route, method, status)
    counter, histogram = children
    counter.inc()  # type: ignore[attr-defined]
    histogram.observe(seconds)  # type: ignore[attr-defined]


def _children_for(route: str, method: str, status: int) -> tuple[object, object]:
    label_route = route or "unmatched"
    label_method = method if method in _METHODS else "other"
    children = (
        REQUESTS.labels(label_route, label_method, str(status)),
        LATENCY.labels(label_route, label_method),
    )
    if len(_children) < _MAX_CHILDREN:
        _children[(route, method, status)] = children
    return children
