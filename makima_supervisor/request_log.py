"""Every request gets an id, one access line, and its figures in the metrics; every log line knows its request.

One middleware, near the outside of the chain (right after the forwarded
headers are judged), so the access line and the request metrics see the final
status: a 503 from the database handler, a 500 from a bug, a 429 from the
throttle. It is on the heartbeats' path, so it does only cheap things: no
database query, no reading of ``request.user`` unless Django already loaded it,
the metrics' label children cached per route.

* **Request id.** ``X-Request-ID`` from a trusted proxy (TRUSTED_PROXIES) is
  kept when it is 1 to 128 characters of ``A-Za-z0-9._:-`` (what nginx's
  ``$request_id``, UUIDs and most tracers produce); anything else, or the same
  header from any other peer, is replaced by a fresh random id. The response
  carries it back in ``X-Request-ID``.
* **Who and what.** While a request runs, :data:`current` holds its context;
  :class:`RequestContextFilter` copies ``request_id``, ``daemon``, ``user`` and
  ``contract`` onto every log record (``-`` outside a request). The daemon is
  set by the API's key authentication (:func:`bind_daemon`), the contract from
  the URL, the staff user from the session once Django loaded it.
* **Access line.** Logger ``makima.access``: method, path (never the query
  string), route, status, duration. Expected refusals (404, 409, 412, 429) and
  anything below 400 are INFO; other 4xx WARNING; 5xx ERROR. ``ACCESS_LOG=errors``
  writes lines only for statuses of 400 and above (a JSON line costs ~40 us of
  CPU, a quarter of a heartbeat's in-process cost; bench/heartbeat_middleware_bench.py).
  It replaces gunicorn's own access log, which gunicorn.conf.py leaves off.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from contextvars import ContextVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from makima_supervisor.proxy import is_trusted_proxy
from supervisors.metrics.http import observe_request

access_logger = logging.getLogger("makima.access")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_META = "HTTP_X_REQUEST_ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

#: Refusals a well-behaved client meets in normal operation: INFO, not WARNING.
EXPECTED_REFUSALS = frozenset({404, 409, 412, 429})


class RequestContext:
    """What log lines of one request share. Mutable: authentication fills in the daemon on the way."""

    __slots__ = ("daemon", "request", "request_id")

    def __init__(self, request: HttpRequest | None, request_id: str) -> None:
        self.request = request
        self.request_id = request_id
        self.daemon: str | None = None

    @property
    def contract(self) -> str | None:
        """The contract in the URL (``contractId``), read when a line is logged: nothing to do per request."""
        match = getattr(self.request, "resolver_match", None)
        contract = match.kwargs.get("contractId") if match is not None else None
        return printable(str(contract), 64) if contract is not None else None

    @property
    def user(self) -> str | None:
        """The staff user, if Django already loaded it for this request (never a query of its own)."""
        cached = getattr(self.request, "_cached_user", None)
        if cached is not None and getattr(cached, "is_authenticated", False):
            return cached.get_username()
        return None


#: The running request's context; None outside a request (commands, jobs, start-up).
current: ContextVar[RequestContext | None] = ContextVar("makima_request_context", default=None)


def bind_daemon(name: str) -> None:
    """The request was authenticated as this daemon: its log lines name it."""
    context = current.get()
    if context is not None:
        context.daemon = name


def incoming_request_id(request: HttpRequest) -> str:
    """The proxy's ``X-Request-ID`` when a trusted proxy sent a well-formed one; a fresh id otherwise."""
    meta = request.META
    offered = meta.get(_REQUEST_ID_META)
    if (
        offered
        and _VALID_REQUEST_ID.fullmatch(offered)
        and is_trusted_proxy(meta.get("REMOTE_ADDR", ""), settings.TRUSTED_PROXIES)
    ):
        return offered
    return os.urandom(16).hex()  # as random as uuid4().hex, a quarter of its cost


def access_level(status: int) -> int:
    if status < 400 or status in EXPECTED_REFUSALS:
        return logging.INFO
    return logging.WARNING if status < 500 else logging.ERROR


class RequestContextFilter(logging.Filter):
    """Adds ``request_id``, ``daemon``, ``user`` and ``contract`` to every record (attach it to the handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current.get()
        if context is None:
            record.request_id = record.daemon = record.user = record.contract = "-"
        else:
            record.request_id = context.request_id
            record.daemon = context.daemon or "-"
            record.user = context.user or "-"
            record.contract = context.contract or "-"
        return True


class ExpectedRefusalFilter(logging.Filter):
    """For ``django.request``: a 4xx is told by the access line at its level, so Django's own line is dropped.

    Django logs every response of 400 and above at WARNING ("Not Found: ...",
    "Conflict: ..."), a second line for what the access line already says,
    and at a level that wakes people for a 409. Its 5xx lines (with the
    traceback) are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        return not (isinstance(status, int) and 400 <= status < 500)


class RequestLogMiddleware:
    """Request id, log context, access line and request metrics (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        context = RequestContext(request, incoming_request_id(request))
        token = current.set(context)
        try:
            response = self.get_response(request)
            elapsed = time.perf_counter() - started
            response[REQUEST_ID_HEADER] = context.request_id
            status = response.status_code
            match = getattr(request, "resolver_match", None)
            route = match.route if match is not None else ""
            observe_request(route, request.method or "", status, elapsed)
            level = access_level(status)
            if (status >= 400 or settings.ACCESS_LOG == "all") and access_logger.isEnabledFor(level):
                path = printable(request.path)
                access_logger.log(
                    level,
                    "%s %s %s %.1fms",
                    request.method,
                    path,
                    status,
                    elapsed * 1000,
                    extra={
                        "method": request.method,
                        "path": path,
                        "route": route or "-",
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            return response
        finally:
            current.reset(token)


def printable(text: str, limit: int = 2000) -> str:
    """Text from the URL as a log may hold it: control characters escaped (no forged lines), bounded."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return text if text.isprintable() else text.encode("unicode_escape", "backslashreplace").decode("ascii")
