"""Appending to a conversation without sending, reading or parsing the rest of it (the delta form).

A daemon's conversation only grows between restorations, and it can weigh
megabytes: sending it whole at every save point made a save point cost the
size of the history (issue 12). The delta form carries only the new messages
and the length the daemon believes the stored history has. The service checks
that length under the supervisor's row lock and appends in SQL
(``conversation_history || new`` on PostgreSQL, ``json_insert`` on SQLite):
the history never travels to Python, and a daemon that missed an append gets
:class:`ConversationLengthMismatch` (409 with the stored length) and
resynchronises instead of corrupting the history.

The history stays in makima's ``conversation_history`` column, whole, at every
commit: makima's readers and writers see exactly what they saw before
(docs/persistence.md, "Appending to the conversation", says why no side table).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models.expressions import RawSQL

from supervisors.models import SupervisorState
from supervisors.validators import (
    max_conversation_messages,
    validate_conversation_history,
    validate_json_depth,
    validate_storable_json,
)

from .errors import Conflict, InvalidInput
from .inputs import check, lock_supervisor, parse_uuid, raise_if
from .ownership import UNFENCED, Fence

#: Largest expected length accepted (PostgreSQL's int4; far above any conversation limit).
MAX_EXPECTED_LENGTH = 2**31 - 1

#: The conflict code a daemon branches on: GET the state (or read ``conversationLength``) and resend.
LENGTH_MISMATCH = "conversation_length_mismatch"

_STATES = SupervisorState._meta.db_table


class ConversationLengthMismatch(Conflict):
    """The stored history does not have the length the daemon expected; ``current_length`` says what it has."""

    code = LENGTH_MISMATCH

    def __init__(self, message: str, *, current_length: int, fields: dict[str, list[str]] | None = None):
        super().__init__(message, fields=fields)
        self.current_length = current_length
        self.extra = {"conversationLength": current_length}


@dataclass(frozen=True)
class ConversationAppend:
    """New messages for the end of the history, and the length the sender believes it has now."""

    messages: list[dict[str, Any]]
    expected_length: int
    #: Where the append sat in the request ("": the body itself), so refusals name the field the client sent.
    field: str = ""


def clean_conversation_append(value: Any, field: str = "") -> ConversationAppend:
    """``{"expected_length": int, "messages": [...]}`` (or a ConversationAppend) checked; InvalidInput otherwise.

    The messages pass the same checks as a whole history sent by PUT (objects
    with a non-empty string ``role``, storable text, bounded nesting), at least
    one of them, no more than SUPERVISOR_MAX_CONVERSATION_MESSAGES; the length
    is a non-negative integer. Whether the stored history plus these stays
    within that limit is checked under the lock (:func:`refuse_wrong_length`).
    """
    if isinstance(value, ConversationAppend):
        field = value.field
        value = {"expected_length": value.expected_length, "messages": value.messages}
    if not isinstance(value, dict):
        raise InvalidInput("The append must be an object.", fields={field: ["Expected an object."]})
    prefix = f"{field}." if field else ""
    errors: dict[str, list[str]] = {}
    length = value.get("expected_length")
    if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= MAX_EXPECTED_LENGTH:
        errors[f"{prefix}expected_length"] = [f"Must be an integer from 0 to {MAX_EXPECTED_LENGTH}."]
    messages = value.get("messages")
    where = f"{prefix}messages"
    if not isinstance(messages, list) or not messages:
        errors[where] = ["Must be a non-empty JSON array of messages."]
    else:
        maximum = max_conversation_messages()
        if len(messages) > maximum:  # the sum with the stored length is checked under the lock
            errors[where] = [
                f"The history would hold more than {maximum} messages; "
                "keep the newest ones with a full save (or raise SUPERVISOR_MAX_CONVERSATION_MESSAGES)."
            ]
        else:
            check(where, validate_conversation_history, messages, errors)
            if where not in errors:
                check(where, validate_storable_json, messages, errors)
                check(where, validate_json_depth, messages, errors)
    raise_if(errors)
    return ConversationAppend(messages=messages, expected_length=length, field=field)


def length_annotation() -> dict[str, Any]:
    """The stored history's length (-1: not an array), read with the row lock: one pass over the column."""
    column = f"{connection.ops.quote_name(_STATES)}.conversation_history"
    if connection.vendor == "postgresql":
        sql = f"CASE WHEN jsonb_typeof({column}) = 'array' THEN jsonb_array_length({column}) ELSE -1 END"
    else:
        sql = f"CASE WHEN json_type({column}) = 'array' THEN json_array_length({column}) ELSE -1 END"
    return {"conversation_length": RawSQL(sql, [])}


def _sqlite_append_expression(count: int) -> str:
    # json_insert applies its path/value pairs left to right, so each '$[#]' is the end after the previous one.
    return "json_insert(conversation_history" + ", '$[#]', json(%s)" * count + ")"


def refuse_wrong_length(supervisor: SupervisorState, append: ConversationAppend) -> None:
    """Raise unless the locked history is an array of the expected length (a dry run checks this alone).

    ConversationLengthMismatch (409 ``conversation_length_mismatch``, with the
    stored length) when the lengths differ; Conflict when the stored history
    is not an array (makima wrote something else: only a full save repairs it);
    InvalidInput when the append would take it past SUPERVISOR_MAX_CONVERSATION_MESSAGES.
    """
    current = supervisor.conversation_length
    if current < 0:
        raise Conflict(
            "The stored conversation history is not a JSON array; save the whole history (PUT or PATCH).",
            fields={append.field or "expected_length": ["The stored history is not an array."]},
        )
    if current != append.expected_length:
        name = f"{append.field}.expected_length" if append.field else "expected_length"
        raise ConversationLengthMismatch(
            f"The conversation holds {current} messages, not {append.expected_length}: this daemon missed a "
            f"change. Read the history (or send the messages after the first {current}) and retry.",
            current_length=current,
            fields={name: [f"The conversation holds {current} messages."]},
        )
    maximum = max_conversation_messages()
    if current + len(append.messages) > maximum:
        raise InvalidInput(
            f"The history would hold more than {maximum} messages; keep the newest ones with a full save "
            "(or raise SUPERVISOR_MAX_CONVERSATION_MESSAGES).",
            fields={f"{append.field}.messages" if append.field else "messages": [f"At most {maximum} messages."]},
        )


def append_to_locked(supervisor: SupervisorState, append: ConversationAppend, *, stamp: bool = False) -> int:
    """Append under the row lock the caller holds; returns the history's new length.

    ``supervisor`` was loaded by :func:`lock_for_append` in this transaction.
    Raises as :func:`refuse_wrong_length`. Writes ``conversation_history`` in
    SQL, and with ``stamp`` also the write's ``last_activity`` and
    ``updated_at`` in the same statement (else the caller's own save stamps it).
    """
    from .state import stamp_write

    refuse_wrong_length(supervisor, append)
    pk = SupervisorState._meta.pk.get_db_prep_value(supervisor.pk, connection)
    stamped = {f: getattr(supervisor, f) for f in stamp_write(supervisor)} if stamp else {}
    sets = "".join(f", {column} = %s" for column in stamped)
    values = [SupervisorState._meta.get_field(f).get_db_prep_save(v, connection) for f, v in stamped.items()]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {_STATES} SET conversation_history = conversation_history || %s::jsonb{sets} WHERE id = %s",
                [json.dumps(append.messages, ensure_ascii=False), *values, pk],
            )
        else:
            texts = [json.dumps(m, ensure_ascii=False) for m in append.messages]
            cursor.execute(
                f"UPDATE {_STATES} SET conversation_history = {_sqlite_append_expression(len(texts))}{sets} "
                "WHERE id = %s",
                [*texts, *values, pk],
            )
    supervisor.conversation_length += len(append.messages)
    return supervisor.conversation_length


def lock_for_append(
    contract_id: uuid.UUID, append: ConversationAppend | None, *, fence: Fence, **options: Any
) -> SupervisorState:
    """:func:`~.inputs.lock_supervisor`, reading the history's length too when there is an append to check."""
    if append is not None:
        options["annotations"] = {**options.get("annotations", {}), **length_annotation()}
    return lock_supervisor(contract_id, fence=fence, **options)


@dataclass(frozen=True)
class Appended:
    """What an append wrote: the supervisor (without its history) and the history's new length."""

    supervisor: SupervisorState
    length: int


def append_conversation_messages(
    contract_id: uuid.UUID | str,
    append: ConversationAppend | dict[str, Any],
    *,
    expected_version: str | None = None,
    fence: Fence = UNFENCED,
) -> Appended:
    """Append messages to the supervisor's conversation, if it has the length the caller expects.

    Opens its own transaction. Validates first (InvalidInput, nothing
    written), then under the row lock: the fence (NotFound / Conflict
    ``superseded``), ``expected_version`` (PreconditionFailed), the length
    (ConversationLengthMismatch). One UPDATE appends in the database and
    stamps the write. Like a heartbeat it is not a save point and records no
    event: a daemon may append at every message, and a checkpoint would
    digest the whole history; the next save point's checkpoint and event hold
    the new messages (``messagesAppended`` when they came with it).
    """
    from .state import check_version, remember_row_version

    contract_uuid = parse_uuid(contract_id, "contract_id")
    cleaned = clean_conversation_append(append)
    with transaction.atomic():
        supervisor = lock_for_append(contract_uuid, cleaned, fence=fence)
        check_version(supervisor, expected_version)
        length = append_to_locked(supervisor, cleaned, stamp=True)
        remember_row_version(supervisor)
    return Appended(supervisor=supervisor, length=length)


def appended_details(append: ConversationAppend | None, length: int | None, details: dict[str, Any]) -> dict[str, Any]:
    """An event's details with the append's size and the history's new length, when there was an append."""
    if append is None:
        return details
    return {**details, "messagesAppended": len(append.messages), "conversationLength": length}


__all__ = [
    "LENGTH_MISMATCH",
    "Appended",
    "ConversationAppend",
    "ConversationLengthMismatch",
    "append_conversation_messages",
    "append_to_locked",
    "appended_details",
    "clean_conversation_append",
    "length_annotation",
    "lock_for_append",
    "refuse_wrong_length",
]
