"""``GET /metrics``: the Prometheus text format, for Prometheus only.

Protection, one of two:

* ``METRICS_TOKEN`` set: only a request carrying ``Authorization: Bearer <that token>``
  (compared in constant time) gets the metrics; anything else is a 401.
* not set: only a client on a loopback address (127.0.0.0/8, ::1) gets them,
  judged by the real client address (behind a trusted proxy, the address the
  proxy forwards for: makima_supervisor.proxy.client_address), so a request
  from outside that reaches the service through a local nginx is refused (403).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder

from makima_supervisor.proxy import client_address
from supervisors.api.errors import error_response

from .domain import DomainCollector


class _ThisProcess:
    """The default registry's collectors (request metrics, process and platform figures) of this one process."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def scrape_registry() -> CollectorRegistry:
    """A registry for one scrape: the request figures (all worker processes' in multiprocess mode) and the domain."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())  # type: ignore[arg-type]
    registry.register(DomainCollector())
    return registry


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def refusal(request: HttpRequest) -> HttpResponse | None:
    """The answer for a request that may not read the metrics, or None when it may."""
    token = settings.METRICS_TOKEN
    if token:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, offered = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(), token.encode()):
            return None
        response = error_response(401, "not_authenticated", "The metrics need 'Authorization: Bearer <METRICS_TOKEN>'.")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if _is_loopback(client_address(request)):
        return None
    return error_response(
        403, "permission_denied", "The metrics are served to loopback clients only unless METRICS_TOKEN is set."
    )


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refused = refusal(request)
    if refused is not None:
        return refused
    # The text format Prometheus asks for in its Accept header (OpenMetrics when it asks for that).
    encoder, content_type = choose_encoder(request.META.get("HTTP_ACCEPT", ""))
    return HttpResponse(encoder(scrape_registry()), content_type=content_type)
