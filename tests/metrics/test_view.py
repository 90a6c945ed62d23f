"""/metrics is for Prometheus only: the bearer token when METRICS_TOKEN is set, loopback clients otherwise."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-metrics-token"


def get(**extra: str):
    return Client().get("/metrics", **extra)


def test_with_a_token_only_the_right_bearer_gets_the_metrics(settings):
    settings.METRICS_TOKEN = TOKEN
    assert get().status_code == 401
    assert get().json()["code"] == "not_authenticated"
    assert get()["WWW-Authenticate"].startswith("Bearer")
    assert get(HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 401
    assert get(HTTP_AUTHORIZATION=f"Bearer {TOKEN[:-1]}").status_code == 401
    assert get(HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert get(HTTP_AUTHORIZATION="Bearer ünïcode").status_code == 401
    ok = get(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ok.status_code == 200
    assert b"makima_supervisors" in ok.content


def test_with_a_token_loopback_is_not_enough(settings):
    settings.METRICS_TOKEN = TOKEN
    assert get(REMOTE_ADDR="127.0.0.1").status_code == 401


def test_with_a_token_any_address_with_the_token_gets_them(settings):
    settings.METRICS_TOKEN = TOKEN
    assert get(REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_without_a_token_only_loopback_clients_get_the_metrics(settings):
    settings.METRICS_TOKEN = ""
    assert get(REMOTE_ADDR="127.0.0.1").status_code == 200
    assert get(REMOTE_ADDR="127.0.0.2").status_code == 200
    assert get(REMOTE_ADDR="::1").status_code == 200
    refused = get(REMOTE_ADDR="10.1.2.3")
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert b"makima_" not in refused.content


def test_a_remote_client_behind_the_local_proxy_is_refused(settings):
    """nginx on the same machine connects from 127.0.0.1 but forwards for the real client."""
    settings.METRICS_TOKEN = ""
    settings.TRUSTED_PROXIES = ["127.0.0.1", "::1"]
    assert get(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.4").status_code == 403
    # Prometheus on the proxy's machine, through the proxy: still loopback.
    assert get(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 200


def test_a_forwarded_header_from_an_untrusted_peer_cannot_fake_loopback(settings):
    settings.METRICS_TOKEN = ""
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    assert get(REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403


def test_a_client_cannot_prepend_loopback_to_the_proxys_list(settings):
    settings.METRICS_TOKEN = ""
    settings.TRUSTED_PROXIES = ["127.0.0.1", "10.0.0.0/8"]
    forged = "127.0.0.1, 198.51.100.4, 10.0.0.9"  # the client wrote the first entry; 10.0.0.9 is an inner proxy
    assert get(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forged).status_code == 403


def test_only_get(settings):
    settings.METRICS_TOKEN = ""
    assert Client().post("/metrics").status_code == 405
