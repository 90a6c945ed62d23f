"""Can a supervisor's saved state be trusted? The decision table of DESIGN.md, step 2.

Every finding is one string that starts with the field it is about and names
the offending value, so an operator reading the restoration log or the
``validate_supervisors`` output knows what to fix. The most severe finding
decides the recovery action.

The checks are pure functions over the state's fields and a ``ValidationWorld``
(the contract and the tasks the state refers to). The world is loaded once per
batch by ``load_worlds`` so that validating 500 supervisors costs the same few
queries as validating one; ``validate_supervisor_state(supervisor)`` loads it
for one supervisor when the caller has not.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import IntegerField, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL

from supervisors.enums import (
    RECOVERY_SEVERITY,
    STATES_NEEDING_ERROR,
    ContractStatus,
    RecoveryAction,
    SupervisorStatus,
)
from supervisors.models import Contract, QuestionAnswer, SupervisorState, Task
from supervisors.validators import clean_pending_question, validate_conversation_history

from .hot_cursor import hot_cursor

#: How many offending ids one issue string lists before it summarises the rest.
MAX_IDS_PER_ISSUE = 10


@dataclass
class StateValidationResult:
    """The seed's StateValidationResult, plus the warnings that do not change the action."""

    is_valid: bool
    issues: list[str]
    recovery_action: RecoveryAction
    warnings: list[str] = field(default_factory=list)

    def as_dict(self, *, camel: bool = False) -> dict[str, Any]:
        """The seed's shape (its struct has no camelCase renaming), with ``warnings`` added.

        ``camel=True`` gives ``isValid``/``recoveryAction`` for surfaces whose
        other objects are camelCase (the commands' JSON, possibly the API).
        """
        return {
            "isValid" if camel else "is_valid": self.is_valid,
            "issues": list(self.issues),
            "recoveryAction" if camel else "recovery_action": str(self.recovery_action),
            "warnings": list(self.warnings),
        }


class TaskFacts(NamedTuple):
    """What restoration needs to know of a task: a tuple, not a model instance.

    A batch of 500 supervisors with 20 tasks each reads 10,000 tasks; building
    model instances for them was a third of a batch restoration's time.
    """

    id: uuid.UUID
    contract_id: uuid.UUID
    daemon_id: uuid.UUID | None
    name: str
    status: str
    is_supervisor: bool


class AnswerFacts(NamedTuple):
    """A human's answer to one of the supervisor's questions, as restoration needs it."""

    question_id: str
    question: Any
    answer: str
    answered_at: datetime
    answered_by: str | None
    acknowledged: bool

    def as_wire(self) -> dict[str, Any]:
        """The resume body's ``pendingAnswers`` item."""
        return {
            "questionId": self.question_id,
            "question": self.question,
            "answer": self.answer,
            "answeredAt": self.answered_at.isoformat(),
            "answeredBy": self.answered_by,
        }


@dataclass(frozen=True)
class ValidationWorld:
    """What the saved state is checked against: makima's contract and tasks as they are now.

    ``answers``: by question id, this supervisor's answers not yet acknowledged
    and any answer to a question its state carries as pending (loaded per
    batch); a pending question that has one can no longer be answered.
    """

    contract: Contract | None
    supervisor_task: TaskFacts | None
    tasks: Mapping[uuid.UUID, TaskFacts]
    answers: dict[str, AnswerFacts] = field(default_factory=dict)


# --- loading the world ---------------------------------------------------------------------------


def _referenced_task_ids(supervisor: SupervisorState) -> set[uuid.UUID]:
    ids = {supervisor.task_id}
    for name in ("spawned_task_ids", "pending_task_ids"):
        value = getattr(supervisor, name, None) or []
        ids.update(v for v in value if isinstance(v, uuid.UUID))
    return ids


def load_tasks(task_ids: Iterable[uuid.UUID], *, contract_ids: Iterable[uuid.UUID] = ()) -> dict[uuid.UUID, TaskFacts]:
    """The tasks with these ids, found through their contracts first.

    Fetching by contract keeps the statement's size independent of how many
    tasks each supervisor spawned (SQLite limits the number of parameters);
    only ids not found that way (tasks of other contracts, or missing ones) are
    looked up by id, which is normally none.
    """
    wanted = set(task_ids)
    found: dict[uuid.UUID, TaskFacts] = {}
    contract_ids = set(contract_ids)
    if contract_ids:
        for row in _tasks_of_contracts(contract_ids):
            if row[0] in wanted:
                found[row[0]] = TaskFacts._make(row)
    missing = wanted - found.keys()
    if missing:
        for row in Task.objects.filter(id__in=missing).values_list(*TaskFacts._fields):
            found[row[0]] = TaskFacts._make(row)
    return found


#: PostgreSQL: the tasks of some contracts, as the ORM would read them (Task's ordering), in one fixed statement.
_TASKS_OF_CONTRACTS_SQL = (
    f"SELECT {', '.join(TaskFacts._fields)} FROM {Task._meta.db_table} WHERE contract_id = ANY(%s) ORDER BY created_at"
)


def _tasks_of_contracts(contract_ids: set[uuid.UUID]) -> Iterable[tuple[Any, ...]]:
    """Rows of TaskFacts' fields; on PostgreSQL prepared once on the hot cursor (every resume reads them)."""
    if connection.vendor != "postgresql":
        return Task.objects.filter(contract_id__in=contract_ids).values_list(*TaskFacts._fields)
    with hot_cursor() as cursor:
        cursor.execute(_TASKS_OF_CONTRACTS_SQL, [list(contract_ids)])
        return cursor.fetchall()


def load_worlds(
    supervisors: Sequence[SupervisorState], *, unacknowledged: bool = False
) -> dict[uuid.UUID, ValidationWorld]:
    """The validation world of each supervisor (by supervisor id), in at most four queries.

    Answers are read for the pending questions (no query when there are none);
    ``unacknowledged`` also reads every answer not yet acknowledged, which a
    restoration delivers.

    The supervisors' contracts are expected to be loaded already
    (``select_related("contract")``); a contract that is missing shows as None.
    """
    tasks = load_tasks(
        set().union(*(_referenced_task_ids(s) for s in supervisors)) if supervisors else set(),
        contract_ids={s.contract_id for s in supervisors},
    )
    asked = {s.id: question_ids(getattr(s, "pending_questions", None)) for s in supervisors}
    answers = load_answers(asked if unacknowledged else {k: v for k, v in asked.items() if v}, unacknowledged)
    worlds = {}
    for supervisor in supervisors:
        worlds[supervisor.id] = ValidationWorld(
            contract=_loaded_contract(supervisor),
            supervisor_task=tasks.get(supervisor.task_id),
            tasks=tasks,
            answers=answers.get(supervisor.id, {}),
        )
    return worlds


def question_ids(pending_questions: Any) -> set[uuid.UUID]:
    """The ids of the well-formed-enough questions in a pending_questions value (others are skipped)."""
    ids = set()
    for item in pending_questions if isinstance(pending_questions, list) else []:
        try:
            ids.add(uuid.UUID(str(item.get("id"))))
        except (AttributeError, ValueError):
            continue
    return ids


def load_answers(
    wanted: Mapping[uuid.UUID, set[uuid.UUID]], unacknowledged: bool = True
) -> dict[uuid.UUID, dict[str, AnswerFacts]]:
    """By supervisor, by question id: answers to the wanted questions, and (``unacknowledged``) every one
    not yet acknowledged.

    One query for a whole batch (none when there is nothing to look for).
    """
    asked = set().union(*wanted.values()) if wanted else set()
    if not wanted or not (asked or unacknowledged):
        return {}
    condition = Q(question_id__in=asked)
    if unacknowledged:
        condition |= Q(acknowledged_at__isnull=True)
    rows = (
        QuestionAnswer.objects.filter(condition, supervisor_id__in=list(wanted))
        .order_by("answered_at", "id")
        .values_list(
            "supervisor_id",
            "question_id",
            "question",
            "answer",
            "answered_at",
            "answered_by_user__username",
            "answered_by_daemon__name",
            "acknowledged_at",
        )
    )
    found: dict[uuid.UUID, dict[str, AnswerFacts]] = {}
    for supervisor_id, question_id, question, answer, at, user, daemon, acked in rows:
        facts = AnswerFacts(str(question_id), question, answer, at, user or daemon, acked is not None)
        found.setdefault(supervisor_id, {})[facts.question_id] = facts
    return found


def _loaded_contract(supervisor: SupervisorState) -> Contract | None:
    try:
        return supervisor.contract
    except Contract.DoesNotExist:
        return None


# --- the conversation, checked by the database ---------------------------------------------------
#
# A conversation can weigh megabytes. Loading 200 of them to check that each is
# an array of messages with a role would make a batch's memory and time grow
# with the conversations' size; the database answers the same question and only
# two small values travel: the JSON kind of the value (as Python names it) and
# the index of the first message without a role. ``conversation_problem`` turns
# them into the very message ``validate_conversation_history`` gives.

_PG_KIND = """CASE {type} WHEN 'array' THEN 'list' WHEN 'object' THEN 'dict' WHEN 'string' THEN 'str'
    WHEN 'boolean' THEN 'bool' WHEN 'null' THEN 'NoneType'
    WHEN 'number' THEN CASE WHEN {col}::text ~ '^-?[0-9]+$' THEN 'int' ELSE 'float' END END"""
_PG_BAD_INDEX = """CASE WHEN {type} = 'array' THEN (
    SELECT min(m.i) - 1 FROM jsonb_array_elements({col}) WITH ORDINALITY AS m(v, i)
    WHERE jsonb_typeof(m.v) <> 'object' OR jsonb_typeof(m.v -> 'role') IS DISTINCT FROM 'string'
       OR m.v ->> 'role' = '') END"""
_SQLITE_KIND = """CASE {type} WHEN 'array' THEN 'list' WHEN 'object' THEN 'dict' WHEN 'text' THEN 'str'
    WHEN 'true' THEN 'bool' WHEN 'false' THEN 'bool' WHEN 'null' THEN 'NoneType'
    WHEN 'integer' THEN 'int' WHEN 'real' THEN 'float' END"""
_SQLITE_BAD_INDEX = """CASE WHEN {type} = 'array' THEN (
    SELECT min(CAST(m.key AS INTEGER)) FROM json_each({col}) AS m
    WHERE m.type <> 'object' OR json_type(m.value, '$.role') IS NOT 'text'
       OR json_extract(m.value, '$.role') = '') END"""


def json_type_sql(col: str) -> str:
    """The SQL for the JSON type of ``col``, as the database names it ('array', 'object', ...)."""
    return f"jsonb_typeof({col})" if connection.vendor == "postgresql" else f"json_type({col})"


def conversation_checks_sql(col: str, json_type: str | None = None) -> tuple[str, str]:
    """The two checks as SQL expressions over the conversation column ``col``: its kind, its first bad message.

    ``json_type``: an expression already holding ``json_type_sql(col)`` (each
    use of a large value in PostgreSQL decompresses it again: a query that
    needs the type several times computes it once and passes it in).
    """
    kind, bad = (_PG_KIND, _PG_BAD_INDEX) if connection.vendor == "postgresql" else (_SQLITE_KIND, _SQLITE_BAD_INDEX)
    json_type = json_type or json_type_sql(col)
    return kind.format(col=col, type=json_type), bad.format(col=col, type=json_type)


def conversation_checks(queryset: QuerySet, column: str) -> QuerySet:
    """``queryset`` without the conversation column, annotated with ``history_kind`` and ``history_bad_index``."""
    model = queryset.model
    kind, bad = conversation_checks_sql(
        f"{connection.ops.quote_name(model._meta.db_table)}.{connection.ops.quote_name(column)}"
    )
    return queryset.defer(column).annotate(
        history_kind=RawSQL(kind, [], output_field=TextField()),
        history_bad_index=RawSQL(bad, [], output_field=IntegerField()),
    )


def conversation_problem(kind: str | None, bad_index: int | None) -> str | None:
    """The message ``validate_conversation_history`` would give, from the database's two answers."""
    if kind != "list":
        return f"Conversation history must be a JSON array of messages, not {kind}."
    if bad_index is not None:
        return f"Conversation history message {bad_index} must be an object with a non-empty string 'role'."
    return None


# --- the checks ----------------------------------------------------------------------------------


def _ids_text(ids: Sequence[uuid.UUID]) -> str:
    shown = ", ".join(str(i) for i in ids[:MAX_IDS_PER_ISSUE])
    if len(ids) > MAX_IDS_PER_ISSUE:
        shown += f" (and {len(ids) - MAX_IDS_PER_ISSUE} more)"
    return shown


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def task_findings(
    *,
    contract_id: uuid.UUID,
    spawned_task_ids: Any,
    pending_task_ids: Any,
    tasks: Mapping[uuid.UUID, TaskFacts],
) -> list[str]:
    """Issues of the task lists: pending but never spawned, spawned but missing or someone else's."""
    spawned = list(spawned_task_ids or [])
    pending = list(pending_task_ids or [])
    issues = []
    spawned_set = set(spawned)
    never_spawned = [t for t in dict.fromkeys(pending) if t not in spawned_set]
    if never_spawned:
        issues.append(
            f"pending_task_ids: {_plural(len(never_spawned), 'task was', 'tasks were')} never spawned "
            f"(not in spawned_task_ids): {_ids_text(never_spawned)}"
        )
    unique_spawned = list(dict.fromkeys(spawned))
    missing = [t for t in unique_spawned if t not in tasks]
    if missing:
        issues.append(
            f"spawned_task_ids: {_plural(len(missing), 'task does', 'tasks do')} not exist: {_ids_text(missing)}"
        )
    foreign = [t for t in unique_spawned if t in tasks and tasks[t].contract_id != contract_id]
    if foreign:
        owners = ", ".join(sorted({str(tasks[t].contract_id) for t in foreign}))
        issues.append(
            f"spawned_task_ids: {_plural(len(foreign), 'task belongs', 'tasks belong')} to another contract "
            f"({owners}), not {contract_id}: {_ids_text(foreign)}"
        )
    return issues


def question_findings(pending_questions: Any) -> list[str]:
    """Every malformed or duplicated pending question, not only the first."""
    if not isinstance(pending_questions, list):
        return [f"pending_questions: expected a JSON array of questions, got {type(pending_questions).__name__}"]
    issues = []
    seen: set[str] = set()
    for index, item in enumerate(pending_questions):
        try:
            question = clean_pending_question(item)
        except ValidationError as exc:
            detail = (
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
                if hasattr(exc, "error_dict")
                else "; ".join(exc.messages)
            )
            issues.append(f"pending_questions[{index}]: malformed question: {detail}")
            continue
        if question["id"] in seen:
            issues.append(f"pending_questions[{index}]: question id {question['id']} appears more than once")
        seen.add(question["id"])
    return issues


def well_formed_questions(pending_questions: Any) -> list[dict[str, Any]]:
    """The questions a human can still answer, canonical and without duplicates (for StartFresh)."""
    if not isinstance(pending_questions, list):
        return []
    result: dict[str, dict[str, Any]] = {}
    for item in pending_questions:
        try:
            question = clean_pending_question(item)
        except ValidationError:
            continue
        result.setdefault(question["id"], question)
    return list(result.values())


def state_findings(
    fields: Mapping[str, Any], world: ValidationWorld, *, contract_id: uuid.UUID
) -> tuple[list[str], list[str]]:
    """(issues that call for a checkpoint, warnings) of one set of state fields.

    Used for the live row and for each checkpoint alike, so a checkpoint is
    only applied when it passes the same rules.
    """
    issues: list[str] = []
    warnings: list[str] = []
    state = fields.get("state")
    if state not in SupervisorStatus.values:
        issues.append(f"state: {state!r} is not a known supervisor state ({', '.join(SupervisorStatus.values)})")
    progress = fields.get("progress")
    if isinstance(progress, bool) or not isinstance(progress, int) or not 0 <= progress <= 100:
        issues.append(f"progress: {progress!r} is outside 0..100")
    if "conversation_history" in fields:
        try:
            validate_conversation_history(fields["conversation_history"])
        except ValidationError as exc:
            issues.append(f"conversation_history: {' '.join(exc.messages)}")
    elif fields.get("conversation_problem"):  # checked by the database (conversation_checks)
        issues.append(f"conversation_history: {fields['conversation_problem']}")
    questions = fields.get("pending_questions")
    issues.extend(question_findings(questions))
    pending = list(fields.get("pending_task_ids") or [])
    if state == SupervisorStatus.WAITING_FOR_USER and not (isinstance(questions, list) and questions):
        issues.append("state: 'waiting_for_user' with no pending question (pending_questions is empty)")
    if state == SupervisorStatus.WAITING_FOR_TASKS and not pending:
        issues.append("state: 'waiting_for_tasks' with nothing pending (pending_task_ids is empty)")
    issues.extend(
        task_findings(
            contract_id=contract_id,
            spawned_task_ids=fields.get("spawned_task_ids"),
            pending_task_ids=pending,
            tasks=world.tasks,
        )
    )
    contract = world.contract
    phase = fields.get("phase")
    if contract is not None and phase != contract.phase:
        warnings.append(f"phase: {phase!r} differs from the contract's phase {contract.phase!r}")
    if state in STATES_NEEDING_ERROR and not (fields.get("error_message") or "").strip():
        warnings.append(f"error_message: state {state!r} has no error message")
    warnings.extend(answered_findings(questions, world.answers))
    return issues, warnings


def answered_findings(pending_questions: Any, answers: Mapping[str, AnswerFacts]) -> list[str]:
    """Pending questions that already have an answer: a warning, since restoration repairs it.

    Such a question can never be answered again (one answer per question);
    restoring drops it from the pending questions and delivers its answer.
    """
    found = []
    for question_id in sorted(str(q) for q in question_ids(pending_questions)):
        if question_id in answers:
            found.append(f"pending_questions: pending question already answered: {question_id}")
    return found


def world_findings(supervisor: SupervisorState, world: ValidationWorld) -> list[str]:
    """Issues no checkpoint can fix: the contract or the supervisor's own task is not there."""
    issues = []
    contract = world.contract
    if contract is None:
        issues.append(f"contract_id: contract {supervisor.contract_id} does not exist")
    elif contract.status == ContractStatus.ARCHIVED:
        issues.append(f"contract.status: contract {contract.id} is archived")
    elif contract.status == ContractStatus.COMPLETED and supervisor.state != SupervisorStatus.COMPLETED:
        issues.append(
            f"contract.status: contract {contract.id} is completed while the supervisor is {supervisor.state!r}"
        )
    elif contract.status not in ContractStatus.values:
        issues.append(f"contract.status: {contract.status!r} is not a known contract status")
    task = world.supervisor_task
    if task is None:
        issues.append(f"task_id: supervisor task {supervisor.task_id} does not exist")
    elif task.contract_id != supervisor.contract_id:
        issues.append(
            f"task_id: supervisor task {task.id} belongs to contract {task.contract_id}, not {supervisor.contract_id}"
        )
    return issues


def supervisor_fields(supervisor: SupervisorState) -> dict[str, Any]:
    """The validated fields of a row, in the shape ``state_findings`` reads.

    A row read through ``conversation_checks`` has no conversation loaded: its
    database-computed problem (or None) stands in for it.
    """
    fields = {
        "state": supervisor.state,
        "phase": supervisor.phase,
        "progress": supervisor.progress,
        "current_activity": supervisor.current_activity,
        "error_message": supervisor.error_message,
        "pending_questions": supervisor.pending_questions,
        "pending_task_ids": supervisor.pending_task_ids,
        "spawned_task_ids": supervisor.spawned_task_ids,
    }
    if conversation_loaded(supervisor) or not hasattr(supervisor, "history_kind"):
        fields["conversation_history"] = supervisor.conversation_history  # loads a deferred one
    else:
        fields["conversation_problem"] = conversation_problem(supervisor.history_kind, supervisor.history_bad_index)
    return fields


def conversation_loaded(supervisor: SupervisorState) -> bool:
    return "conversation_history" in supervisor.__dict__


def validate_with_world(supervisor: SupervisorState, world: ValidationWorld) -> StateValidationResult:
    """``validate_supervisor_state`` with the world already loaded (the batch path)."""
    manual = world_findings(supervisor, world)
    issues, warnings = state_findings(supervisor_fields(supervisor), world, contract_id=supervisor.contract_id)
    if manual:
        action = RecoveryAction.MANUAL_INTERVENTION
    elif issues:
        action = RecoveryAction.USE_CHECKPOINT
    else:
        action = RecoveryAction.PROCEED
    return StateValidationResult(
        is_valid=not (manual or issues), issues=manual + issues, recovery_action=action, warnings=warnings
    )


def most_severe(*actions: RecoveryAction) -> RecoveryAction:
    return max(actions, key=lambda a: RECOVERY_SEVERITY[a])


def validate_spawned_tasks(
    supervisor: SupervisorState, *, tasks: Mapping[uuid.UUID, TaskFacts] | None = None
) -> list[str]:
    """The seed's task consistency check: issues with pending and spawned tasks (empty when consistent)."""
    if tasks is None:
        tasks = load_tasks(_referenced_task_ids(supervisor), contract_ids=[supervisor.contract_id])
    return task_findings(
        contract_id=supervisor.contract_id,
        spawned_task_ids=supervisor.spawned_task_ids,
        pending_task_ids=supervisor.pending_task_ids,
        tasks=tasks,
    )


def validate_supervisor_state(
    supervisor: SupervisorState, *, world: ValidationWorld | None = None
) -> StateValidationResult:
    """Check a supervisor's saved state against itself and the world; changes nothing.

    Decision table (DESIGN.md): the contract or the supervisor task missing,
    archived, or completed under a live supervisor calls for ManualIntervention;
    an inconsistent state calls for UseCheckpoint; a phase that differs from the
    contract's or a failed/blocked state without an error message is only a
    warning.
    """
    if world is None:
        world = load_worlds([supervisor])[supervisor.id]
    return validate_with_world(supervisor, world)
