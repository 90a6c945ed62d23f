"""The migrated PostgreSQL schema is makima's, column by column.

The expected schema is parsed from tests/reference/supervisor_states.sql, a copy
of shared/reference/supervisor_states.sql, so a migration that drifts from the
reference (a type, a default, nullability, a constraint) fails here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db]

REFERENCE = Path(__file__).resolve().parent.parent / "reference" / "supervisor_states.sql"
SHARED_REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "supervisor_states.sql"

TYPE_NAMES = {
    "UUID": "uuid",
    "UUID[]": "uuid[]",
    "JSONB": "jsonb",
    "TIMESTAMPTZ": "timestamp with time zone",
    "INTEGER": "integer",
    "TEXT": "text",
    "BOOLEAN": "boolean",
}


@dataclass
class Column:
    name: str
    type: str
    not_null: bool
    default: str | None
    unique: bool = False
    references: str | None = None
    on_delete: str | None = None
    check: str | None = None


def _sql_type(raw: str) -> str:
    raw = raw.upper()
    match = re.fullmatch(r"VARCHAR\((\d+)\)", raw)
    if match:
        return f"character varying({match.group(1)})"
    return TYPE_NAMES[raw]


def _normalise_default(raw: str, sql_type: str) -> str:
    """Spell a reference default the way PostgreSQL reports it in pg_get_expr."""
    raw = raw.strip()
    if raw.upper() == "NOW()":
        return "now()"
    if raw.upper() in {"TRUE", "FALSE"}:
        return raw.lower()
    if raw.startswith("'") and "::" not in raw:
        return f"{raw}::{'character varying' if sql_type.startswith('character varying') else sql_type}"
    return raw


def parse_reference(text: str) -> dict[str, dict[str, Column]]:
    """Columns of every CREATE TABLE in the reference, by table then column name."""
    tables: dict[str, dict[str, Column]] = {}
    text = re.sub(r"--[^\n]*", "", text)
    for table, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\);", text, flags=re.S):
        columns: dict[str, Column] = {}
        # Join continuation lines (a CHECK on the next line) to their column.
        lines: list[str] = []
        for line in body.splitlines():
            line = line.strip().rstrip(",")
            if not line:
                continue
            if re.match(r"^[a-z_]+\s+[A-Z]", line):
                lines.append(line)
            else:
                lines[-1] += " " + line
        for line in lines:
            name, sql_type, rest = re.match(r"(\w+)\s+([A-Z]+(?:\(\d+\))?(?:\[\])?)\s*(.*)", line).groups()
            sql_type = _sql_type(sql_type)
            default = re.search(r"DEFAULT\s+('[^']*'(?:::\w+)?|\w+\(\)|\w+)", rest)
            references = re.search(r"REFERENCES (\w+) \((\w+)\)(?: ON DELETE (CASCADE|SET NULL))?", rest)
            check = re.search(r"CHECK \((.*)\)", rest)
            columns[name] = Column(
                name=name,
                type=sql_type,
                not_null="NOT NULL" in rest or "PRIMARY KEY" in rest,
                default=_normalise_default(default.group(1), sql_type) if default else None,
                unique="UNIQUE" in rest,
                references=references.group(1) if references else None,
                on_delete=(references.group(3) or "NO ACTION") if references else None,
                check=check.group(1) if check else None,
            )
        tables[table] = columns
    return tables


def actual_columns(table: str) -> dict[str, Column]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   pg_get_expr(d.adbin, d.adrelid)
            FROM pg_attribute a
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
            """,
            [table],
        )
        columns = {
            name: Column(name=name, type=sql_type, not_null=not_null, default=default)
            for name, sql_type, not_null, default in cursor.fetchall()
        }
        cursor.execute(
            """
            SELECT con.contype, att.attname, confrel.relname, con.confdeltype, pg_get_constraintdef(con.oid),
                   array_length(con.conkey, 1)
            FROM pg_constraint con
            JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = ANY (con.conkey)
            LEFT JOIN pg_class confrel ON confrel.oid = con.confrelid
            WHERE con.conrelid = %s::regclass
            """,
            [table],
        )
        delete_rules = {"a": "NO ACTION", "c": "CASCADE", "n": "SET NULL", "r": "RESTRICT", "d": "SET DEFAULT"}
        for kind, column, target, deltype, definition, width in cursor.fetchall():
            col = columns[column]
            if kind == "u" and width == 1:
                col.unique = True
            elif kind == "f":
                col.references, col.on_delete = target, delete_rules[deltype]
            elif kind == "c":
                col.check = definition
    return columns


REFERENCE_TABLES = parse_reference(REFERENCE.read_text())


def test_reference_copy_is_current():
    """The copy the test reads is the shared reference (when shared/ is beside the checkout)."""
    if not SHARED_REFERENCE.exists():
        pytest.skip("shared/ is not beside this checkout")
    assert REFERENCE.read_text() == SHARED_REFERENCE.read_text()


def test_reference_parses_into_every_table():
    assert set(REFERENCE_TABLES) == {"supervisor_states", "contracts", "daemons", "tasks"}
    assert len(REFERENCE_TABLES["supervisor_states"]) == 18


@pytest.mark.parametrize(
    ("table", "column"),
    [(table, column) for table, columns in REFERENCE_TABLES.items() for column in columns],
)
def test_column_matches_reference(table: str, column: str):
    expected = REFERENCE_TABLES[table][column]
    actual = actual_columns(table).get(column)
    assert actual is not None, f"{table}.{column} is missing"
    assert actual.type == expected.type, f"{table}.{column} type"
    assert actual.not_null == expected.not_null, f"{table}.{column} nullability"
    if column != "id":  # the UUID primary key default may come from the application
        assert actual.default == expected.default, f"{table}.{column} database default"
    assert actual.unique == expected.unique, f"{table}.{column} UNIQUE"
    assert actual.references == expected.references, f"{table}.{column} foreign key"
    assert actual.on_delete == expected.on_delete, f"{table}.{column} ON DELETE"
    if expected.check:
        assert actual.check is not None, f"{table}.{column} CHECK missing"
        assert "progress >= 0" in actual.check and "progress <= 100" in actual.check


def test_primary_keys_are_id():
    with connection.cursor() as cursor:
        for table in REFERENCE_TABLES:
            cursor.execute(
                "SELECT att.attname FROM pg_index i JOIN pg_attribute att ON att.attrelid = i.indrelid "
                "AND att.attnum = ANY (i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
                [table],
            )
            assert [row[0] for row in cursor.fetchall()] == ["id"], table


def test_row_inserted_without_newer_columns_gets_the_defaults():
    """Another program that only knows the base columns still gets the migration's defaults."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO contracts (id, name, phase) VALUES (gen_random_uuid(), 'c', 'plan') RETURNING id")
        contract_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO tasks (id, contract_id, name) VALUES (gen_random_uuid(), %s, 't') RETURNING id",
            [contract_id],
        )
        task_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO supervisor_states (id, contract_id, task_id, phase) VALUES (gen_random_uuid(), %s, %s, 'plan')"
            " RETURNING state, progress, spawned_task_ids, pending_task_ids, pending_questions::text,"
            " conversation_history::text, restoration_count, last_activity IS NOT NULL",
            [contract_id, task_id],
        )
        assert cursor.fetchone() == ("initializing", 0, [], [], "[]", "[]", 0, True)


def test_deleting_a_contract_in_sql_cascades_to_its_supervisor():
    """makima deleting a contract with plain SQL takes the supervisor row (and this project's rows) with it."""
    from supervisors.models import SupervisorCheckpoint, SupervisorState
    from tests.factories import make_supervisor

    supervisor = make_supervisor()
    SupervisorCheckpoint.objects.create(supervisor=supervisor, reason="state_saved", state="idle", phase="plan")
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM contracts WHERE id = %s", [supervisor.contract_id])
    assert not SupervisorState.objects.filter(pk=supervisor.pk).exists()
    assert not SupervisorCheckpoint.objects.filter(supervisor_id=supervisor.pk).exists()


def test_deleting_a_daemon_in_sql_takes_its_keys_and_keeps_the_history():
    """makima deleting a daemon with plain SQL is not blocked by this project's rows that name it."""
    from supervisors.models import Daemon, RestorationLog
    from supervisors.services.actors import Actor
    from supervisors.services.restoration import restore_supervisor
    from supervisors.services.world import create_daemon_key
    from tests.factories import make_daemon, make_supervisor

    daemon = make_daemon("doomed")
    key = create_daemon_key(daemon.id).api_key
    supervisor = make_supervisor(daemon=daemon)
    restore_supervisor(supervisor.contract_id, source="manual", actor=Actor.for_daemon(daemon))
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM daemons WHERE id = %s", [daemon.id])
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # Django's constraints are deferred: check them now
    assert not Daemon.objects.filter(pk=daemon.pk).exists()
    assert not type(key).objects.filter(pk=key.pk).exists()
    log = RestorationLog.objects.get(supervisor=supervisor)
    assert log.actor_daemon_id is None and log.actor_label
