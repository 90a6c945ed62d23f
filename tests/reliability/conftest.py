"""Fixtures of the reliability tests: the live test database's URL, for a gunicorn child process."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.db import connection


def database_url_of(settings_dict: dict) -> str:
    """``postgres://user:password@host:port/name`` of a Django database (the test database when under pytest)."""
    user = quote(settings_dict.get("USER") or "")
    password = settings_dict.get("PASSWORD")
    auth = f"{user}:{quote(password)}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture
def live_database_url(transactional_db) -> str:
    """The test database, committed to for real, as a URL another process (gunicorn) can use."""
    return database_url_of(connection.settings_dict)
