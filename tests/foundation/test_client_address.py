"""The client's address: the peer, or, behind trusted proxies, the first hop from outside them."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from makima_supervisor.proxy import client_address


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "expected"),
    [
        (["127.0.0.1"], "203.0.113.5", None, "203.0.113.5"),  # no proxy
        (["127.0.0.1"], "127.0.0.1", "198.51.100.4", "198.51.100.4"),  # nginx on the same machine
        (["127.0.0.1"], "203.0.113.5", "127.0.0.1", "203.0.113.5"),  # an untrusted peer's header is not believed
        (["127.0.0.1"], "127.0.0.1", "127.0.0.1, 198.51.100.4", "198.51.100.4"),  # the client wrote the first entry
        (["127.0.0.1", "10.0.0.0/8"], "127.0.0.1", "198.51.100.4, 10.1.2.3", "198.51.100.4"),  # two proxies
        (["127.0.0.1", "10.0.0.0/8"], "127.0.0.1", "10.1.2.3, 10.4.5.6", "10.1.2.3"),  # all hops trusted
        (["127.0.0.1"], "127.0.0.1", "not-an-address", "127.0.0.1"),  # garbled: only the peer is known
        (["127.0.0.1"], "127.0.0.1", "2001:db8::7", "2001:db8::7"),
        (["*"], "192.0.2.9", "127.0.0.1, 198.51.100.4", "198.51.100.4"),  # `*`: the nearest proxy's word
    ],
)
def test_client_address(settings, trusted, peer, forwarded, expected):
    settings.TRUSTED_PROXIES = trusted
    extra = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_address(RequestFactory().get("/", **extra)) == expected
