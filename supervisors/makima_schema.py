"""What this service needs from makima's own tables, and how ``migrate`` adopts them.

makima's database already holds ``contracts``, ``daemons``, ``tasks`` and
``supervisor_states`` (shared/reference/supervisor_states.sql), with columns of
makima's own besides. Pointed at such a database, migration 0001 creates only
this service's tables: it finds makima's four tables, checks them against
:data:`EXPECTED` (every column, type, nullability, default and constraint the
service relies on) and refuses with one line per difference, before anything
is written, when they do not match. It never creates, alters or drops
anything on makima's tables. On a database without them (or on SQLite) 0001
creates them as the reference describes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.core.management.base import CommandError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations.base import Operation

MAKIMA_TABLES = ("contracts", "daemons", "tasks", "supervisor_states")
#: makima's own migration table (sqlx): its presence marks a database makima owns.
MAKIMA_MIGRATIONS_TABLE = "_sqlx_migrations"


@dataclass(frozen=True)
class Column:
    type: str  # as format_type() spells it; character varying(n) also accepts text and longer varchar
    not_null: bool
    default: str | None = None  # as pg_get_expr() spells it, string casts aside


@dataclass(frozen=True)
class ForeignKey:
    column: str
    target: str
    on_delete: str  # pg_constraint.confdeltype: c cascade, n set null, a no action


TZ, UUID, TEXT, JSONB, UUIDS = "timestamp with time zone", "uuid", "text", "jsonb", "uuid[]"
VARCHAR50 = "character varying(50)"

EXPECTED: dict[str, dict[str, Column]] = {
    "contracts": {
        "id": Column(UUID, True),
        "name": Column(TEXT, True),
        "phase": Column(VARCHAR50, True),
        "status": Column(VARCHAR50, True, "'active'"),
        "created_at": Column(TZ, True, "now()"),
        "updated_at": Column(TZ, True, "now()"),
    },
    "daemons": {
        "id": Column(UUID, True),
        "name": Column(TEXT, True),
        "status": Column(VARCHAR50, True, "'disconnected'"),
        "last_heartbeat_at": Column(TZ, False),
        "created_at": Column(TZ, True, "now()"),
    },
    "tasks": {
        "id": Column(UUID, True),
        "contract_id": Column(UUID, True),
        "parent_task_id": Column(UUID, False),
        "daemon_id": Column(UUID, False),
        "name": Column(TEXT, True),
        "status": Column(VARCHAR50, True, "'pending'"),
        "is_supervisor": Column("boolean", True, "false"),
        "created_at": Column(TZ, True, "now()"),
        "updated_at": Column(TZ, True, "now()"),
        "completed_at": Column(TZ, False),
    },
    "supervisor_states": {
        "id": Column(UUID, True),
        "contract_id": Column(UUID, True),
        "task_id": Column(UUID, True),
        "conversation_history": Column(JSONB, True, "'[]'::jsonb"),
        "pending_task_ids": Column(UUIDS, True, "'{}'::uuid[]"),
        "phase": Column(VARCHAR50, True),
        "last_activity": Column(TZ, True, "now()"),
        "created_at": Column(TZ, True, "now()"),
        "updated_at": Column(TZ, True, "now()"),
        "state": Column(VARCHAR50, True, "'initializing'"),
        "current_activity": Column(TEXT, False),
        "progress": Column("integer", True, "0"),
        "error_message": Column(TEXT, False),
        "spawned_task_ids": Column(UUIDS, True, "'{}'::uuid[]"),
        "pending_questions": Column(JSONB, True, "'[]'::jsonb"),
        "restoration_count": Column("integer", True, "0"),
        "last_restored_at": Column(TZ, False),
        "restoration_source": Column(VARCHAR50, False),
    },
}

FOREIGN_KEYS: dict[str, list[ForeignKey]] = {
    "supervisor_states": [ForeignKey("contract_id", "contracts", "c"), ForeignKey("task_id", "tasks", "c")],
    "tasks": [
        ForeignKey("contract_id", "contracts", "c"),
        ForeignKey("parent_task_id", "tasks", "n"),
        ForeignKey("daemon_id", "daemons", "n"),
    ],
}
UNIQUE_COLUMNS = {"supervisor_states": ["contract_id"]}
ON_DELETE = {"a": "NO ACTION", "c": "CASCADE", "n": "SET NULL", "r": "RESTRICT", "d": "SET DEFAULT"}


class MakimaSchemaMismatch(CommandError):
    """makima's tables are there but lack something the service relies on; ``migrate`` changed nothing."""


def existing_tables(connection: BaseDatabaseWrapper, names: tuple[str, ...] = MAKIMA_TABLES) -> list[str]:
    """Which of ``names`` exist in the current schema (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NOT NULL", [list(names)])
        return sorted(row[0] for row in cursor.fetchall())


def _strip_string_cast(default: str | None) -> str | None:
    if default is None:
        return None
    return re.sub(r"::(character varying|text)$", "", default)


def _type_fits(expected: str, actual: str) -> bool:
    if expected == actual:
        return True
    wanted = re.fullmatch(r"character varying\((\d+)\)", expected)
    if not wanted:
        return False
    longer = re.fullmatch(r"character varying\((\d+)\)", actual)
    return actual == "text" or (longer is not None and int(longer.group(1)) >= int(wanted.group(1)))


def schema_differences(connection: BaseDatabaseWrapper) -> list[str]:
    """Every way makima's four tables differ from what the service relies on; empty when they fit.

    Extra columns of makima's own are fine as long as a row inserted without
    them is accepted (nullable or with a default).
    """
    differences: list[str] = []
    with connection.cursor() as cursor:
        for table, expected_columns in EXPECTED.items():
            cursor.execute(
                """
                SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
                       a.attidentity <> '' OR a.attgenerated <> ''
                FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
                """,
                [table],
            )
            actual = {
                name: (sql_type, not_null, default, generated)
                for name, sql_type, not_null, default, generated in cursor.fetchall()
            }
            for name, want in expected_columns.items():
                if name not in actual:
                    differences.append(
                        f"{table}.{name}: missing (expected {want.type}{' NOT NULL' if want.not_null else ''})"
                    )
                    continue
                sql_type, not_null, default, _ = actual[name]
                if not _type_fits(want.type, sql_type):
                    differences.append(f"{table}.{name}: type is {sql_type}, expected {want.type}")
                if not_null != want.not_null:
                    differences.append(
                        f"{table}.{name}: {'NOT NULL' if not_null else 'nullable'}, expected "
                        f"{'NOT NULL' if want.not_null else 'nullable'}"
                    )
                if name != "id" and _strip_string_cast(default) != want.default:
                    differences.append(
                        f"{table}.{name}: default is {default or 'none'}, expected {want.default or 'none'}"
                    )
            for name, (_, not_null, default, generated) in actual.items():
                if name not in expected_columns and not_null and default is None and not generated:
                    differences.append(
                        f"{table}.{name}: makima's own column is NOT NULL without a default; rows this service "
                        "inserts would be refused"
                    )
            differences += _constraint_differences(cursor, table)
    return differences


def _constraint_differences(cursor: Any, table: str) -> list[str]:
    differences: list[str] = []
    cursor.execute(
        """
        SELECT array_agg(a.attname ORDER BY a.attnum), i.indisprimary
        FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indpred IS NULL
        GROUP BY i.indexrelid, i.indisprimary
        """,
        [table],
    )
    unique = cursor.fetchall()
    if not any(primary and columns == ["id"] for columns, primary in unique):
        differences.append(f"{table}: primary key is not (id)")
    for column in UNIQUE_COLUMNS.get(table, []):
        if not any(columns == [column] for columns, _ in unique):
            differences.append(f"{table}.{column}: UNIQUE constraint missing")
    cursor.execute(
        """
        SELECT a.attname, confrel.relname, c.confdeltype
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        JOIN pg_class confrel ON confrel.oid = c.confrelid
        WHERE c.conrelid = to_regclass(%s) AND c.contype = 'f' AND cardinality(c.conkey) = 1
        """,
        [table],
    )
    foreign = {(column, target): rule for column, target, rule in cursor.fetchall()}
    for fk in FOREIGN_KEYS.get(table, []):
        rule = foreign.get((fk.column, fk.target))
        if rule is None:
            differences.append(f"{table}.{fk.column}: foreign key to {fk.target}(id) missing")
        elif rule != fk.on_delete:
            differences.append(
                f"{table}.{fk.column}: foreign key to {fk.target} is ON DELETE {ON_DELETE[rule]}, "
                f"expected ON DELETE {ON_DELETE[fk.on_delete]}"
            )
    if table == "supervisor_states":
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'c'",
            [table],
        )
        if not any("progress >= 0" in d and "progress <= 100" in d for (d,) in cursor.fetchall()):
            differences.append("supervisor_states.progress: CHECK (progress >= 0 AND progress <= 100) missing")
    return differences


def adoption_verdict(connection: BaseDatabaseWrapper) -> bool:
    """True when makima's tables are there and fit (adopt them), False when none is there (create them).

    Raises MakimaSchemaMismatch, listing each difference, when only some are
    there or they lack something the service relies on.
    """
    if connection.vendor != "postgresql":
        return False
    present = existing_tables(connection)
    if not present:
        return False
    if len(present) < len(MAKIMA_TABLES):
        missing = sorted(set(MAKIMA_TABLES) - set(present))
        raise MakimaSchemaMismatch(
            f"Refusing to migrate: makima's tables are only partly here ({', '.join(present)} exist, "
            f"{', '.join(missing)} do not). Nothing was changed."
        )
    differences = schema_differences(connection)
    if differences:
        raise MakimaSchemaMismatch(
            "Refusing to migrate: this database holds makima's tables, but they differ from what the service "
            'relies on (README, "Pointing the service at makima\'s database"). Nothing was changed.\n  '
            + "\n  ".join(differences)
        )
    return True


def check_before_migrate(
    sender: Any, *, plan: list[tuple[Any, bool]] | None = None, using: str = "default", **kwargs: Any
) -> None:
    """pre_migrate: refuse before ``migrate`` writes anything (even django_migrations) when adoption would fail."""
    from django.db import connections

    if plan and any(m.app_label == "supervisors" and m.name == "0001_initial" and not back for m, back in plan):
        adoption_verdict(connections[using])


ADOPTED = "_makima_tables_adopted"


class AdoptMakimaTables(Operation):
    """First operation of 0001: decide once whether makima's tables are adopted (verified) or created.

    Changes no state; the decision is kept on the schema editor, which every
    operation of the migration shares, for :class:`UnlessAdopted`.
    """

    reversible = True

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (self.__class__.__qualname__, [], {})

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: Any, to_state: Any
    ) -> None:
        setattr(schema_editor, ADOPTED, adoption_verdict(schema_editor.connection))

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: Any, to_state: Any
    ) -> None:
        pass

    def describe(self) -> str:
        return "Adopt makima's tables when they are already there (verified), else create them"


def is_makima_database(schema_editor: BaseDatabaseSchemaEditor) -> bool:
    """Unapplying must never drop makima's tables or rules: a database with makima's migration table is makima's."""
    connection = schema_editor.connection
    return connection.vendor == "postgresql" and bool(existing_tables(connection, (MAKIMA_MIGRATIONS_TABLE,)))


class UnlessAdopted(Operation):
    """Wraps an operation on one of makima's tables: the model state always changes, the database only
    when 0001 creates makima's tables (never when it adopted them)."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation

    @property
    def reversible(self) -> bool:  # type: ignore[override]
        return self.operation.reversible

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (self.__class__.__qualname__, [self.operation], {})

    def state_forwards(self, app_label: str, state: Any) -> None:
        self.operation.state_forwards(app_label, state)

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: Any, to_state: Any
    ) -> None:
        if not getattr(schema_editor, ADOPTED, False):
            self.operation.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: Any, to_state: Any
    ) -> None:
        if not is_makima_database(schema_editor):
            self.operation.database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        return f"{self.operation.describe()} (unless makima's table is adopted)"

    @property
    def migration_name_fragment(self) -> str | None:
        return self.operation.migration_name_fragment

    def references_model(self, name: str, app_label: str) -> bool:
        return self.operation.references_model(name, app_label)
