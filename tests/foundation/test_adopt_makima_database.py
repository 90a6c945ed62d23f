"""`manage.py migrate` adopts makima's existing database: it adds this service's tables and touches none of makima's.

Each test builds a scratch database the way makima has it (tests/reference DDL,
columns of makima's own, its `_sqlx_migrations`, rows written with SQL), runs
the real `migrate` in a subprocess, and compares checksums of makima's tables:
their rows and their catalog definitions (columns, defaults, constraints,
foreign keys, indexes, triggers of its own).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.postgres_only

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "reference" / "supervisor_states.sql"
MAKIMA_TABLES = ["contracts", "daemons", "tasks", "supervisor_states", "_sqlx_migrations"]

MAKIMA_EXTRAS = """
ALTER TABLE contracts ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE contracts ADD COLUMN owner_id UUID;
ALTER TABLE daemons ADD COLUMN hostname TEXT NOT NULL DEFAULT 'localhost';
ALTER TABLE tasks ADD COLUMN repo_url TEXT;
ALTER TABLE supervisor_states ADD COLUMN model_settings JSONB;
CREATE INDEX tasks_contract_idx ON tasks (contract_id);
CREATE TABLE _sqlx_migrations (
    version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL
);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
VALUES (20260201000001, 'enhanced supervisor state', true, '\\x00ff', 12);
"""

CONTRACT, DAEMON, TASK, STATE = (uuid.UUID(int=n) for n in (1, 2, 3, 4))
MAKIMA_ROWS = f"""
INSERT INTO contracts (id, name, phase, description) VALUES ('{CONTRACT}', 'Adopted contract', 'execute', 'makima''s');
INSERT INTO daemons (id, name, status, last_heartbeat_at) VALUES ('{DAEMON}', 'daemon-adopted', 'connected', now());
INSERT INTO tasks (id, contract_id, daemon_id, name, status, is_supervisor)
VALUES ('{TASK}', '{CONTRACT}', '{DAEMON}', 'supervisor', 'running', true);
INSERT INTO supervisor_states (id, contract_id, task_id, phase, state, current_activity, progress)
VALUES ('{STATE}', '{CONTRACT}', '{TASK}', 'execute', 'interrupted', 'Running tests', 40);
"""


def makima_ddl() -> str:
    """The reference DDL, tables in an order PostgreSQL accepts (referenced tables first)."""
    text = re.sub(r"--[^\n]*", "", REFERENCE.read_text())
    tables = dict(re.findall(r"(CREATE TABLE (\w+) \(.*?\n\);)", text, flags=re.S)[i][::-1] for i in range(4))
    return "\n".join(tables[name] for name in ("contracts", "daemons", "tasks", "supervisor_states"))


#: The indexes migration 0015 adds to makima's tables (on columns heartbeats never write).
SERVICE_INDEXES = tuple(
    name
    for name, *_ in importlib.import_module(
        "supervisors.migrations.0015_attention_and_search_indexes"
    ).MAKIMA_TABLE_INDEXES
)


def fingerprint(dsn: str) -> dict[str, str]:
    """md5 of makima's rows, table by table, and of the catalog's definitions of makima's tables."""
    with psycopg.connect(dsn) as conn:
        sums = {
            table: conn.execute(
                f"SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {table} t"
            ).fetchone()[0]
            for table in MAKIMA_TABLES
        }
        oids = "SELECT oid FROM pg_class WHERE relname = ANY(%(t)s) AND relnamespace = 'public'::regnamespace"
        catalog = {
            "columns": f"""SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE a.attrelid IN ({oids}) AND a.attnum > 0 AND NOT a.attisdropped""",
            "constraints": f"""SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), condeferrable,
                condeferred FROM pg_constraint WHERE conrelid IN ({oids})""",
            # Indexes the service adds (migration 0015, on columns heartbeats never write) are checked apart.
            "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%(t)s) "
            "AND indexname <> ALL(%(own)s)",
            # PostgreSQL's internal triggers on a referenced table belong to the service's own foreign keys.
            "triggers": f"SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE tgrelid IN ({oids}) "
            "AND NOT tgisinternal",
            "tables": f"SELECT relname, relkind, relpersistence, reloptions, relacl FROM pg_class "
            f"WHERE oid IN ({oids})",
        }
        for name, sql in catalog.items():
            rows = sorted(map(repr, conn.execute(sql, {"t": MAKIMA_TABLES, "own": list(SERVICE_INDEXES)}).fetchall()))
            sums[name] = "\n".join(rows)
    return sums


@pytest.fixture
def makima_database() -> Iterator[str]:
    """A scratch database holding makima's tables and rows; its URL."""
    params = connection.settings_dict
    name = params["NAME"].removeprefix("test_") + "_adopt"
    server = f"host={params['HOST']} port={params['PORT']} user={params['USER']} dbname=postgres"
    if params.get("PASSWORD"):
        server += f" password={params['PASSWORD']}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = server.replace("dbname=postgres", f"dbname={name}")
    with psycopg.connect(dsn) as conn:
        conn.execute(makima_ddl())
        conn.execute(MAKIMA_EXTRAS)
        conn.execute(MAKIMA_ROWS)
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    yield dsn, f"postgres://{params['USER']}{password}@{params['HOST']}:{params['PORT']}/{name}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    environment.update(
        DJANGO_SETTINGS_MODULE="makima_supervisor.settings",
        DATABASE_URL=database_url,
        SECRET_KEY="adoption-test-" + "k" * 50,
        DEBUG="true",
        ALLOWED_HOSTS="testserver",
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )


SERVICE_ON_ADOPTED_ROWS = f"""
import json
from django.contrib.auth import get_user_model
from django.test import Client
from supervisors.services.world import create_daemon_key
key = create_daemon_key("{DAEMON}", name="adoption test")
api = Client().get("/api/v1/contracts/{CONTRACT}/supervisor/", HTTP_AUTHORIZATION="Bearer " + key.raw)
staff = Client()
staff.force_login(get_user_model().objects.create_superuser("adopter", "a@example.com", "x"))
admin = staff.get("/admin/supervisors/supervisorstate/")
print(json.dumps([api.status_code, api.json(), admin.status_code, "Adopted contract" in admin.text]))
"""


def test_migrate_adopts_makima_tables_without_changing_them(makima_database):
    dsn, url = makima_database
    before = fingerprint(dsn)

    migrated = manage(url, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    assert fingerprint(dsn) == before

    with psycopg.connect(dsn) as conn:  # the service's own tables are there now
        own = conn.execute("SELECT to_regclass('supervisor_checkpoints'), to_regclass('daemon_api_keys')").fetchone()
    assert all(own)
    assert manage(url, "migrate", "--check").returncode == 0
    with psycopg.connect(dsn) as conn:  # the service's indexes on makima's tables, built and valid
        built = conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = ANY(%s) AND i.indisvalid ORDER BY 1",
            [list(SERVICE_INDEXES)],
        ).fetchall()
    assert [name for (name,) in built] == sorted(SERVICE_INDEXES)

    restored = manage(
        url,
        "restore_supervisors",
        "--contract",
        str(CONTRACT),
        "--source",
        "daemon_restart",
        "--reason",
        "adopted",
        "--json",
    )
    assert restored.returncode == 0, restored.stderr
    with psycopg.connect(dsn) as conn:
        state, count, extra = conn.execute(
            "SELECT state, restoration_count, model_settings FROM supervisor_states WHERE id = %s", [STATE]
        ).fetchone()
    assert (state, count, extra) == ("working", 1, None)

    service = manage(url, "shell", "-c", SERVICE_ON_ADOPTED_ROWS)
    assert service.returncode == 0, service.stderr
    api_status, body, admin_status, listed = json.loads(service.stdout.strip().splitlines()[-1])
    assert api_status == 200 and body["contractId"] == str(CONTRACT) and body["restorationCount"] == 1
    assert admin_status == 200 and listed


def test_makima_database_missing_a_column_is_refused_and_left_as_it_was(makima_database):
    dsn, url = makima_database
    with psycopg.connect(dsn) as conn:
        conn.execute("ALTER TABLE supervisor_states DROP COLUMN restoration_source")
        conn.execute("ALTER TABLE contracts ALTER COLUMN status DROP DEFAULT")
        conn.execute("ALTER TABLE tasks ADD COLUMN team_id UUID")
        conn.execute("UPDATE tasks SET team_id = gen_random_uuid()")
        conn.execute("ALTER TABLE tasks ALTER COLUMN team_id SET NOT NULL")
    before = fingerprint(dsn)

    refused = manage(url, "migrate", "--no-input")
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert "Refusing to migrate" in refused.stderr and "Nothing was changed" in refused.stderr
    assert "supervisor_states.restoration_source: missing" in refused.stderr
    assert "contracts.status: default is none, expected 'active'" in refused.stderr
    assert "tasks.team_id: makima's own column is NOT NULL without a default" in refused.stderr
    assert fingerprint(dsn) == before
    with psycopg.connect(dsn) as conn:  # not even Django's bookkeeping was written
        assert conn.execute("SELECT to_regclass('django_migrations')").fetchone() == (None,)


@pytest.mark.django_db
def test_a_freshly_migrated_database_passes_the_adoption_check():
    """The check and the migrations describe the same schema: the service would adopt its own tables."""
    from supervisors.makima_schema import schema_differences

    assert schema_differences(connection) == []


LZ4_AVAILABLE = "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
COMPRESSION = (
    "SELECT attcompression, format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = 'supervisor_states'::regclass AND attname = 'conversation_history'"
)


def test_migrate_compresses_makimas_conversation_column_with_lz4_and_makimas_writes_keep_working(makima_database):
    """0017 changes only the column's TOAST compression (issue 12): same type, makima's rows and writes as before."""
    dsn, url = makima_database
    big = json.dumps([{"role": "user", "content": f"message {i} " + "lorem ipsum " * 40} for i in range(400)])
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE supervisor_states SET conversation_history = %s::jsonb WHERE id = %s", [big, STATE])
        lz4 = conn.execute(LZ4_AVAILABLE).fetchone()[0]

    assert manage(url, "migrate", "--no-input").returncode == 0

    with psycopg.connect(dsn) as conn:
        assert conn.execute(COMPRESSION).fetchone() == ("l" if lz4 else "", "jsonb")
        # The value makima stored before stays readable; makima's next write of the column is compressed anew.
        assert conn.execute("SELECT conversation_history FROM supervisor_states WHERE id = %s", [STATE]).fetchone()[
            0
        ] == json.loads(big)
        conn.execute(
            "UPDATE supervisor_states SET conversation_history = conversation_history || %s::jsonb WHERE id = %s",
            [json.dumps([{"role": "assistant", "content": "makima wrote this"}]), STATE],
        )
        method, length = conn.execute(
            "SELECT pg_column_compression(conversation_history), jsonb_array_length(conversation_history) "
            "FROM supervisor_states WHERE id = %s",
            [STATE],
        ).fetchone()
    assert length == 401 and method == ("lz4" if lz4 else "pglz")

    assert manage(url, "migrate", "supervisors", "0016", "--no-input").returncode == 0
    with psycopg.connect(dsn) as conn:
        assert conn.execute(COMPRESSION).fetchone() == ("", "jsonb")
