"""Reads shared by the admin, the API and the commands, grouped by the area that owns them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime

from supervisors.models import QuestionAnswer, SupervisorState

# --- Persistence: questions and answers ---------------------------------------


def unacknowledged_answers(contract_id: uuid.UUID | str) -> QuerySet[QuestionAnswer]:
    """Answers the contract's daemon has not yet acknowledged, oldest first."""
    return QuestionAnswer.objects.filter(supervisor__contract_id=contract_id, acknowledged_at__isnull=True).order_by(
        "answered_at", "id"
    )


def get_supervisors_with_pending_questions() -> QuerySet[SupervisorState]:
    """Supervisors with at least one pending question, conversation left unloaded (the seed's query)."""
    return (
        SupervisorState.objects.exclude(pending_questions=[])
        .defer("conversation_history")
        .select_related("contract")
        .order_by("last_activity", "id")
    )


def pending_questions_overview() -> list[dict[str, Any]]:
    """Every pending question across supervisors, oldest first, with where it comes from.

    Each item: ``contract_id``, ``contract_name``, ``supervisor_id``, ``state``,
    ``phase`` and ``question`` (the PendingQuestion dict as stored).
    """
    rows = get_supervisors_with_pending_questions().values(
        "id", "contract_id", "contract__name", "state", "phase", "pending_questions"
    )
    items = [
        {
            "contract_id": row["contract_id"],
            "contract_name": row["contract__name"],
            "supervisor_id": row["id"],
            "state": row["state"],
            "phase": row["phase"],
            "question": question,
        }
        for row in rows
        for question in row["pending_questions"] or []
        if isinstance(question, dict)
    ]
    items.sort(key=lambda item: (_asked_at(item["question"]), str(item["question"].get("id"))))
    return items


def _asked_at(question: dict[str, Any]) -> datetime:
    """When a question was asked, comparable across time zones; unreadable times sort first."""
    value = question.get("askedAt")
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or parsed.tzinfo is None:
        return datetime.min.replace(tzinfo=UTC)
    return parsed
