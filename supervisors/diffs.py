"""What restoring a checkpoint or applying a correction would change, field by field.

Staff decide on a restore from a checkpoint, or a correction, by what it does
to the supervisor; both pages show this before anything is written. The
conversation is compared message by message: how many are kept, removed and
added, and the first message that differs, on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from supervisors.models import SupervisorCheckpoint, SupervisorState
from supervisors.services.checkpoints import CHECKPOINT_FIELDS, checkpoint_snapshot

#: Characters of a value or message shown in a diff.
SHOWN_CHARS = 2_000

LABELS = {
    "state": "State",
    "phase": "Phase",
    "current_activity": "Current activity",
    "progress": "Progress",
    "error_message": "Error message",
    "spawned_task_ids": "Spawned tasks",
    "pending_task_ids": "Waited-on tasks",
    "pending_questions": "Pending questions",
}


@dataclass(frozen=True)
class FieldChange:
    field: str
    label: str
    current: str
    proposed: str


@dataclass(frozen=True)
class ConversationChange:
    current_count: int
    proposed_count: int
    #: Messages the two histories share from the start.
    kept: int
    current_message: str  # the first differing message on each side ("" when that side ended)
    proposed_message: str

    @property
    def removed(self) -> int:
        return self.current_count - self.kept

    @property
    def added(self) -> int:
        return self.proposed_count - self.kept


@dataclass(frozen=True)
class Diff:
    fields: list[FieldChange]
    conversation: ConversationChange | None

    @property
    def empty(self) -> bool:
        return not self.fields and self.conversation is None


def shown(value: Any) -> str:
    """A value as staff read it: text as is, lists and objects as indented JSON, cut when long."""
    if value is None or value == "" or value == []:
        return "(empty)"
    text = value if isinstance(value, str) else json.dumps(value, indent=1, ensure_ascii=False, default=str)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}… ({len(text):,} characters)"


def _normalised(field: str, value: Any) -> Any:
    if field.endswith("_task_ids"):
        return [str(v) for v in value or []]
    if field in ("current_activity", "error_message"):
        return value or None
    return value


def field_changes(current: Mapping[str, Any], proposed: Mapping[str, Any], fields: Iterable[str]) -> list[FieldChange]:
    changes = []
    for name in fields:
        if name not in proposed:
            continue
        before, after = _normalised(name, current.get(name)), _normalised(name, proposed[name])
        if before != after:
            changes.append(FieldChange(name, LABELS.get(name, name), shown(before), shown(after)))
    return changes


def conversation_change(current: Any, proposed: Any) -> ConversationChange | None:
    """None when the histories are equal."""
    a = current if isinstance(current, list) else []
    b = proposed if isinstance(proposed, list) else []
    if a == b and isinstance(current, list):
        return None
    kept = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return ConversationChange(
        current_count=len(a),
        proposed_count=len(b),
        kept=kept,
        current_message=shown(a[kept]) if kept < len(a) else "",
        proposed_message=shown(b[kept]) if kept < len(b) else "",
    )


def checkpoint_diff(supervisor: SupervisorState, checkpoint: SupervisorCheckpoint) -> Diff:
    """What restoring ``checkpoint`` would change in ``supervisor`` (reads both histories once)."""
    proposed = checkpoint_snapshot(checkpoint)
    current = {name: getattr(supervisor, name) for name in CHECKPOINT_FIELDS}
    history = SupervisorState.objects.filter(pk=supervisor.pk).values_list("conversation_history", flat=True).first()
    return Diff(
        fields=field_changes(current, proposed, CHECKPOINT_FIELDS),
        conversation=conversation_change(history, proposed["conversation_history"]),
    )


def correction_diff(supervisor: SupervisorState, changes: Mapping[str, Any], fields: Sequence[str]) -> Diff:
    """What a correction (the changed fields only) would write; corrections never touch the conversation."""
    current = {name: getattr(supervisor, name) for name in fields}
    return Diff(fields=field_changes(current, changes, fields), conversation=None)
