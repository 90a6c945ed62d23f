"""Shape checks for the JSON that ``supervisor_states`` holds.

Used by model validation, the services and the API alike, so a question that
one surface refuses is refused by all of them with the same message.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime

from supervisors.enums import QuestionType

MAX_QUESTION_LENGTH = 10_000
#: ``QuestionType.values`` builds a new list at each access; every save point checks every pending question.
_QUESTION_TYPES = tuple(QuestionType.values)
MAX_CHOICES = 50
MAX_CHOICE_LENGTH = 1_000

# --- Size limits, one place for every surface (API, admin, services) ----------------
# A daemon's bug or a hostile client must not make the service store, or answer
# with, megabytes per field. The list limits are settings (operators with huge
# contracts may raise them); they are read once at start-up because the OpenAPI
# schema publishes them as maxItems.

#: current_activity and error_message, in characters (the heartbeat's limit too).
MAX_TEXT_LENGTH = 100_000
#: spawned_task_ids and pending_task_ids, each.
MAX_TASK_IDS: int = getattr(settings, "SUPERVISOR_MAX_TASK_IDS", 10_000)
#: pending_questions.
MAX_PENDING_QUESTIONS: int = getattr(settings, "SUPERVISOR_MAX_PENDING_QUESTIONS", 100)
#: A refusal names at most this many bad elements of one list: the error stays small
#: whatever the size of the request.
MAX_REPORTED_ERRORS = 20


#: Nesting of any JSON the service takes (request bodies, conversations, questions). Python's
#: json module recurses once per level: a conversation nested ~900 deep parsed, then failed to
#: be stored (RecursionError, a 500). Real conversations nest a few levels (tool arguments).
MAX_JSON_DEPTH = 100


def capped(messages: list[str], limit: int = MAX_REPORTED_ERRORS) -> list[str]:
    """The first ``limit`` messages, and one saying how many more were left out."""
    if len(messages) <= limit:
        return messages
    return [*messages[:limit], f"... and {len(messages) - limit} more errors like these (not listed)."]


def json_too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects in ``value`` nest deeper than ``limit``; iterative, so any depth is safe.

    Level by level, and most of the work at C speed: a container whose children
    are all scalars is settled by one ``set(map(type, ...))``, and empty
    containers count for their level without being visited. A body can hold
    millions of values; a Python step per value cost seconds (docs/persistence.md).
    """
    level = [value] if isinstance(value, (dict, list, tuple)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        deeper: list[Any] = []
        reached = False
        for node in level:
            children = list(node.values()) if isinstance(node, dict) else node
            kinds = set(map(type, children))
            if kinds.isdisjoint(_CONTAINERS) and not any(issubclass(k, (dict, list, tuple)) for k in kinds):
                continue
            containers = [c for c in children if isinstance(c, (dict, list, tuple))]
            reached = True
            deeper.extend(c for c in containers if c)
        if reached and not deeper and depth + 1 > limit:
            return True
        level = deeper
    return False


_CONTAINERS = frozenset({dict, list, tuple})


def validate_json_depth(value: Any) -> None:
    if json_too_deep(value):
        raise ValidationError(
            "JSON may nest arrays and objects at most %(max)s levels deep.",
            code="too_deep",
            params={"max": MAX_JSON_DEPTH},
        )


def validate_list_length(value: Any, maximum: int) -> None:
    """A list of at most ``maximum`` elements, checked before any element is looked at."""
    if isinstance(value, list) and len(value) > maximum:
        raise ValidationError(
            "At most %(max)s elements are allowed, not %(count)s.",
            code="too_many_items",
            params={"max": maximum, "count": len(value)},
        )


def validate_progress(value: Any) -> None:
    """Progress is a whole percentage, as the table's CHECK constraint demands."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValidationError(
            "Progress must be a whole number from 0 to 100, not %(value)r.",
            code="invalid_progress",
            params={"value": value},
        )


def validate_conversation_history(value: Any) -> None:
    """A conversation history is a JSON array of message objects, each with a string ``role``."""
    if not isinstance(value, list):
        raise ValidationError(
            "Conversation history must be a JSON array of messages, not %(kind)s.",
            code="invalid_history",
            params={"kind": type(value).__name__},
        )
    for index, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or not message["role"]:
            raise ValidationError(
                "Conversation history message %(index)s must be an object with a non-empty string 'role'.",
                code="invalid_message",
                params={"index": index},
            )


def max_conversation_messages() -> int:
    """SUPERVISOR_MAX_CONVERSATION_MESSAGES, read per call so an operator's change needs no schema rebuild."""
    return getattr(settings, "SUPERVISOR_MAX_CONVERSATION_MESSAGES", 50_000)


def validate_conversation_length(value: Any) -> None:
    """At most SUPERVISOR_MAX_CONVERSATION_MESSAGES messages, checked before any message is looked at.

    Separate from :func:`validate_conversation_history` on purpose: that one is
    also the restoration's judgement of a stored row (which makima itself may
    have written), while this bound applies to what this service accepts.
    """
    maximum = max_conversation_messages()
    if isinstance(value, list) and len(value) > maximum:
        raise ValidationError(
            "A conversation history may hold at most %(max)s messages, not %(count)s; "
            "keep the newest ones (or raise SUPERVISOR_MAX_CONVERSATION_MESSAGES).",
            code="too_many_messages",
            params={"max": maximum, "count": len(value)},
        )


def clean_pending_question(value: Any) -> dict[str, Any]:
    """Check one PendingQuestion and return it in its canonical camelCase form.

    ``choices`` defaults to ``[]`` and ``questionType`` to ``general``, as the
    seed's serde defaults do; ``id`` and ``askedAt`` are required.
    """
    if not isinstance(value, dict):
        raise ValidationError("A pending question must be a JSON object.", code="invalid_question")
    errors: dict[str, str] = {}
    try:
        question_id = str(uuid.UUID(str(value.get("id")))) if isinstance(value.get("id"), (str, uuid.UUID)) else None
    except ValueError:
        question_id = None
    if question_id is None:
        errors["id"] = f"{value.get('id')!r} is not a valid UUID."
    text = value.get("question")
    if not isinstance(text, str) or not text.strip():
        errors["question"] = "The question text must be a non-empty string."
    elif len(text) > MAX_QUESTION_LENGTH:
        errors["question"] = f"The question text is longer than {MAX_QUESTION_LENGTH} characters."
    choices = value.get("choices", [])
    if choices is None:
        choices = []
    if not isinstance(choices, list) or not all(isinstance(c, str) and c for c in choices):
        errors["choices"] = "Choices must be a list of non-empty strings."
    elif len(choices) > MAX_CHOICES or any(len(c) > MAX_CHOICE_LENGTH for c in choices):
        errors["choices"] = f"At most {MAX_CHOICES} choices of at most {MAX_CHOICE_LENGTH} characters each."
    context = value.get("context")
    if context is not None and not isinstance(context, str):
        errors["context"] = "Context must be a string or null."
    question_type = value.get("questionType", QuestionType.GENERAL)
    if question_type not in _QUESTION_TYPES:
        errors["questionType"] = f"{question_type!r} is not one of {', '.join(QuestionType.values)}."
    asked_at = value.get("askedAt")
    if parse_aware_datetime(asked_at) is None:
        errors["askedAt"] = f"{asked_at!r} is not an RFC 3339 timestamp with a time zone."
    if errors:
        raise ValidationError(errors)
    return {
        "id": question_id,
        "question": text,
        "choices": list(choices),
        "context": context,
        "questionType": question_type,
        "askedAt": asked_at,
    }


def validate_pending_questions(value: Any) -> None:
    """``pending_questions`` is a JSON array of well-formed questions with distinct ids."""
    if not isinstance(value, list):
        raise ValidationError("Pending questions must be a JSON array.", code="invalid_questions")
    validate_list_length(value, MAX_PENDING_QUESTIONS)
    seen: set[str] = set()
    for index, item in enumerate(value):
        try:
            question = clean_pending_question(item)
        except ValidationError as exc:
            raise ValidationError(
                "Pending question %(index)s is malformed: %(detail)s",
                code="invalid_question",
                params={"index": index, "detail": "; ".join(exc.messages)},
            ) from None
        if question["id"] in seen:
            raise ValidationError(
                "Pending question id %(id)s appears more than once.",
                code="duplicate_question",
                params={"id": question["id"]},
            )
        seen.add(question["id"])


# --- Service-boundary checks (persistence) -----------------------------------
# Used by the services before anything is written, and by the API and admin
# forms when they want the same message for the same mistake.

MAX_PHASE_LENGTH = 50


def validate_state(value: Any) -> None:
    """A supervisor state is one of the seed's nine values, spelled as stored."""
    from supervisors.enums import SupervisorStatus

    if value not in SupervisorStatus.values:
        raise ValidationError(
            "%(value)r is not a supervisor state; expected one of %(choices)s.",
            code="invalid_state",
            params={"value": value, "choices": ", ".join(SupervisorStatus.values)},
        )


def validate_phase(value: Any) -> None:
    """A phase is a non-empty name that fits makima's VARCHAR(50)."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_PHASE_LENGTH:
        raise ValidationError(
            "Phase must be a non-empty string of at most %(max)s characters, not %(value)r.",
            code="invalid_phase",
            params={"max": MAX_PHASE_LENGTH, "value": value},
        )


def validate_optional_text(value: Any) -> None:
    """Free text columns (current activity, error message) hold a string of bounded length, or nothing."""
    if value is not None and not isinstance(value, str):
        raise ValidationError(
            "Expected a string or null, not %(kind)s.", code="invalid_text", params={"kind": type(value).__name__}
        )
    if value is not None and len(value) > MAX_TEXT_LENGTH:
        raise ValidationError(
            "At most %(max)s characters are allowed, not %(length)s.",
            code="text_too_long",
            params={"max": MAX_TEXT_LENGTH, "length": len(value)},
        )


def contains_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (keys included) holds U+0000.

    PostgreSQL's text and jsonb cannot store it; refusing it at the boundary
    turns what would be a database error (a 500) into a clear 400. The search
    runs over the JSON text (C speed; megabytes of JSON hold millions of
    values); only a hit, which may be an escaped backslash, is confirmed by a
    walk.
    """
    if isinstance(value, str):
        return "\x00" in value
    text = as_json_text(value)
    if text is not None and "\\u0000" not in text:
        return False
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def as_json_text(value: Any) -> str | None:
    """``value`` as JSON text, non-ASCII kept as is (lone surrogates included); None if it is not plain JSON."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None


NUL_MESSAGE = "Text must not contain the NUL character (\\u0000)."


def validate_no_nul(value: Any) -> None:
    if contains_nul(value):
        raise ValidationError(NUL_MESSAGE, code="nul_character")


#: A UTF-16 surrogate code point on its own. JSON can carry one (``"\\ud800"`` is a valid escape), Python
#: keeps it in a str, but it is not Unicode: it cannot be encoded as UTF-8, so PostgreSQL's text and jsonb
#: cannot hold it (a database error) and SQLite would store bytes no reader can decode.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

SURROGATE_MESSAGE = "Text must not contain a lone UTF-16 surrogate (\\ud800 to \\udfff): it is not Unicode."


def has_surrogate(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def surrogate_path(value: Any) -> tuple[str | int, ...] | None:
    """Where a lone surrogate sits in ``value`` (keys and values, any depth), or None; iterative.

    The path names the containers down to the offending value; for a key it
    stops at the object holding the key, so the bad text is never echoed.
    """
    if isinstance(value, str):
        return () if has_surrogate(value) else None
    text = as_json_text(value)
    if text is not None and not has_surrogate(text):  # C speed; the walk below runs only on a hit
        return None
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if has_surrogate(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and has_surrogate(key):
                    return path
                stack.append((child, (*path, key)))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, (*path, index)) for index, child in enumerate(item))
    return None


def validate_no_surrogate(value: Any) -> None:
    """Refuse text that cannot be stored: a lone surrogate anywhere in ``value`` (keys included)."""
    if surrogate_path(value) is not None:
        raise ValidationError(SURROGATE_MESSAGE, code="surrogate_character")


def validate_storable_json(value: Any) -> None:
    """Free JSON that PostgreSQL can hold: no NUL, no lone surrogate, anywhere (keys included).

    One JSON encoding answers both questions at C speed; only a hit is walked.
    A conversation can hold millions of values, and each extra pass over them
    is CPU every write pays (docs/persistence.md, "The worst accepted body").
    """
    text = as_json_text(value)
    if text is not None and "\\u0000" not in text and not has_surrogate(text):
        return
    validate_no_nul(value)
    validate_no_surrogate(value)


def parse_aware_datetime(value: object) -> datetime | None:
    """An RFC 3339 time with a zone, or None for anything else.

    Django's ``parse_datetime`` raises for text that is well formed but
    impossible (30 February, hour 25), and makima writes ``askedAt`` itself:
    one such question must read as "no valid time", not crash every page and
    every restoration that looks at it.
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed
