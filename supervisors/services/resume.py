"""resume: the restoration protocol as a caller asks for it, at most once per Idempotency-Key.

What a resume adds to :func:`~.restoration.restore_supervisor`:

- who may resume what: a daemon its own supervisors, and with
  ``task_reassignment`` one whose daemon is gone (that task then moves to it);
  anything else is NotFound, as if the supervisor did not exist;
- the row lock, taken before anything is decided, so two concurrent resumes
  never both restore: the later one is a Conflict (``restored_concurrently``);
- a daemon's Idempotency-Key, stored in the restoration's own transaction, so
  a retry gets the first answer back instead of restoring again;
- without a key, a resume within ``API_RESUME_DEBOUNCE_SECONDS`` of the last
  restoration counts as a duplicate: there is no other way to tell a retry.

The caller renders the result (``render``); the rendered body is what is
stored for the key, so a retry gets exactly the bytes the first call did.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from supervisors.enums import RestorationSource
from supervisors.models import Daemon, SupervisorState

from .actors import Actor
from .errors import Conflict, NotFound
from .restoration import RestorationResult, restore_supervisor
from .world import (
    StoredResponse,
    find_idempotent_response,
    is_daemon_gone,
    request_fingerprint,
    store_idempotent_response,
)


def resume_supervisor(
    contract_id: uuid.UUID,
    *,
    source: RestorationSource | str,
    actor: Actor,
    render: Callable[[RestorationResult], Any],
    reason: str = "",
    daemon_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
) -> StoredResponse:
    """Restore the supervisor of ``contract_id`` for ``actor``; the answer to send (status 200 and body).

    ``daemon_id`` is the calling daemon (None: staff, who may resume any
    supervisor). Raises NotFound for a supervisor the daemon may not resume,
    Conflict when it was restored concurrently (or is completed, which the
    restoration log records), and Conflict for a key reused for another request.
    """
    seen = _supervisor_as_seen(contract_id)
    assign_to = _takeover_target(contract_id, seen, source, daemon_id)
    key = idempotency_key if daemon_id is not None else None
    fingerprint = request_fingerprint("resume", str(contract_id), source, reason)
    refusal: Conflict | None = None
    try:
        with transaction.atomic():
            # Serialise with any other resume (or write) of this supervisor before deciding anything.
            locked = (
                SupervisorState.objects.select_for_update()
                .filter(contract_id=contract_id)
                .values("restoration_count", "last_restored_at")
                .first()
            )
            if key is not None:
                stored = find_idempotent_response(daemon_id=daemon_id, key=key, fingerprint=fingerprint)
                if stored is not None:
                    return stored
            if locked is not None and _restored_meanwhile(seen, locked, debounce=idempotency_key is None):
                raise Conflict(
                    "The supervisor was restored by a concurrent request; fetch its state instead.",
                    code="restored_concurrently",
                )
            try:
                result = restore_supervisor(
                    contract_id, source=source, actor=actor, reason=reason, assign_to_daemon=assign_to
                )
            except Conflict as exc:
                refusal = exc  # the restoration logged the refusal: let that commit, then raise
            else:
                answer = StoredResponse(status=200, body=render(result))
                if key is not None:
                    store_idempotent_response(
                        daemon_id=daemon_id,
                        key=key,
                        fingerprint=fingerprint,
                        supervisor_id=result.supervisor_id,
                        status=answer.status,
                        body=answer.body,
                    )
    except IntegrityError:
        # The same key committed by a concurrent request first: this one's work was rolled back.
        if key is None:
            raise
        stored = find_idempotent_response(daemon_id=daemon_id, key=key, fingerprint=fingerprint)
        if stored is None:
            raise
        return stored
    if refusal is not None:
        raise refusal
    return answer


def _supervisor_as_seen(contract_id: uuid.UUID) -> SupervisorState | None:
    """The supervisor before the lock: whose task it is, and how often it was restored."""
    return (
        SupervisorState.objects.select_related("task__daemon")
        .only(
            "id",
            "restoration_count",
            "updated_at",
            "task__daemon_id",
            "task__daemon__status",
            "task__daemon__last_heartbeat_at",
            "task__daemon__name",
        )
        .filter(contract_id=contract_id)
        .first()
    )


def _takeover_target(
    contract_id: uuid.UUID, seen: SupervisorState | None, source: str, daemon_id: uuid.UUID | None
) -> Daemon | None:
    """The daemon the supervisor task moves to (a takeover), or None; NotFound if the daemon may not resume it."""
    if daemon_id is None:
        return None
    if seen is None:
        raise NotFound(f"Contract {contract_id} has no supervisor visible to you.")
    if seen.task.daemon_id == daemon_id:
        return None
    if source != RestorationSource.TASK_REASSIGNMENT or not is_daemon_gone(seen.task.daemon):
        raise NotFound(f"Contract {contract_id} has no supervisor visible to you.")
    return Daemon.objects.get(pk=daemon_id)


def _restored_meanwhile(seen: SupervisorState | None, locked: dict[str, Any], *, debounce: bool) -> bool:
    """Another resume got there first: restored since this request looked, or (without an
    Idempotency-Key, so no other way to tell a duplicate) within API_RESUME_DEBOUNCE_SECONDS."""
    if seen is not None and locked["restoration_count"] != seen.restoration_count:
        return True
    window = settings.API_RESUME_DEBOUNCE_SECONDS
    last = locked["last_restored_at"]
    return debounce and window > 0 and last is not None and last > timezone.now() - timedelta(seconds=window)
