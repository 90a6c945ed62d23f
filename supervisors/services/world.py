"""The world around supervisors: contracts, tasks, daemons, API keys, idempotency, rate counters.

The API, the admin and the commands create and change these rows only through
the functions here, so the rules (a contract's phase, a task's status, how a
key is stored) are enforced in one place.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from supervisors.enums import TERMINAL_TASK_STATUSES, ContractStatus, DaemonStatus, TaskStatus
from supervisors.models import Contract, Daemon, DaemonApiKey, IdempotencyKey, Task
from supervisors.validators import NUL_MESSAGE, SURROGATE_MESSAGE, has_surrogate

from .errors import BrokenReference, Conflict, Forbidden, InvalidInput, NotFound
from .hot_cursor import hot_cursor
from .ownership import may_add_tasks, visible_tasks

KEY_PREFIX = "mks"
MAX_PHASE_LENGTH = 50


# --- Contracts and tasks --------------------------------------------------------


def _check_text(name: str, value: Any, *, max_length: int | None = None, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidInput(f"{name} must be a non-empty string.", fields={name: ["Must be a non-empty string."]})
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(
            f"{name} is longer than {max_length} characters.",
            fields={name: [f"At most {max_length} characters."]},
        )
    _check_storable(name, value)


def _check_storable(name: str, value: str) -> None:
    """Text PostgreSQL can hold: no NUL, no lone surrogate (InvalidInput naming ``name``, never a 500)."""
    if "\x00" in value:
        raise InvalidInput(f"{name} contains a NUL character.", fields={name: [NUL_MESSAGE]})
    if has_surrogate(value):
        raise InvalidInput(f"{name} is not Unicode. {SURROGATE_MESSAGE}", fields={name: [SURROGATE_MESSAGE]})


def create_contract(*, name: str, phase: str, status: str = ContractStatus.ACTIVE) -> Contract:
    """A new contract; it has no supervisor until its supervisor task and state are created."""
    _check_text("name", name)
    _check_text("phase", phase, max_length=MAX_PHASE_LENGTH)
    if status not in ContractStatus.values:
        raise InvalidInput(f"Unknown contract status {status!r}.", fields={"status": ["Unknown status."]})
    return Contract.objects.create(name=name, phase=phase, status=status)


def create_task(
    *,
    contract_id: uuid.UUID,
    name: str,
    is_supervisor: bool = False,
    daemon_id: uuid.UUID | None = None,
    parent_task_id: uuid.UUID | None = None,
    status: str = TaskStatus.PENDING,
    caller_daemon_id: uuid.UUID | None = None,
) -> Task:
    """A task of a contract; a parent task must belong to the same contract.

    A contract has at most one supervisor task: a second is a Conflict
    (``supervisor_exists``), decided under the contract's row lock so two
    daemons racing to set a supervisor up get one task. ``caller_daemon_id``
    (a daemon asking) adds the ownership rules: only contracts it supervises,
    or that nobody supervises yet, else NotFound as for a missing contract; a
    task without ``daemon_id`` runs on the caller, and a supervisor task only
    on the caller (Forbidden otherwise). A ``daemon_id`` that does not exist or
    a parent task of another contract is a BrokenReference.
    """
    _check_text("name", name)
    if status not in TaskStatus.values:
        raise InvalidInput(f"Unknown task status {status!r}.", fields={"status": ["Unknown status."]})
    if caller_daemon_id is not None:
        daemon_id = caller_daemon_id if daemon_id is None else daemon_id
        if is_supervisor and daemon_id != caller_daemon_id:
            raise Forbidden(
                "A daemon creates a supervisor task only for itself.",
                fields={"daemon_id": ["Must be your own daemon (or left out) for a supervisor task."]},
            )
    with transaction.atomic():
        contract = Contract.objects.select_for_update().filter(pk=contract_id).first()
        if contract is None or (caller_daemon_id is not None and not may_add_tasks(caller_daemon_id, contract.pk)):
            raise NotFound(f"Contract {contract_id} does not exist.", fields={"contract_id": ["Not found."]})
        if is_supervisor and Task.objects.filter(contract=contract, is_supervisor=True).exists():
            raise Conflict(
                f"Contract {contract_id} already has a supervisor task; a contract has one supervisor.",
                fields={"is_supervisor": ["The contract already has a supervisor task."]},
                code="supervisor_exists",
            )
        if daemon_id is not None and not Daemon.objects.filter(pk=daemon_id).exists():
            raise BrokenReference(f"Daemon {daemon_id} does not exist.", fields={"daemon_id": ["Not found."]})
        if parent_task_id is not None and not Task.objects.filter(pk=parent_task_id, contract=contract).exists():
            raise BrokenReference(
                f"Parent task {parent_task_id} is not a task of this contract.",
                fields={"parent_task_id": ["Not a task of this contract."]},
            )
        return Task.objects.create(
            contract=contract,
            name=name,
            is_supervisor=is_supervisor,
            daemon_id=daemon_id,
            parent_task_id=parent_task_id,
            status=status,
        )


def update_task_status(task_id: uuid.UUID, status: str, *, daemon_id: uuid.UUID | None = None) -> Task:
    """Move a task to a new status; ``daemon_id`` scopes the change to tasks of that daemon's contracts."""
    if status not in TaskStatus.values:
        raise InvalidInput(
            f"{status!r} is not one of {', '.join(TaskStatus.values)}.", fields={"status": ["Unknown status."]}
        )
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(pk=task_id).first()
        if task is None or (daemon_id is not None and not visible_tasks(daemon_id).filter(pk=task.pk).exists()):
            raise NotFound(f"Task {task_id} does not exist.", fields={"task_id": ["Not found."]})
        task.status = status
        task.completed_at = timezone.now() if status in TERMINAL_TASK_STATUSES else None
        task.save(update_fields=["status", "completed_at", "updated_at"])
        return task


def record_daemon_heartbeat(daemon_id: uuid.UUID, *, status: str = DaemonStatus.CONNECTED) -> datetime:
    """Mark a daemon alive (or disconnected, when it says so on the way out): one UPDATE."""
    if status not in DaemonStatus.values:
        raise InvalidInput(f"Unknown daemon status {status!r}.", fields={"status": ["Unknown status."]})
    now = timezone.now()
    if not Daemon.objects.filter(pk=daemon_id).update(status=status, last_heartbeat_at=now):
        raise NotFound(f"Daemon {daemon_id} does not exist.")
    return now


# --- API keys -------------------------------------------------------------------


def hash_key(raw_key: str) -> str:
    """Keys are long random strings, so a plain SHA-256 is enough (no slow hash needed)."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key: ``raw`` is shown once and never stored."""

    api_key: DaemonApiKey
    raw: str


def create_daemon_key(daemon_id: uuid.UUID, *, name: str = "") -> IssuedKey:
    """A new key ``mks_<prefix>_<secret>`` for a daemon; only its SHA-256 is stored."""
    if not Daemon.objects.filter(pk=daemon_id).exists():
        raise NotFound(f"Daemon {daemon_id} does not exist.", fields={"daemon": ["Not found."]})
    _check_storable("name", name)
    prefix = secrets.token_hex(4)
    raw = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = DaemonApiKey.objects.create(daemon_id=daemon_id, name=name[:100], prefix=prefix, key_hash=hash_key(raw))
    return IssuedKey(api_key=api_key, raw=raw)


def revoke_daemon_key(key_id: int) -> DaemonApiKey:
    """Revoke a key; API processes stop accepting it within ``API_KEY_CACHE_SECONDS``."""
    with transaction.atomic():
        api_key = DaemonApiKey.objects.select_for_update().filter(pk=key_id).first()
        if api_key is None:
            raise NotFound(f"API key {key_id} does not exist.")
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
        return api_key


@dataclass(frozen=True)
class KeyOwner:
    """What authentication needs to know about a valid key, cheap to keep in memory."""

    key_id: int
    daemon_id: uuid.UUID
    daemon_name: str
    #: The daemon's rate counter key (``daemon_rate_key``), formatted once per lookup, not per request.
    rate_key: str


def _key_owner(row: tuple) -> KeyOwner:
    daemon_id = row[1] if isinstance(row[1], uuid.UUID) else uuid.UUID(str(row[1]))
    return KeyOwner(key_id=row[0], daemon_id=daemon_id, daemon_name=row[2] or "", rate_key=daemon_rate_key(daemon_id))


def lookup_daemon_key(raw_key: str) -> KeyOwner | None:
    """The owner of an active key, recording its use: ONE statement (UPDATE ... RETURNING)."""
    digest = hash_key(raw_key)
    keys, daemons = DaemonApiKey._meta.db_table, Daemon._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {keys} SET last_used_at = %s WHERE key_hash = %s AND revoked_at IS NULL "
            f"RETURNING id, daemon_id, (SELECT name FROM {daemons} d WHERE d.id = {keys}.daemon_id)",
            [connection.ops.adapt_datetimefield_value(timezone.now()), digest],
        )
        row = cursor.fetchone()
    return None if row is None else _key_owner(row)


# --- Rate counters (throttling) --------------------------------------------------

#: A daemon's requests are counted under ``daemon:<its id>`` (the UUID's canonical text).
DAEMON_RATE_KEY_PREFIX = "daemon:"

_RATE_UPSERT = (
    "INSERT INTO api_rate_counters (key, window_start, count) {values} "
    "ON CONFLICT (key) DO UPDATE SET "
    "count = CASE WHEN api_rate_counters.window_start = excluded.window_start "
    "THEN api_rate_counters.count + 1 ELSE 1 END, window_start = excluded.window_start "
    "RETURNING count"
)


@dataclass(frozen=True)
class RateCount:
    """One request counted: requests in the current window (this one included), seconds until it ends."""

    count: int
    seconds_left: int


def _window(window_seconds: int) -> tuple[int, int]:
    now = int(time.time())
    start = now - now % window_seconds
    return start, start + window_seconds - now


def daemon_rate_key(daemon_id: uuid.UUID) -> str:
    return f"{DAEMON_RATE_KEY_PREFIX}{daemon_id}"


#: The counter's UPSERT for one key, as a data-modifying CTE's body (``WITH c AS (...)``):
#: parameters key, window_start; RETURNING count.
RATE_UPSERT_ONE = _RATE_UPSERT.format(values="VALUES (%s, %s, 1)")


@dataclass
class PendingCount:
    """A request that the statement doing its work will also count (one round trip for both).

    The caller builds it before the work; the statement fills in ``counted``
    and writes nothing when the count is over ``limit``. ``counted`` still None
    afterwards means the statement never ran (the input was refused first), so
    the caller must count the request some other way.
    """

    key: str
    limit: int
    window_start: int
    seconds_left: int
    counted: RateCount | None = None

    @classmethod
    def now(cls, key: str, *, limit: int, window_seconds: int) -> PendingCount:
        window_start, seconds_left = _window(window_seconds)
        return cls(key=key, limit=limit, window_start=window_start, seconds_left=seconds_left)

    def record(self, count: int) -> bool:
        """Note the count the statement returned; whether the request is within the limit."""
        self.counted = RateCount(count=count, seconds_left=self.seconds_left)
        return count <= self.limit


def hit_rate_counter(key: str, *, window_seconds: int) -> tuple[int, int]:
    """Count one request of ``key`` in the current fixed window: ONE atomic UPSERT.

    Returns (requests in this window including this one, seconds until the window
    ends). The counter lives in the database so every process shares it.
    """
    window_start, seconds_left = _window(window_seconds)
    with hot_cursor() as cursor:
        cursor.execute(RATE_UPSERT_ONE, [key, window_start])
        (count,) = cursor.fetchone()
    return count, seconds_left


def lookup_daemon_key_and_count(raw_key: str, *, window_seconds: int) -> tuple[KeyOwner | None, RateCount | None]:
    """Look the key up (recording its use), count the request AND renew its daemon's lease, in ONE statement.

    The first request of a process after its key cache expired would otherwise
    cost three round trips (key, counter, the work itself). On PostgreSQL the
    three writes are one statement with data-modifying CTEs: the key's UPDATE
    feeds the counter's UPSERT, and nothing is counted for an unknown or revoked
    key. SQLite has no data-modifying CTEs: there the counter is left to the
    throttle (RateCount None), which costs one more statement, but no network
    round trip.
    """
    if connection.vendor != "postgresql":
        return lookup_daemon_key(raw_key), None
    window_start, seconds_left = _window(window_seconds)
    keys, daemons = DaemonApiKey._meta.db_table, Daemon._meta.db_table
    counter = _RATE_UPSERT.format(values="SELECT %s || k.daemon_id::text, %s, 1 FROM k")
    now = timezone.now()
    with hot_cursor() as cursor:
        cursor.execute(
            f"WITH k AS (UPDATE {keys} SET last_used_at = %s WHERE key_hash = %s AND revoked_at IS NULL "
            f"RETURNING id, daemon_id), c AS ({counter}), "
            f"d AS (UPDATE {daemons} SET status = %s, last_heartbeat_at = %s "
            f"WHERE id IN (SELECT daemon_id FROM k) RETURNING id, name) "
            f"SELECT k.id, k.daemon_id, d.name, (SELECT count FROM c) "
            f"FROM k LEFT JOIN d ON d.id = k.daemon_id",
            [now, hash_key(raw_key), DAEMON_RATE_KEY_PREFIX, window_start, DaemonStatus.CONNECTED, now],
        )
        row = cursor.fetchone()
    if row is None:
        return None, None
    return _key_owner(row), RateCount(count=row[3], seconds_left=seconds_left)


# --- Idempotency ----------------------------------------------------------------


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any


def request_fingerprint(*parts: Any) -> str:
    """What identifies "the same request" for an idempotency key: method, path and body."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def find_idempotent_response(*, daemon_id: uuid.UUID, key: str, fingerprint: str) -> StoredResponse | None:
    """The first answer given to this key, or None; Conflict if the key was used for another request."""
    cutoff = timezone.now() - timedelta(hours=settings.API_IDEMPOTENCY_TTL_HOURS)
    stored = IdempotencyKey.objects.filter(daemon_id=daemon_id, key=key, created_at__gte=cutoff).first()
    if stored is None:
        return None
    if stored.request_fingerprint != fingerprint:
        raise Conflict(
            "This Idempotency-Key was already used for a different request.",
            code="idempotency_key_reused",
            fields={"idempotency_key": ["Used for a different request."]},
        )
    body = stored.response_body
    # Stored as JSON text (see store_idempotent_response); a row from before that is the object itself.
    return StoredResponse(stored.response_status, json.loads(body) if isinstance(body, str) else body)


def store_idempotent_response(
    *,
    daemon_id: uuid.UUID,
    key: str,
    fingerprint: str,
    supervisor_id: uuid.UUID | None,
    status: int,
    body: Any,
) -> None:
    """Remember the answer; call inside the transaction that did the work, so both commit or neither.

    The daemon's expired answers (the same key among them) are deleted on the way:
    stored contexts carry whole conversations, so they must not pile up. A
    concurrent request with the same key that got here first makes this raise
    IntegrityError, rolling back the second request's work.
    """
    cutoff = timezone.now() - timedelta(hours=settings.API_IDEMPOTENCY_TTL_HOURS)
    IdempotencyKey.objects.filter(daemon_id=daemon_id, created_at__lt=cutoff).delete()
    with transaction.atomic():
        IdempotencyKey.objects.create(
            daemon_id=daemon_id,
            key=key,
            supervisor_id=supervisor_id,
            request_fingerprint=fingerprint,
            response_status=status,
            # As JSON text inside the JSON column: jsonb reorders an object's keys, and the replayed answer
            # must be the first one exactly, keys in the same order.
            response_body=json.dumps(body),
        )
