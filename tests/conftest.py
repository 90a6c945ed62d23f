"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest
from django.db import connection


def pytest_collection_modifyitems(config, items):
    """Skip PostgreSQL-only tests with a clear reason when the suite runs on SQLite."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: run with DATABASE_URL=postgres://... (.ci/run does)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def _fresh_lease_renewals():
    """Each test starts with no lease renewed in this process (the database it renewed them in is rolled back)."""
    from supervisors.services.ownership import forget_lease_renewals

    forget_lease_renewals()
    yield
    forget_lease_renewals()
