"""Who owns a supervisor, whether a daemon is alive, and whether a write may still land.

One rule, one home (DESIGN.md, "Ownership, liveness and failover"); the API,
the admin, the commands and the restoration protocol all import it from here:

* **Owner.** A contract's *supervisor task* is its task marked
  ``is_supervisor``; a supervisor (its ``supervisor_states`` row) is owned by
  the daemon its task is assigned to, provided that task is the contract's
  supervisor task. A daemon sees and changes only what it owns
  (:func:`owned_supervisors`, :func:`visible_contracts`, :func:`visible_tasks`).
* **Lease.** A daemon is alive while any authenticated request of its arrived
  within ``DAEMON_GONE_AFTER_SECONDS``. ``daemons.last_heartbeat_at`` is the
  lease: its own heartbeat writes it, and the API's authentication renews it
  (:func:`renew_lease`, at most every :func:`lease_renew_seconds` per daemon
  and process). A daemon never heard from counts from its creation. A daemon
  whose last word was ``disconnected`` is gone until its next request.
* **Fence.** ``restoration_count`` is the ownership epoch: every restoration
  increments it. A write names who writes and, optionally, the epoch it
  believes current (:class:`Fence`); under the supervisor's row lock,
  :func:`check_fence` refuses a write from a former owner or an older epoch
  (409 ``superseded``) and hides the supervisor from anyone else (404).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from supervisors.enums import DaemonStatus
from supervisors.models import Contract, Daemon, RestorationLog, SupervisorState, Task

from .errors import Conflict, NotFound
from .hot_cursor import hot_cursor

SUPERSEDED = "superseded"

#: The header a daemon sends its epoch in; also the ``fields`` key of a 409 ``superseded``.
EPOCH_HEADER = "Supervisor-Epoch"


# --- owner ------------------------------------------------------------------------------------------


def owned_q(daemon_id: uuid.UUID) -> Q:
    """``SupervisorState`` rows owned by the daemon: its task is the contract's supervisor task, on that daemon."""
    return Q(task__daemon_id=daemon_id, task__is_supervisor=True, task__contract_id=F("contract_id"))


def owned_supervisors(daemon_id: uuid.UUID | None) -> QuerySet[SupervisorState]:
    """Every supervisor for staff and the service (None); a daemon's own ones otherwise."""
    queryset = SupervisorState.objects.all()
    return queryset if daemon_id is None else queryset.filter(owned_q(daemon_id))


def _supervisor_tasks(contract_ref: OuterRef | F) -> QuerySet[Task]:
    return Task.objects.filter(contract_id=contract_ref, is_supervisor=True)


def supervised_contracts_q(daemon_id: uuid.UUID) -> Q:
    """Contracts whose supervisor task runs on the daemon."""
    return Q(Exists(_supervisor_tasks(OuterRef("pk")).filter(daemon_id=daemon_id)))


def unsupervised_contracts_q() -> Q:
    """Contracts without a supervisor task yet: any daemon may set one up (and so become their owner)."""
    return ~Q(Exists(_supervisor_tasks(OuterRef("pk"))))


def visible_contracts(daemon_id: uuid.UUID | None) -> QuerySet[Contract]:
    """A daemon sees the contracts it supervises, and those nobody supervises yet."""
    queryset = Contract.objects.all()
    if daemon_id is None:
        return queryset
    return queryset.filter(supervised_contracts_q(daemon_id) | unsupervised_contracts_q())


def visible_tasks(daemon_id: uuid.UUID | None) -> QuerySet[Task]:
    """A daemon sees (and may change the status of) the tasks it runs and every task of a contract it supervises."""
    queryset = Task.objects.all()
    if daemon_id is None:
        return queryset
    supervised = _supervisor_tasks(OuterRef("contract_id")).filter(daemon_id=daemon_id)
    return queryset.filter(Q(daemon_id=daemon_id) | Q(Exists(supervised)))


def may_add_tasks(daemon_id: uuid.UUID | None, contract_id: uuid.UUID) -> bool:
    """A daemon adds tasks only to contracts it supervises or that nobody supervises yet."""
    return visible_contracts(daemon_id).filter(pk=contract_id).exists()


def may_add_tasks_given(daemon_id: uuid.UUID | None, supervisor_task_daemons: Iterable[uuid.UUID | None]) -> bool:
    """:func:`may_add_tasks` over the daemons of the contract's supervisor tasks, which the caller already read."""
    daemons = list(supervisor_task_daemons)
    return daemon_id is None or not daemons or daemon_id in daemons


def supervisor_task_owner(supervisor: SupervisorState) -> tuple[bool, uuid.UUID | None]:
    """(whether the row's task is its contract's supervisor task, that task's daemon), read afresh.

    A fresh statement on purpose: called under the supervisor's row lock, it
    sees a takeover that committed while this transaction waited for the lock
    (a join in the locking SELECT would see the task as it was before).
    The statement's text is fixed and runs on the hot cursor (every fenced write reads it).
    """
    with hot_cursor() as cursor:
        cursor.execute(_TASK_OWNER_SQL, [Task._meta.pk.get_db_prep_value(supervisor.task_id, connection)])
        row = cursor.fetchone()
    if row is None:
        return False, None
    is_supervisor, contract_id, daemon_id = (row[0], *(column_uuid(value) for value in row[1:]))
    return bool(is_supervisor and contract_id == supervisor.contract_id), daemon_id


_TASK_OWNER_SQL = f"SELECT is_supervisor, contract_id, daemon_id FROM {Task._meta.db_table} WHERE id = %s"


def column_uuid(value: uuid.UUID | str | None) -> uuid.UUID | None:
    """A uuid column as read by a plain cursor: a UUID on PostgreSQL, 32 hex digits on SQLite."""
    return value if value is None or isinstance(value, uuid.UUID) else uuid.UUID(value)


def orphaned_q(now: datetime | None = None) -> Q:
    """Supervisors whose owner is gone (by the lease), or that have none: what failover may take over.

    One subquery on the row's own task (no join), so the same condition serves
    a locking SELECT (claims), an UPDATE (the watchdog) and a listing.
    """
    gone = Daemon.objects.filter(daemon_gone_q(now)).values("pk")
    orphaned_task = Task.objects.filter(
        Q(daemon__isnull=True) | Q(daemon_id__in=gone),
        pk=OuterRef("task_id"),
        is_supervisor=True,
        contract_id=OuterRef("contract_id"),
    )
    return Q(Exists(orphaned_task))


def epoch_unchanged_q() -> Q:
    """The row's epoch is still the one this statement's snapshot saw (for locking reads and writes).

    PostgreSQL re-checks a locking statement's WHERE clause on the newest
    version of a row that another transaction changed meanwhile, but reads
    every other table (the task and its daemon) as they were: a row taken
    over in between would still look orphaned or owned. A restoration always
    moves ``restoration_count``, and this subquery still returns the value
    from the statement's snapshot, so such a row no longer matches.
    """
    snapshot = SupervisorState.objects.filter(pk=OuterRef("pk")).values("restoration_count")[:1]
    return Q(restoration_count=Subquery(snapshot))


# --- lease ------------------------------------------------------------------------------------------


def gone_after() -> timedelta:
    return timedelta(seconds=settings.DAEMON_GONE_AFTER_SECONDS)


def lease_renew_seconds() -> float:
    """How stale a process lets a daemon's lease get before renewing it: a small part of the lease."""
    return max(0.5, min(5.0, settings.DAEMON_GONE_AFTER_SECONDS / 6))


def is_daemon_gone(daemon: Daemon | None, now: datetime | None = None) -> bool:
    """No daemon, a daemon that said it left, or one silent past DAEMON_GONE_AFTER_SECONDS (from its creation
    when it was never heard from)."""
    if daemon is None:
        return True
    cutoff = (now or timezone.now()) - gone_after()
    if daemon.last_heartbeat_at is None:
        return daemon.created_at is None or daemon.created_at < cutoff
    return daemon.status == DaemonStatus.DISCONNECTED or daemon.last_heartbeat_at < cutoff


def daemon_gone_q(now: datetime | None = None, prefix: str = "") -> Q:
    """:func:`is_daemon_gone` as a filter on daemons (``prefix``: the path to them, e.g. ``"task__daemon__"``)."""
    cutoff = (now or timezone.now()) - gone_after()
    silent = Q(**{f"{prefix}last_heartbeat_at__isnull": True, f"{prefix}created_at__lt": cutoff})
    left = Q(**{f"{prefix}last_heartbeat_at__isnull": False}) & (
        Q(**{f"{prefix}status": DaemonStatus.DISCONNECTED}) | Q(**{f"{prefix}last_heartbeat_at__lt": cutoff})
    )
    return silent | left


def lease_expires_at(daemon: Daemon) -> datetime | None:
    """When the daemon counts as gone unless it is heard from; None when it already said it left."""
    if daemon.last_heartbeat_at is not None and daemon.status == DaemonStatus.DISCONNECTED:
        return None
    return (daemon.last_heartbeat_at or daemon.created_at) + gone_after()


_renewed: dict[uuid.UUID, float] = {}
_renewed_lock = threading.Lock()
#: The renewal memo's clock (monotonic seconds); a module attribute so tests can move time on.
clock = time.monotonic


def renew_lease(daemon_id: uuid.UUID) -> bool:
    """The daemon was just heard from: renew its lease, at most every :func:`lease_renew_seconds` in this process.

    Returns whether a statement was sent. Callers: the API's authentication, on
    every authenticated daemon request; so a daemon that only sends supervisor
    heartbeats (or only writes) stays alive, at the cost of one small UPDATE
    every few seconds per daemon and process, not one per request.
    """
    now = clock()
    with _renewed_lock:
        last = _renewed.get(daemon_id)
        if last is not None and now - last < lease_renew_seconds():
            return False
        if len(_renewed) > 100_000:
            _renewed.clear()
        _renewed[daemon_id] = now
    Daemon.objects.filter(pk=daemon_id).update(status=DaemonStatus.CONNECTED, last_heartbeat_at=timezone.now())
    return True


def forget_lease_renewals() -> None:
    """Forget when leases were last renewed (tests; a daemon that said it left renews at its next request)."""
    with _renewed_lock:
        _renewed.clear()


def note_lease_renewed(daemon_id: uuid.UUID, *, connected: bool) -> None:
    """The daemon's own heartbeat wrote its lease: no renewal needed for a while (or, when it left, at once)."""
    with _renewed_lock:
        if connected:
            _renewed[daemon_id] = clock()
        else:
            _renewed.pop(daemon_id, None)


# --- fence ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fence:
    """Who writes (a daemon; None: staff or the service) and the epoch it believes current (None: not sent)."""

    daemon_id: uuid.UUID | None = None
    epoch: int | None = None


#: Staff and the service's own writes: no ownership to check, no epoch.
UNFENCED = Fence()


def superseded(contract_id: uuid.UUID, current_epoch: int | None, why: str) -> Conflict:
    detail = f"current epoch is {current_epoch}" if current_epoch is not None else "you no longer own it"
    return Conflict(
        f"The supervisor of contract {contract_id} {why}; this write was refused and changed nothing. "
        "Stop working on it; if you believe you still own it, resume it.",
        fields={EPOCH_HEADER: [detail]},
        code=SUPERSEDED,
    )


def not_visible(contract_id: uuid.UUID) -> NotFound:
    return NotFound(f"Contract {contract_id} has no supervisor visible to you.")


def was_taken_over_from(supervisor_id: uuid.UUID, daemon_id: uuid.UUID) -> bool:
    """Whether a restoration moved this supervisor away from the daemon (it is a former owner)."""
    return RestorationLog.objects.filter(supervisor_id=supervisor_id, previous_daemon_id=daemon_id).exists()


def check_fence(supervisor: SupervisorState, fence: Fence) -> None:
    """Refuse a write that must not land on this locked supervisor; call under its row lock.

    Raises NotFound for a daemon that does not own it (and never did),
    Conflict ``superseded`` for a former owner or an epoch other than the
    current one. Staff writes without an epoch pass.
    """
    if fence.daemon_id is not None:
        is_supervisor_task, owner = supervisor_task_owner(supervisor)
        if not is_supervisor_task or owner != fence.daemon_id:
            if fence.epoch is not None or was_taken_over_from(supervisor.pk, fence.daemon_id):
                raise superseded(supervisor.contract_id, None, "was taken over by another daemon")
            raise not_visible(supervisor.contract_id)
    if fence.epoch is not None and fence.epoch != supervisor.restoration_count:
        raise superseded(
            supervisor.contract_id, supervisor.restoration_count, f"is at epoch {supervisor.restoration_count}"
        )
