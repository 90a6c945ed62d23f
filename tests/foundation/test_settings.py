"""Settings come from the environment; production refuses to start half-configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT = ROOT


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: only what locates programs and the database, so
    # nothing the test run itself set (DJANGO_ALLOW_ASYNC_UNSAFE, ...) leaks in.
    # Run from a copy without the developer's .env (scripts/serve writes one).
    environment = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "DATABASE_URL") if k in os.environ}
    environment.update(DJANGO_SETTINGS_MODULE="makima_supervisor.settings", **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=CHECKOUT, env=environment, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(autouse=True)
def _in_fresh_checkout(fresh_checkout: Path):
    global CHECKOUT
    CHECKOUT = fresh_checkout


def test_production_without_secret_key_refuses_to_start_with_a_clear_message():
    result = run_manage("check")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_debug_without_secret_key_starts_for_local_development():
    result = run_manage("check", DEBUG="true")
    assert result.returncode == 0, result.stderr


def test_production_settings_pass_the_deploy_check_without_warnings():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY="k7Yp2vQ9zL4xW8mN3bR6tF1hJ5cD0sG2aE7uI9oP4yT6rV8nM3qX1wZ5lK0jH2gB",
        ALLOWED_HOSTS="supervisor.example.com",
        BEHIND_TLS_PROXY="true",  # production runs behind a TLS-terminating proxy (README)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_redirects_to_https_but_not_the_health_checks(client, db):
    """A load balancer probing over plain HTTP gets an answer, not a redirect; people get HTTPS."""
    from django.conf import settings

    assert settings.SECURE_SSL_REDIRECT  # the test settings are the production ones
    assert client.get("/admin/login/").status_code == 301
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.mark.postgres_only
def test_db_pool_setting_gives_django_a_psycopg_pool(db):
    """DB_POOL=true switches PostgreSQL connections to psycopg's pool, and queries still run."""
    from django.db import connection

    params = connection.settings_dict
    test_database_url = f"postgres://{params['USER']}@{params['HOST']}:{params['PORT']}/{params['NAME']}"
    result = run_manage(
        "shell",
        "-c",
        "from django.db import connection; connection.ensure_connection(); "
        "print(type(connection.pool).__name__, connection.settings_dict['CONN_MAX_AGE'])",
        DEBUG="true",
        DB_POOL="true",
        DATABASE_URL=test_database_url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["ConnectionPool", "0"]


def test_database_pooler_pgbouncer_turns_off_everything_that_outlives_a_transaction():
    """docs/pgbouncer.env is all it takes: no prepared statements anywhere, no server-side cursors."""
    pooler = dict(
        line.split("=", 1)
        for line in (ROOT / "docs" / "pgbouncer.env").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    result = run_manage(
        "shell",
        "-c",
        "import json; from django.conf import settings as s; d = s.DATABASES['default']; print(json.dumps("
        "[d['DISABLE_SERVER_SIDE_CURSORS'], d['OPTIONS']['prepare_threshold'], s.DB_PREPARE_HOT_STATEMENTS]))",
        DEBUG="true",
        DATABASE_URL="postgres://makima@pgbouncer.internal:6432/makima",
        **pooler,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[true, null, false]"


def test_unknown_database_pooler_refuses_to_start():
    result = run_manage("check", DEBUG="true", DATABASE_POOLER="pgpool")
    assert result.returncode != 0
    assert "DATABASE_POOLER='pgpool'" in result.stderr
