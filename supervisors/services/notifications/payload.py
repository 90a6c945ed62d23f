"""What a notification says: the JSON a webhook receives, and the email made from it. Pure, no queries.

The payload is built once, when the event is dispatched, and stored with the
delivery: every attempt sends the same bytes (:func:`body`), and a delivery
outlives the event's retention. A question's notification carries what a
person needs to answer it (the question, its choices and context, the
contract, a link to the supervisor's admin page, where it is answered).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.urls import reverse

from supervisors.enums import NotificationType

#: Version of the payload's shape; a receiver may check it.
PAYLOAD_VERSION = 1


@dataclass(frozen=True)
class EventFacts:
    """What the dispatcher read about an event: the event's row, its supervisor's contract, a pending question."""

    event_id: uuid.UUID
    type: str
    kind: str
    occurred_at: datetime
    supervisor_id: uuid.UUID | None
    contract_id: uuid.UUID | None
    contract_name: str
    actor: str
    details: dict[str, Any]
    #: For ``question_asked``: the question as the supervisor holds it (None once answered or withdrawn).
    question: dict[str, Any] | None = None
    #: For ``daemon_gone``: the daemon.
    daemon_id: uuid.UUID | None = None
    daemon_name: str = ""


def admin_url(name: str, *args: Any) -> str:
    """An absolute link into the admin, on PUBLIC_BASE_URL."""
    return settings.PUBLIC_BASE_URL + reverse(name, args=args)


def build(facts: EventFacts) -> dict[str, Any]:
    """The webhook's JSON (and the email's source): stable event id and type, contract, details, links."""
    payload: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "id": str(facts.event_id),
        "type": facts.type,
        "eventKind": facts.kind,
        "occurredAt": facts.occurred_at.isoformat(),
        "supervisor": {"id": str(facts.supervisor_id) if facts.supervisor_id else None},
        "contract": {"id": str(facts.contract_id) if facts.contract_id else None, "name": facts.contract_name},
        "actor": facts.actor,
        "details": facts.details,
        "links": {},
    }
    if facts.daemon_id is not None:
        payload["daemon"] = {"id": str(facts.daemon_id), "name": facts.daemon_name}
        payload["links"]["daemon"] = admin_url("admin:supervisors_daemon_change", facts.daemon_id)
    if facts.supervisor_id is not None:
        payload["links"]["supervisor"] = admin_url("admin:supervisors_supervisorstate_change", facts.supervisor_id)
    if facts.type == NotificationType.QUESTION_ASKED:
        payload["question"] = _question(facts)
        payload["links"]["answer"] = payload["links"].get("supervisor")
        payload["links"]["pendingQuestions"] = admin_url("admin:supervisors_supervisorstate_questions")
    return payload


def _question(facts: EventFacts) -> dict[str, Any]:
    asked = facts.question or {}
    return {
        "id": facts.details.get("questionId") or asked.get("id"),
        "question": asked.get("question") or facts.details.get("question") or "",
        "choices": list(asked.get("choices") or []),
        "context": asked.get("context"),
        "questionType": asked.get("questionType") or facts.details.get("questionType"),
        # Answered or withdrawn before the notification was made: the link shows what happened.
        "stillPending": facts.question is not None,
    }


def body(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact, keys sorted, UTF-8."""
    return json.dumps(payload, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":")).encode()


def email_subject(payload: dict[str, Any]) -> str:
    contract = payload.get("contract") or {}
    daemon = payload.get("daemon") or {}
    contract = contract.get("name") or contract.get("id") or daemon.get("name") or "makima"
    if payload.get("type") == NotificationType.QUESTION_ASKED:
        return f"[makima] Question waiting for you: {contract}"
    label = dict(NotificationType.choices).get(payload.get("type"), payload.get("type"))
    return f"[makima] {label}: {contract}"


def email_text(payload: dict[str, Any]) -> str:
    """The plain-text email: what happened, to which contract, the question to answer, and the links."""
    contract = payload.get("contract") or {}
    lines = [
        email_subject(payload).removeprefix("[makima] "),
        "",
        f"Contract: {contract.get('name') or '-'} ({contract.get('id') or '-'})"
        if contract.get("id")
        else f"Daemon: {(payload.get('daemon') or {}).get('name') or '-'}",
        f"When: {payload.get('occurredAt')}",
        f"By: {payload.get('actor') or '-'}",
    ]
    question = payload.get("question")
    if question:
        lines += ["", "Question:", f"  {question.get('question')}"]
        if question.get("choices"):
            lines += ["Choices:", *(f"  - {choice}" for choice in question["choices"])]
        if question.get("context"):
            lines += ["Context:", f"  {question['context']}"]
    else:
        for key, value in (payload.get("details") or {}).items():
            lines.append(f"{key}: {value}")
    links = payload.get("links") or {}
    if links.get("answer"):
        lines += ["", f"Answer it in the admin: {links['answer']}"]
    elif links.get("supervisor") or links.get("daemon"):
        lines += ["", f"Open it in the admin: {links.get('supervisor') or links.get('daemon')}"]
    lines += ["", f"Event id: {payload.get('id')}"]
    return "\n".join(lines) + "\n"
