"""Only real unavailability is a 503: a protocol error on a live connection is a 500 in the error shape, logged.

Behind a transaction-mode pooler without DATABASE_POOLER=pgbouncer, a
connection runs into prepared statements it never made or lost ("prepared
statement does not exist"). Retrying cannot help, so telling daemons "503,
retry later" would hide the misconfiguration. Here the same error is made for
real, on the service's own connection: its prepared statements are deallocated
behind psycopg's back.
"""

from __future__ import annotations

import json
import logging

import psycopg
import pytest
from django.db import connection
from django.test import Client

from supervisors.services.world import create_daemon_key, record_daemon_heartbeat
from tests.factories import make_contract, make_daemon, make_supervisor

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

BODY = json.dumps({"state": "working", "currentActivity": "Running tests", "progress": 40})


@pytest.fixture
def heartbeat(settings):
    """POSTs a heartbeat of a supervisor owned by the calling daemon; returns the response."""
    settings.SECURE_SSL_REDIRECT = False
    settings.DB_PREPARE_HOT_STATEMENTS = True
    settings.DB_PREPARE_THRESHOLD = 0  # prepared on first use
    daemon = make_daemon("protocol")
    record_daemon_heartbeat(daemon.id)
    key = create_daemon_key(daemon.id, name="test").raw
    supervisor = make_supervisor(make_contract("Protocol contract"), daemon=daemon)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    path = f"/api/v1/contracts/{supervisor.contract_id}/supervisor/heartbeat/"
    return lambda: client.post(path, BODY, content_type="application/json")


def test_prepared_statement_lost_is_a_500_in_the_error_shape_and_logged_as_a_bug(heartbeat, caplog):
    assert heartbeat().status_code == 200  # looks the key up
    assert heartbeat().status_code == 200  # the cached key's path: the statements the next one runs
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        names = [name for (name,) in cursor.fetchall()]
        assert names, "the heartbeat's statements were prepared"
        # What a pooler's next server connection looks like: none of them. (Inside DO, so that psycopg,
        # which watches for DEALLOCATE, keeps believing they exist, as it does behind a pooler.)
        cursor.execute("DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$")

    with caplog.at_level(logging.ERROR, logger="supervisors.api.db_errors"):
        response = heartbeat()

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert set(response.json()) == {"code", "message", "fields"}
    assert "Retry-After" not in response
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and "a bug, not an outage" in r.getMessage()]
    assert logged and "DATABASE_POOLER=pgbouncer" in logged[0].getMessage() and logged[0].exc_info


def test_killed_connection_is_still_a_503_retry_later(heartbeat):
    assert heartbeat().status_code == 200
    params = connection.settings_dict
    pid = connection.connection.info.backend_pid
    with psycopg.connect(
        host=params["HOST"],
        port=params["PORT"],
        user=params["USER"],
        password=params.get("PASSWORD") or None,
        dbname=params["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])

    response = heartbeat()

    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert response["Retry-After"]
    connection.close()  # as Django does after such a request (its test client does not); reconnecting is
    # covered under gunicorn in test_database_faults.py
