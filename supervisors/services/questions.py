"""Questions a supervisor asks a human: ask, answer, withdraw, acknowledge.

Rules, in one place:

* A question keeps the id it was asked with (generated when the caller gives
  none). Asking again with the id of a pending question is idempotent: the
  same question comes back with ``created=False``; the same id with different
  content is a Conflict, and so is the id of a question already answered.
* Asking puts the supervisor in ``waiting_for_user`` (it is waiting for a
  human); a completed supervisor asks nothing (Conflict).
* Answering keeps a :class:`QuestionAnswer` (the question as asked, the
  answer, who answered, when) until the daemon acknowledges it, then keeps it
  marked acknowledged as history.
* Answering or withdrawing the last pending question of a supervisor in
  ``waiting_for_user`` moves it to ``waiting_for_tasks`` when it still waits
  on tasks, else to ``working``: the same rule the restoration uses to pick a
  resume state, so a supervisor never sits in ``waiting_for_user`` with no
  question.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from supervisors.enums import ActorKind, EventKind, SavePoint, SupervisorStatus
from supervisors.models import QuestionAnswer, SupervisorState
from supervisors.validators import SURROGATE_MESSAGE, clean_pending_question, contains_nul, surrogate_path

from .actors import Actor
from .conversation_append import (
    ConversationAppend,
    append_to_locked,
    appended_details,
    clean_conversation_append,
    lock_for_append,
)
from .errors import Conflict, InvalidInput, NotFound
from .events import actor_of, record_event, short
from .inputs import lock_supervisor, parse_uuid, raise_if
from .ownership import UNFENCED, Fence
from .signals import question_answered, question_asked, send_on_commit
from .state import finish_save_point, stamp_write

#: The parts of a question that make it "the same question" for an idempotent re-ask.
_IDENTITY = ("question", "choices", "context", "questionType")

MAX_ANSWER_LENGTH = 100_000

#: Error fields are snake_case like every service's; the API camel-cases them back.
_SNAKE = {"questionType": "question_type", "askedAt": "asked_at"}


def _state_after_last_question(supervisor: SupervisorState) -> str:
    if supervisor.state != SupervisorStatus.WAITING_FOR_USER or supervisor.pending_questions:
        return supervisor.state
    return SupervisorStatus.WAITING_FOR_TASKS if supervisor.pending_task_ids else SupervisorStatus.WORKING


def add_supervisor_pending_question(
    contract_id: uuid.UUID | str,
    question: dict[str, Any],
    *,
    fence: Fence = UNFENCED,
    actor: Actor | None = None,
    append: ConversationAppend | None = None,
) -> tuple[SupervisorState, dict[str, Any], bool]:
    """Add a question (camelCase PendingQuestion; ``id`` and ``askedAt`` optional) to the pending ones.

    Returns the supervisor, the question as stored, and whether it was added
    (False for an idempotent re-ask). Takes a ``question_asked`` checkpoint and
    sends ``question_asked`` after commit when it was added, and records a
    ``question_asked`` event (the question's id, type and text cut short).
    ``append``: messages for the conversation's end in the same transaction
    (:mod:`.conversation_append`); an idempotent re-ask writes nothing, so it
    appends nothing either (a retried request does not add its messages twice).
    """
    contract_uuid = parse_uuid(contract_id, "contract_id")
    if not isinstance(question, dict):
        raise InvalidInput("A question must be a JSON object.", fields={"question": ["Expected an object."]})
    given = dict(question)
    if given.get("id") is None:
        given["id"] = str(uuid.uuid4())
    if given.get("askedAt") is None:
        given["askedAt"] = timezone.now().isoformat()
    errors: dict[str, list[str]] = {}
    asked: dict[str, Any] = {}
    try:
        asked = clean_pending_question(given)
    except ValidationError as exc:
        errors = {_SNAKE.get(key, key): list(msgs) for key, msgs in exc.message_dict.items()}
    if contains_nul(given):
        errors.setdefault("question", []).append("Text must not contain the NUL character (\\u0000).")
    if surrogate_path(given) is not None:
        errors.setdefault("question", []).append(SURROGATE_MESSAGE)
    raise_if(errors)
    if append is not None:
        append = clean_conversation_append(append)

    with transaction.atomic():
        supervisor = lock_for_append(contract_uuid, append, fence=fence)
        if supervisor.state == SupervisorStatus.COMPLETED:
            raise Conflict("A completed supervisor cannot ask questions.", fields={"contract_id": ["Completed."]})
        for pending in supervisor.pending_questions:
            if pending.get("id") == asked["id"]:
                if any(pending.get(key) != asked.get(key) for key in _IDENTITY):
                    raise Conflict(
                        f"Question {asked['id']} is already pending with different content.",
                        fields={"question.id": ["Already pending with different content."]},
                    )
                return supervisor, pending, False
        if QuestionAnswer.objects.filter(supervisor=supervisor, question_id=asked["id"]).exists():
            raise Conflict(
                f"Question {asked['id']} was already answered; ask a new question with a new id.",
                fields={"question.id": ["Already answered."]},
            )
        length = append_to_locked(supervisor, append) if append is not None else None
        supervisor.pending_questions = [*supervisor.pending_questions, asked]
        changed = ["pending_questions"]
        if supervisor.state != SupervisorStatus.WAITING_FOR_USER:
            supervisor.state = SupervisorStatus.WAITING_FOR_USER
            changed.append("state")
        supervisor.save(update_fields=[*changed, *stamp_write(supervisor)])
        finish_save_point(supervisor, SavePoint.QUESTION_ASKED)
        record_event(
            supervisor.pk,
            EventKind.QUESTION_ASKED,
            actor=actor_of(actor, fence),
            details=appended_details(
                append,
                length,
                {
                    "questionId": asked["id"],
                    "questionType": asked.get("questionType"),
                    "question": short(asked.get("question")),
                },
            ),
        )
        send_on_commit(question_asked, contract_id=contract_uuid, supervisor_id=supervisor.pk, question=asked)
    return supervisor, asked, True


def save_state_on_question_asked(
    contract_id: uuid.UUID | str, question: dict[str, Any], *, fence: Fence = UNFENCED
) -> tuple[SupervisorState, dict[str, Any], bool]:
    """The seed's save point on a question asked: :func:`add_supervisor_pending_question`."""
    return add_supervisor_pending_question(contract_id, question, fence=fence)


def _take_pending(supervisor: SupervisorState, question_id: uuid.UUID) -> dict[str, Any]:
    """Remove a pending question from the locked supervisor; a clear error when it is not pending."""
    wanted = str(question_id)
    already = QuestionAnswer.objects.filter(supervisor=supervisor, question_id=question_id).exists()
    for index, pending in enumerate(supervisor.pending_questions):
        if pending.get("id") == wanted and not already:
            supervisor.pending_questions = [
                *supervisor.pending_questions[:index],
                *supervisor.pending_questions[index + 1 :],
            ]
            return pending
    if already:
        # Also when the id is pending again (makima wrote it back): its answer waits for the
        # daemon in answers/, and the next restoration delivers that answer instead of the question.
        raise Conflict(
            f"Question {wanted} was already answered.",
            fields={"question_id": ["Already answered."]},
            code="question_already_answered",
        )
    raise NotFound(f"Question {wanted} is not pending.", fields={"question_id": ["Not a pending question."]})


def clear_pending_question(
    contract_id: uuid.UUID | str,
    question_id: uuid.UUID | str,
    *,
    answer: str,
    actor: Actor,
    fence: Fence = UNFENCED,
    append: ConversationAppend | None = None,
) -> QuestionAnswer:
    """Answer a pending question: remove it, keep the answer until the daemon acknowledges it.

    Guarantees: exactly one answer per question, even when two people answer at
    once (the second gets Conflict: already answered). An id that is not
    pending is NotFound. Takes a ``question_answered`` checkpoint and sends
    ``question_answered`` after commit. ``append``: messages for the
    conversation's end in the same transaction (:mod:`.conversation_append`).
    """
    contract_uuid = parse_uuid(contract_id, "contract_id")
    question_uuid = parse_uuid(question_id, "question_id")
    if not isinstance(answer, str) or not answer.strip():
        raise InvalidInput("The answer must be a non-empty string.", fields={"answer": ["Must be a non-empty string."]})
    if len(answer) > MAX_ANSWER_LENGTH or contains_nul(answer):
        raise InvalidInput(
            f"The answer must be at most {MAX_ANSWER_LENGTH} characters without NUL.",
            fields={"answer": ["Too long or contains NUL."]},
        )
    if surrogate_path(answer) is not None:
        raise InvalidInput(f"The answer is not Unicode. {SURROGATE_MESSAGE}", fields={"answer": [SURROGATE_MESSAGE]})
    if append is not None:
        append = clean_conversation_append(append)
    with transaction.atomic():
        supervisor = lock_for_append(contract_uuid, append, fence=fence)
        asked = _take_pending(supervisor, question_uuid)
        length = append_to_locked(supervisor, append) if append is not None else None
        record = QuestionAnswer.objects.create(
            supervisor=supervisor,
            question_id=question_uuid,
            question=asked,
            answer=answer,
            answered_by_user=actor.user if actor.kind == ActorKind.STAFF else None,
            answered_by_daemon=actor.daemon if actor.kind == ActorKind.DAEMON else None,
        )
        supervisor.state = _state_after_last_question(supervisor)
        supervisor.save(update_fields=["pending_questions", "state", *stamp_write(supervisor)])
        finish_save_point(supervisor, SavePoint.QUESTION_ANSWERED)
        record_event(
            supervisor.pk,
            EventKind.QUESTION_ANSWERED,
            actor=actor,
            details=appended_details(
                append,
                length,
                {"questionId": str(question_uuid), "question": short(asked.get("question")), "answeredBy": str(actor)},
            ),
        )
        send_on_commit(
            question_answered,
            contract_id=contract_uuid,
            supervisor_id=supervisor.pk,
            question_id=question_uuid,
            question=asked,
            answer=answer,
            answered_by=str(actor),
            actor=actor,
        )
    return record


def remove_supervisor_pending_question(
    contract_id: uuid.UUID | str, question_id: uuid.UUID | str, *, actor: Actor, fence: Fence = UNFENCED
) -> SupervisorState:
    """Withdraw a pending question without an answer (the agent no longer needs it).

    Same errors as answering; no answer is recorded. Takes a
    ``question_withdrawn`` checkpoint. ``actor`` is who withdrew it (logged).
    """
    contract_uuid = parse_uuid(contract_id, "contract_id")
    question_uuid = parse_uuid(question_id, "question_id")
    with transaction.atomic():
        supervisor = lock_supervisor(contract_uuid, fence=fence)
        withdrawn = _take_pending(supervisor, question_uuid)
        supervisor.state = _state_after_last_question(supervisor)
        supervisor.save(update_fields=["pending_questions", "state", *stamp_write(supervisor)])
        finish_save_point(supervisor, SavePoint.QUESTION_WITHDRAWN)
        record_event(
            supervisor.pk,
            EventKind.QUESTION_WITHDRAWN,
            actor=actor,
            details={"questionId": str(question_uuid), "question": short(withdrawn.get("question"))},
        )
    return supervisor


def acknowledge_answer(
    contract_id: uuid.UUID | str, question_id: uuid.UUID | str, *, fence: Fence = UNFENCED, actor: Actor | None = None
) -> QuestionAnswer:
    """The daemon received the answer: mark it acknowledged (idempotent); NotFound when there is no answer.

    Under the supervisor's row lock, so an acknowledgement from a daemon that
    was just taken over from never lands (the answer then travels with the new
    owner's resume). One UPDATE (only the first acknowledgement sets the time), then a read.
    The first acknowledgement records an ``answer_acknowledged`` event; repeats record nothing.
    """
    contract_uuid = parse_uuid(contract_id, "contract_id")
    question_uuid = parse_uuid(question_id, "question_id")
    answers = QuestionAnswer.objects.filter(supervisor__contract_id=contract_uuid, question_id=question_uuid)
    with transaction.atomic():
        supervisor = lock_supervisor(contract_uuid, fence=fence, defer_task_ids=True)
        acknowledged = answers.filter(acknowledged_at__isnull=True).update(acknowledged_at=timezone.now())
        if acknowledged:
            record_event(
                supervisor.pk,
                EventKind.ANSWER_ACKNOWLEDGED,
                actor=actor_of(actor, fence),
                details={"questionId": str(question_uuid)},
            )
        record = answers.first()
    if record is None:
        raise NotFound(
            f"Question {question_uuid} of contract {contract_uuid} has no answer.",
            fields={"question_id": ["No answer to acknowledge."]},
        )
    return record
