"""Boundary checks and row locking shared by the persistence services.

Every service parses and validates all of its input here before it opens a
transaction, so a refused request has written nothing; then it takes the
supervisor's row lock through :func:`lock_supervisor`, so read-modify-writes
never interleave.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models.expressions import RawSQL
from django.db.transaction import TransactionManagementError

from supervisors.fields import parse_uuid_list
from supervisors.models import QuestionAnswer, SupervisorState, Task
from supervisors.validators import (
    MAX_PENDING_QUESTIONS,
    MAX_REPORTED_ERRORS,
    MAX_TASK_IDS,
    capped,
    clean_pending_question,
    validate_conversation_history,
    validate_conversation_length,
    validate_json_depth,
    validate_list_length,
    validate_no_nul,
    validate_no_surrogate,
    validate_optional_text,
    validate_phase,
    validate_progress,
    validate_state,
    validate_storable_json,
)

from .errors import BrokenReference, Conflict, InvalidInput, NotFound
from .hot_cursor import hot_cursor
from .ownership import UNFENCED, Fence, check_fence, not_visible


def messages_of(exc: ValidationError) -> list[str]:
    return list(exc.messages)


def check(field: str, validator: Callable[[Any], None], value: Any, errors: dict[str, list[str]]) -> None:
    """Run one validator, collecting its messages under ``field`` instead of stopping at the first."""
    try:
        validator(value)
    except ValidationError as exc:
        errors.setdefault(field, []).extend(messages_of(exc))


def raise_if(errors: dict[str, list[str]]) -> None:
    if errors:
        summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        raise InvalidInput(f"Invalid input. {summary}", fields=errors)


def raise_if_broken(references: dict[str, list[str]]) -> None:
    """BrokenReference (409 ``bad_reference``) naming each field whose ids do not fit the stored world."""
    if references:
        summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in references.items())
        raise BrokenReference(f"The request names tasks that do not fit. {summary}", fields=references)


def some_of(items: list[str]) -> str:
    """The first MAX_REPORTED_ERRORS of ``items``, comma-separated, then how many more there are."""
    shown = ", ".join(items[:MAX_REPORTED_ERRORS])
    return shown + (f" and {len(items) - MAX_REPORTED_ERRORS} more" if len(items) > MAX_REPORTED_ERRORS else "")


def parse_uuid(value: Any, field: str) -> uuid.UUID:
    """A UUID or its string form; anything else is InvalidInput naming ``field``."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value)) if isinstance(value, str) else uuid.UUID(value)  # type: ignore[arg-type]
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(
            f"{value!r} is not a valid UUID.", fields={field: [f"{value!r} is not a valid UUID."]}
        ) from None


def parse_id_list(value: Any, field: str, errors: dict[str, list[str]]) -> list[uuid.UUID]:
    """A list of task ids, de-duplicated in first-seen order (a set with the order the agent gave)."""
    try:
        validate_list_length(value, MAX_TASK_IDS)
        ids = parse_uuid_list(value)
    except ValidationError as exc:
        errors.setdefault(field, []).extend(messages_of(exc))
        return []
    return list(dict.fromkeys(ids))


def check_task_ids(
    contract_id: uuid.UUID,
    ids_by_field: dict[str, Iterable[uuid.UUID]],
    errors: dict[str, list[str]],
    *,
    owners: dict[uuid.UUID, uuid.UUID] | None = None,
) -> None:
    """Every id names an existing task of this contract (one query for all fields).

    ``owners``: task -> contract for (at least) these ids, already read by the caller: no query then.
    """
    wanted = {t for ids in ids_by_field.values() for t in ids}
    if not wanted:
        return
    if owners is None:
        owners = dict(Task.objects.filter(id__in=wanted).values_list("id", "contract_id"))
    for field, ids in ids_by_field.items():
        problems = []
        for task_id in ids:
            owner = owners.get(task_id)
            if owner is None:
                problems.append(f"Task {task_id} does not exist.")
            elif owner != contract_id:
                problems.append(f"Task {task_id} belongs to another contract.")
        if problems:
            errors.setdefault(field, []).extend(capped(problems))


def clean_questions(value: Any, errors: dict[str, list[str]], field: str = "pending_questions") -> list[dict[str, Any]]:
    """A list of PendingQuestions in canonical form with distinct ids."""
    if not isinstance(value, list):
        errors.setdefault(field, []).append("Pending questions must be a JSON array.")
        return []
    if len(value) > MAX_PENDING_QUESTIONS:
        check(field, lambda v: validate_list_length(v, MAX_PENDING_QUESTIONS), value, errors)
        return []
    cleaned: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        try:
            question = clean_pending_question(item)
        except ValidationError as exc:
            problems.append(f"Question {index} is malformed: {'; '.join(exc.messages)}")
            continue
        if question["id"] in seen:
            problems.append(f"Question id {question['id']} appears more than once.")
            continue
        seen.add(question["id"])
        cleaned.append(question)
    if problems:
        errors.setdefault(field, []).extend(capped(problems))
    return cleaned


def clean_scalar_fields(values: dict[str, Any], errors: dict[str, list[str]]) -> None:
    """Check the plain columns that are present in ``values``."""
    if "state" in values:
        check("state", validate_state, values["state"], errors)
    if "progress" in values:
        check("progress", validate_progress, values["progress"], errors)
    if "phase" in values:
        check("phase", validate_phase, values["phase"], errors)
        check("phase", validate_no_nul, values["phase"], errors)
        check("phase", validate_no_surrogate, values["phase"], errors)
    for field in ("current_activity", "error_message"):
        if field in values:
            check(field, validate_optional_text, values[field], errors)
            check(field, validate_no_nul, values[field], errors)
            check(field, validate_no_surrogate, values[field], errors)
    if "conversation_history" in values:
        check("conversation_history", validate_conversation_length, values["conversation_history"], errors)
    if "conversation_history" in values and "conversation_history" not in errors:  # no walk over a refused one
        check("conversation_history", validate_conversation_history, values["conversation_history"], errors)
        check("conversation_history", validate_storable_json, values["conversation_history"], errors)
        check("conversation_history", validate_json_depth, values["conversation_history"], errors)
    if "pending_questions" in values:
        check("pending_questions", validate_storable_json, values["pending_questions"], errors)
        check("pending_questions", validate_json_depth, values["pending_questions"], errors)


def lock_supervisor(
    contract_id: uuid.UUID,
    *,
    with_history: bool = False,
    defer_task_ids: bool = False,
    annotations: dict[str, Any] | None = None,
    fence: Fence = UNFENCED,
) -> SupervisorState:
    """Load the contract's supervisor holding its row lock until the transaction ends.

    ``fence`` says who writes: a daemon that does not own the supervisor gets
    NotFound, a former owner or an older epoch Conflict ``superseded``; the
    check runs after the lock is taken, so it sees any takeover that committed
    meanwhile (:func:`~supervisors.services.ownership.check_fence`).

    Must run inside ``transaction.atomic()``. The conversation history is left
    in the database unless asked for: most writers never need it and it can
    weigh megabytes; ``defer_task_ids`` leaves the task id lists there too,
    for writers that change them in SQL. PostgreSQL takes ``FOR NO KEY UPDATE``: it serialises
    writers of the row but lets other transactions insert checkpoints and
    answers that refer to it.
    """
    supervisor = select_locked(
        contract_id, with_history=with_history, defer_task_ids=defer_task_ids, annotations=annotations
    )
    if supervisor is None:
        if fence.daemon_id is not None:
            raise not_visible(contract_id)
        raise NotFound(f"Contract {contract_id} has no supervisor.", fields={"contract_id": ["No supervisor."]})
    check_fence(supervisor, fence)
    return supervisor


def select_locked(
    contract_id: uuid.UUID,
    *,
    with_history: bool = False,
    defer_task_ids: bool = False,
    annotations: dict[str, Any] | None = None,
) -> SupervisorState | None:
    """The contract's supervisor row, locked until the transaction ends (None: no row); no fence checked.

    The read under :func:`lock_supervisor`, and the full save's (which creates a missing row). On
    PostgreSQL without ``annotations`` it is one fixed statement on the hot cursor (:func:`_locked_row`),
    otherwise the ORM's ``select_for_update``. Either way the row's version comes with it (``row_xmin``).
    """
    if connection.vendor == "postgresql" and not annotations:
        return _locked_row(contract_id, with_history=with_history, defer_task_ids=defer_task_ids)
    qs = SupervisorState.objects.select_for_update(no_key=connection.features.has_select_for_no_key_update)
    if not with_history:
        qs = qs.defer("conversation_history")
    if defer_task_ids:
        qs = qs.defer("spawned_task_ids", "pending_task_ids")
    qs = qs.annotate(**(annotations or {}), **row_version_annotation())
    return qs.filter(contract_id=contract_id).first()


@dataclass(frozen=True)
class _LockingSelect:
    sql: str
    attnames: tuple[str, ...]
    converters: tuple[tuple[tuple[Callable[..., Any], ...], Any], ...]


@cache
def _locking_select(with_history: bool, defer_task_ids: bool) -> _LockingSelect:
    """PostgreSQL: the SELECT ... FOR NO KEY UPDATE the ORM would build for :func:`lock_supervisor`, built once.

    The loaded columns in the model's field order, the row's ``xmin`` last, and each column's converters
    as Django's compiler applies them (the JSON columns are decoded by their fields).
    """
    deferred = set() if with_history else {"conversation_history"}
    if defer_task_ids:
        deferred |= {"spawned_task_ids", "pending_task_ids"}
    table = SupervisorState._meta.db_table
    fields = [f for f in SupervisorState._meta.concrete_fields if f.attname not in deferred]
    quote = connection.ops.quote_name
    columns = ", ".join(f"{quote(table)}.{quote(f.column)}" for f in fields)
    cols = [f.get_col(table) for f in fields]
    return _LockingSelect(
        sql=f"SELECT {columns}, {quote(table)}.xmin::text FROM {quote(table)} "
        f"WHERE {quote(table)}.{quote('contract_id')} = %s FOR NO KEY UPDATE",
        attnames=tuple(f.attname for f in fields),
        converters=tuple(
            (tuple(connection.ops.get_db_converters(col) + col.get_db_converters(connection)), col) for col in cols
        ),
    )


def _locked_row(contract_id: uuid.UUID, *, with_history: bool, defer_task_ids: bool) -> SupervisorState | None:
    """PostgreSQL: lock and load the row with one fixed statement on the hot cursor (every save point runs it).

    The instance is what the ORM's ``select_for_update().defer(...).annotate(row_xmin=...)`` would give:
    built by ``from_db`` from the converted columns, the deferred ones left in the database.
    """
    if connection.get_autocommit():
        raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
    select = _locking_select(with_history, defer_task_ids)
    with hot_cursor() as cursor:
        cursor.execute(
            select.sql,
            [SupervisorState._meta.get_field("contract").target_field.get_db_prep_value(contract_id, connection)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    values = []
    for value, (converters, col) in zip(row[:-1], select.converters, strict=True):
        for converter in converters:
            value = converter(value, col, connection)
        values.append(value)
    supervisor = SupervisorState.from_db(connection.alias, select.attnames, values)
    supervisor.row_xmin = row[-1]
    return supervisor


def row_version_annotation() -> dict[str, Any]:
    """PostgreSQL: the row's ``xmin``, which every UPDATE changes, makima's own writes included (the ETag)."""
    if connection.vendor != "postgresql":
        return {}
    return {"row_xmin": RawSQL(f"{connection.ops.quote_name(SupervisorState._meta.db_table)}.xmin::text", [])}


def refuse_answered_questions(supervisor: SupervisorState, questions: list[dict[str, Any]]) -> None:
    """A question that already has an answer cannot be pending again: it could never be answered (Conflict).

    Its answer waits in ``answers/`` (and in every resume) until the daemon
    acknowledges it; the daemon asks a new question with a new id instead.
    """
    ids = [q["id"] for q in questions if isinstance(q, dict) and "id" in q]
    if not ids:
        return
    answered = sorted(
        str(i)
        for i in QuestionAnswer.objects.filter(supervisor=supervisor, question_id__in=ids).values_list(
            "question_id", flat=True
        )
    )
    if answered:
        raise Conflict(
            f"Questions already answered cannot be pending again: {some_of(answered)}. "
            "Their answers are in answers/; ask a new question with a new id.",
            fields={"pending_questions": [f"Already answered: {some_of(answered)}."]},
            code="question_already_answered",
        )
