"""resume: the restoration protocol as a caller asks for it, at most once per Idempotency-Key.

What a resume adds to :func:`~.restoration.restore_supervisor`, all decided
under the supervisor's row lock:

- who may resume what (:mod:`.ownership`): a daemon its own supervisors, and
  with ``task_reassignment`` one whose owner is gone (the supervisor task then
  moves to it), however soon after the last restoration; anything else is
  NotFound, as if the supervisor did not exist;
- two resumes that really overlap restore once: the one that finds the
  supervisor restored since it arrived (or since it first looked) gets
  Conflict ``restored_concurrently`` (with the current epoch);
- a daemon's Idempotency-Key, stored in the restoration's own transaction, so
  a retry gets the first answer back instead of restoring again. Without a
  key, every resume that does not overlap another restores again: a new
  epoch, which fences off anything still running under the previous one.

The caller renders the result (``render``); the rendered body is what is
stored for the key, so a retry gets exactly the bytes the first call did.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from supervisors.enums import RestorationSource
from supervisors.models import Contract, Daemon, SupervisorState

from .actors import Actor
from .errors import Conflict
from .hot_cursor import hot_cursor
from .ownership import is_daemon_gone, not_visible, supervisor_task_owner
from .restoration import RestorationResult, restore_supervisor
from .world import (
    StoredResponse,
    find_idempotent_response,
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
    arrived_at: datetime | None = None,
) -> StoredResponse:
    """Restore the supervisor of ``contract_id`` for ``actor``; the answer to send (status 200 and body).

    ``daemon_id`` is the calling daemon (None: staff, who may resume any
    supervisor). Raises NotFound for a supervisor the daemon may not resume,
    Conflict when it was restored concurrently (or is completed, which the
    restoration log records), and Conflict for a key reused for another request.
    ``arrived_at``: when the request arrived (default: now); a restoration
    after it means the two requests overlapped.
    """
    arrived_at = arrived_at or timezone.now()
    seen_epoch = _epoch_as_seen(contract_id)
    key = idempotency_key if daemon_id is not None else None
    fingerprint = request_fingerprint("resume", str(contract_id), source, reason)
    refusal: Conflict | None = None
    try:
        with transaction.atomic():
            # Serialise with any other resume (or write) of this supervisor before deciding anything.
            locked = _lock(contract_id)
            if key is not None:
                stored = find_idempotent_response(daemon_id=daemon_id, key=key, fingerprint=fingerprint)
                if stored is not None:
                    return stored
            assign_to = _takeover_target(contract_id, locked, source, daemon_id)
            if locked is not None and _overlapped(locked, seen_epoch, arrived_at):
                raise Conflict(
                    f"The supervisor of contract {contract_id} was restored by a concurrent request "
                    f"(now at epoch {locked.restoration_count}); resume again if you still need to.",
                    code="restored_concurrently",
                    fields={"restoration_count": [f"Now {locked.restoration_count}."]},
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


#: What a resume decides on under the row lock, before the restoration reads the rest.
_LOCKED_FIELDS = ("id", "contract_id", "task_id", "restoration_count", "last_restored_at")
_LOCK_SQL = (
    f"SELECT {', '.join(_LOCKED_FIELDS)} FROM {SupervisorState._meta.db_table} WHERE contract_id = %s FOR UPDATE"
)


def _lock(contract_id: uuid.UUID) -> SupervisorState | None:
    """The supervisor's row locked (FOR UPDATE), with only ``_LOCKED_FIELDS`` loaded; None when there is none.

    On PostgreSQL one fixed statement on the hot cursor, the model built from its row as the ORM would.
    """
    if connection.vendor != "postgresql":
        return SupervisorState.objects.select_for_update().only(*_LOCKED_FIELDS).filter(contract_id=contract_id).first()
    with hot_cursor() as cursor:
        cursor.execute(_LOCK_SQL, [Contract._meta.pk.get_db_prep_value(contract_id, connection)])
        row = cursor.fetchone()
    return None if row is None else SupervisorState.from_db(connection.alias, _LOCKED_FIELDS, row)


def _overlapped(locked: SupervisorState, seen_epoch: int | None, arrived_at: datetime) -> bool:
    """Another restoration ran while this request was in flight: since it arrived, or since it first looked.

    Not a time window: a resume that arrives after the previous restoration
    committed restores again, however soon after.
    """
    if seen_epoch is not None and locked.restoration_count != seen_epoch:
        return True
    return locked.last_restored_at is not None and locked.last_restored_at > arrived_at


def _epoch_as_seen(contract_id: uuid.UUID) -> int | None:
    """The epoch before the lock: a different one under the lock means another restoration overlapped.

    Fixed SQL on the hot cursor (every resume reads it; the ORM built the same statement each time).
    """
    with hot_cursor() as cursor:
        cursor.execute(_EPOCH_SQL, [Contract._meta.pk.get_db_prep_value(contract_id, connection)])
        row = cursor.fetchone()
    return None if row is None else row[0]


_EPOCH_SQL = f"SELECT restoration_count FROM {SupervisorState._meta.db_table} WHERE contract_id = %s"


def _takeover_target(
    contract_id: uuid.UUID, locked: SupervisorState | None, source: str, daemon_id: uuid.UUID | None
) -> Daemon | None:
    """The daemon the supervisor task moves to (a takeover), or None; NotFound if the daemon may not resume it.

    Runs under the row lock and reads the owner afresh, so of two daemons
    racing to take over one supervisor, the second finds the first alive.
    """
    if daemon_id is None:
        return None
    if locked is None:
        raise not_visible(contract_id)
    is_supervisor_task, owner_id = supervisor_task_owner(locked)
    if not is_supervisor_task:
        raise not_visible(contract_id)
    if owner_id == daemon_id:
        return None
    owner = Daemon.objects.filter(pk=owner_id).first() if owner_id is not None else None
    if source != RestorationSource.TASK_REASSIGNMENT or not is_daemon_gone(owner):
        raise not_visible(contract_id)
    return Daemon.objects.get(pk=daemon_id)
