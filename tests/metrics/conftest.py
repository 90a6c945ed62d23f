"""Fixtures of the metrics tests: a scrape parsed with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from supervisors.api.authentication import clear_key_cache

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture(autouse=True)
def _plain_http(settings):
    """The test client speaks plain HTTP; production redirects it to HTTPS."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    clear_key_cache()
    yield
    clear_key_cache()


@pytest.fixture
def scrape() -> Callable[..., Samples]:
    """GET /metrics from loopback (the test client's address) and parse it; fails unless 200."""

    def get(**extra: str) -> Samples:
        response = Client().get("/metrics", **extra)
        assert response.status_code == 200, response.content[:500]
        assert response["Content-Type"].startswith("text/plain; version=")
        return parse(response.content.decode())

    return get
