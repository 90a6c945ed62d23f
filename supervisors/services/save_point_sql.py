"""What a full save checks before it locks anything, read in ONE fixed statement.

A full save (``PUT .../supervisor/``) must know that the contract exists,
whether the saving daemon may act on it (:func:`~.ownership.may_add_tasks`),
and, for its task and every spawned task, whether the task exists, whose
contract it is, and whether it is a supervisor task. These were four ORM
queries built per request; here they are one statement whose text never
changes (a ``UNION ALL`` of three small index reads), run on the hot cursor
(:mod:`.hot_cursor`: prepared once per connection on PostgreSQL). The rules
themselves stay where they live: the caller applies them to what this reads.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from django.db import connection

from supervisors.models import Contract, Task

from .hot_cursor import hot_cursor
from .ownership import column_uuid

_CONTRACT, _SUPERVISOR_TASK, _NAMED_TASK = 0, 1, 2


@dataclass(frozen=True)
class SaveReferences:
    """What the database holds about a full save's contract and tasks."""

    contract_exists: bool
    #: The daemons (None: unassigned) of the contract's supervisor tasks.
    supervisor_task_daemons: tuple[uuid.UUID | None, ...]
    #: Each named task that exists: (its contract, whether it is a supervisor task).
    tasks: dict[uuid.UUID, tuple[uuid.UUID, bool]]

    def task_contracts(self) -> dict[uuid.UUID, uuid.UUID]:
        """Task -> contract, as :func:`~.inputs.check_task_ids` reads it."""
        return {task_id: contract_id for task_id, (contract_id, _) in self.tasks.items()}


@cache
def _sql(vendor: str) -> str:
    contracts, tasks = Contract._meta.db_table, Task._meta.db_table
    named = "id = ANY(%(tasks)s)" if vendor == "postgresql" else "id IN (SELECT value FROM json_each(%(tasks)s))"
    null_uuid, null_bool = ("NULL::uuid", "NULL::boolean") if vendor == "postgresql" else ("NULL", "NULL")
    return (
        f"SELECT {_CONTRACT}, id, {null_uuid}, {null_bool}, {null_uuid} FROM {contracts} WHERE id = %(contract)s "
        f"UNION ALL SELECT {_SUPERVISOR_TASK}, id, contract_id, is_supervisor, daemon_id FROM {tasks} "
        f"WHERE contract_id = %(contract)s AND is_supervisor "
        f"UNION ALL SELECT {_NAMED_TASK}, id, contract_id, is_supervisor, daemon_id FROM {tasks} WHERE {named}"
    )


def save_references(contract_id: uuid.UUID, task_ids: Iterable[uuid.UUID]) -> SaveReferences:
    """Read the contract, its supervisor tasks and the named tasks in one statement (no lock taken)."""
    wanted = list(dict.fromkeys(task_ids))
    if connection.vendor == "postgresql":
        params = {"contract": contract_id, "tasks": wanted}
    else:
        params = {"contract": contract_id.hex, "tasks": json.dumps([t.hex for t in wanted])}
    with hot_cursor() as cursor:
        cursor.execute(_sql(connection.vendor), params)
        rows = cursor.fetchall()
    exists = False
    daemons: list[uuid.UUID | None] = []
    tasks: dict[uuid.UUID, tuple[uuid.UUID, bool]] = {}
    for kind, row_id, row_contract, is_supervisor, daemon_id in rows:
        if kind == _CONTRACT:
            exists = True
        elif kind == _SUPERVISOR_TASK:
            daemons.append(column_uuid(daemon_id))
        else:
            tasks[column_uuid(row_id)] = (column_uuid(row_contract), bool(is_supervisor))
    return SaveReferences(exists, tuple(daemons), tasks)
