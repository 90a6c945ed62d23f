"""Which events are worth a person's attention: a table, no database."""

from __future__ import annotations

import pytest

from supervisors.services.notifications.types import notification_type


@pytest.mark.parametrize(
    ("kind", "details", "expected"),
    [
        ("question_asked", {"questionId": "q"}, "question_asked"),
        ("interrupted", {"reason": "daemon x gone"}, "interrupted"),
        ("stale", {}, "stale"),
        ("restoration_refused", {}, "restoration_refused"),
        ("claimed", {}, "claimed"),
        ("taken_over", {}, "taken_over"),
        ("restored", {}, "restored"),
        ("checkpoint_restored", {}, "checkpoint_restored"),
        ("state_updated", {"state": {"from": "working", "to": "blocked"}}, "supervisor_blocked"),
        ("corrected", {"state": {"from": "working", "to": "failed"}}, "supervisor_failed"),
        ("state_updated", {"state": {"from": "blocked", "to": "working"}}, None),
        ("state_updated", {"fields": ["phase"]}, None),
        ("state_saved", {"state": "failed", "stateBefore": "working"}, "supervisor_failed"),
        ("state_saved", {"state": "failed"}, None),  # it was failed already
        ("state_saved", {"state": "working", "stateBefore": "idle"}, None),
        ("question_answered", {}, None),
        ("phase_changed", {}, None),
        ("created", {"state": "blocked"}, None),
        ("state_updated", "not a dict", None),
    ],
)
def test_only_events_worth_a_persons_attention_are_notified(kind, details, expected):
    assert notification_type(kind, details) == expected
