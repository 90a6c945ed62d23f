"""Which events are worth a person's attention, and under which notification type: pure, no queries."""

from __future__ import annotations

from typing import Any

from supervisors.enums import EventKind, NotificationType, SupervisorStatus

#: Event kinds notified under their own name (the failover and attention events).
_AS_IS: dict[str, str] = {
    EventKind.QUESTION_ASKED: NotificationType.QUESTION_ASKED,
    EventKind.RESTORATION_REFUSED: NotificationType.RESTORATION_REFUSED,
    EventKind.INTERRUPTED: NotificationType.INTERRUPTED,
    EventKind.STALE: NotificationType.STALE,
    EventKind.RESTORED: NotificationType.RESTORED,
    EventKind.CHECKPOINT_RESTORED: NotificationType.CHECKPOINT_RESTORED,
    EventKind.TAKEN_OVER: NotificationType.TAKEN_OVER,
    EventKind.CLAIMED: NotificationType.CLAIMED,
}

#: A state a supervisor moved into that a person must look at, and its notification type.
_STATES: dict[str, str] = {
    SupervisorStatus.BLOCKED: NotificationType.SUPERVISOR_BLOCKED,
    SupervisorStatus.FAILED: NotificationType.SUPERVISOR_FAILED,
}


def notification_type(kind: str, details: Any) -> str | None:
    """The notification type of an event, or None when the event is not worth a person's attention.

    A save (``state_saved``) or a change (``state_updated``, ``corrected``)
    that moved the supervisor into ``blocked`` or ``failed`` is notified as
    such; one that left it there (or moved it anywhere else) is not.
    """
    if kind in _AS_IS:
        return _AS_IS[kind]
    details = details if isinstance(details, dict) else {}
    if kind == EventKind.STATE_SAVED:
        state, before = details.get("state"), details.get("stateBefore")
        if before is not None and before != state:
            return _STATES.get(state)
        return None
    if kind in (EventKind.STATE_UPDATED, EventKind.CORRECTED):
        change = details.get("state")
        if isinstance(change, dict) and change.get("from") != change.get("to"):
            return _STATES.get(change.get("to"))
    return None
