"""Forwarded headers are believed only from the proxies the operator trusts (TRUSTED_PROXIES).

Behind a TLS-terminating proxy Django learns that a request came over HTTPS
from ``X-Forwarded-Proto`` (SECURE_PROXY_SSL_HEADER). Anyone who can reach the
service directly could send that header too, so this middleware, first in the
chain, removes the forwarded headers of any peer whose address is not in
TRUSTED_PROXIES before Django looks at them.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

FORWARDED_HEADERS = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...] | None:
    """The networks of TRUSTED_PROXIES (addresses or CIDR blocks); None for ``*`` (every peer)."""
    if "*" in entries:
        return None
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def is_trusted_proxy(address: str, entries: Iterable[str]) -> bool:
    networks = trusted_networks(tuple(entries))
    if networks is None:
        return True
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(peer in network for network in networks)


class TrustedProxyMiddleware:
    """Drops X-Forwarded-* (and Forwarded) headers sent by peers outside TRUSTED_PROXIES."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._warned: set[str] = set()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        if any(header in meta for header in FORWARDED_HEADERS):
            peer = meta.get("REMOTE_ADDR", "")
            if not is_trusted_proxy(peer, settings.TRUSTED_PROXIES):
                for header in FORWARDED_HEADERS:
                    meta.pop(header, None)
                if peer not in self._warned and len(self._warned) < 100:  # once per peer, bounded
                    self._warned.add(peer)
                    logger.warning(
                        "Forwarded headers from %s ignored: it is not in TRUSTED_PROXIES (%s). If it is your "
                        "TLS-terminating proxy, add its address there.",
                        peer,
                        ",".join(settings.TRUSTED_PROXIES),
                    )
        return self.get_response(request)


def client_address(request: HttpRequest) -> str:
    """The address of the client that made the request, by the same rule as the forwarded headers.

    The peer (``REMOTE_ADDR``) unless it is a trusted proxy that says, in
    ``X-Forwarded-For``, for whom it forwards: then the right-most address in
    that list that is not itself a trusted proxy (each proxy appends the
    address it heard from, so everything left of the first untrusted hop
    could have been written by the client). An untrusted peer's
    ``X-Forwarded-For`` never gets here (:class:`TrustedProxyMiddleware`
    drops it) and is not believed either way. Used by the metrics endpoint's
    loopback rule and by the admin login's lockout (django-axes).
    """
    meta = request.META
    peer = meta.get("REMOTE_ADDR", "") or ""
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    if not forwarded or not is_trusted_proxy(peer, settings.TRUSTED_PROXIES):
        return peer
    hops = [hop.strip() for hop in forwarded.split(",")[-32:] if hop.strip()]
    if hops and trusted_networks(tuple(settings.TRUSTED_PROXIES)) is None:
        return hops[-1]  # `*`: every hop is "trusted", so only the nearest proxy's word is worth anything
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a garbled list: the peer is the only address known for sure
        if not is_trusted_proxy(hop, settings.TRUSTED_PROXIES):
            return hop
    return hops[0] if hops else peer
