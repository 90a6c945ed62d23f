"""Failover without a person: a live daemon claims supervisors whose owner is gone.

A daemon polls :func:`claim_orphaned_supervisors` with the number it can take
on. In one transaction the orphans (owner gone by the lease, not completed,
not excluded by ``FAILOVER_EXCLUDE_STATES``; oldest activity first) are
locked with SKIP LOCKED, so concurrent claims never hand one supervisor to two
daemons and never wait on each other, and each is restored by the protocol
with source ``task_reassignment``: its supervisor task moves to the claimer
and a new epoch starts, which fences off the former owner should it come back.
When nothing is orphaned the answer costs one small query.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from supervisors.enums import RestorationSource, SupervisorStatus
from supervisors.models import Daemon, SupervisorState

from .actors import Actor
from .errors import Conflict, InvalidInput, NotFound
from .ownership import epoch_unchanged_q, is_daemon_gone, orphaned_q
from .restoration import BatchItem, RestorationResult, RestoreOptions, restore_locked_supervisors

CLAIM_REASON = "claimed: its daemon is gone"


@dataclass(frozen=True)
class ClaimFilters:
    """Which orphans the daemon is willing to take on: states (None: any claimable one), contracts."""

    states: tuple[str, ...] | None = None
    contract_ids: tuple[uuid.UUID, ...] | None = None


@dataclass(frozen=True)
class Claimed:
    """What a claim took over: one restoration per supervisor, and those that failed to restore."""

    results: list[RestorationResult]
    failed: list[uuid.UUID]


def max_claim_capacity() -> int:
    return settings.FAILOVER_MAX_CLAIM


def claimable_states() -> list[str]:
    """Every state but completed and the ones FAILOVER_EXCLUDE_STATES leaves to a person."""
    excluded = {SupervisorStatus.COMPLETED, *settings.FAILOVER_EXCLUDE_STATES}
    return [state for state in SupervisorStatus.values if state not in excluded]


def orphaned_supervisors(filters: ClaimFilters = ClaimFilters()) -> QuerySet[SupervisorState]:
    """Orphans a claim may take, oldest activity first (the longest without a daemon come back first)."""
    states = claimable_states()
    if filters.states is not None:
        states = [s for s in states if s in filters.states]
    queryset = SupervisorState.objects.filter(orphaned_q(), state__in=states)
    if filters.contract_ids is not None:
        queryset = queryset.filter(contract_id__in=filters.contract_ids)
    return queryset.order_by("last_activity", "id")


def check_claim(capacity: object, filters: ClaimFilters) -> int:
    """The capacity as a number within 1..FAILOVER_MAX_CLAIM and filters that name real states (InvalidInput)."""
    limit = max_claim_capacity()
    if type(capacity) is not int or not 1 <= capacity <= limit:
        raise InvalidInput(
            f"capacity must be a whole number from 1 to {limit}.",
            fields={"capacity": [f"A whole number from 1 to {limit}."]},
        )
    unknown = [s for s in filters.states or () if s not in SupervisorStatus.values]
    if unknown:
        raise InvalidInput(
            f"Unknown states: {', '.join(map(repr, unknown[:20]))}.",
            fields={"states": [f"Not a supervisor state: {s!r}." for s in unknown[:20]]},
        )
    return capacity


def claim_orphaned_supervisors(
    daemon_id: uuid.UUID, *, capacity: int, filters: ClaimFilters = ClaimFilters(), actor: Actor
) -> Claimed:
    """Take over up to ``capacity`` orphaned supervisors for the daemon; their restorations, oldest first.

    One transaction: the rows are locked with SKIP LOCKED (PostgreSQL; SQLite
    serialises writers anyway), restored together by the protocol (each with
    its own new epoch), and a supervisor that fails to restore is reported in
    ``failed`` without stopping the others. Raises Conflict when automatic
    failover is off (``FAILOVER_ENABLED``), NotFound for an unknown daemon,
    InvalidInput for a bad capacity or filter. A daemon that is itself gone
    (it said it is leaving) claims nothing.
    """
    capacity = check_claim(capacity, filters)
    if not settings.FAILOVER_ENABLED:
        raise Conflict(
            "Automatic failover is off (FAILOVER_ENABLED=false): supervisors are taken over only by an explicit "
            "resume.",
            code="failover_disabled",
        )
    claimer = Daemon.objects.filter(pk=daemon_id).first()
    if claimer is None:
        raise NotFound(f"Daemon {daemon_id} does not exist.")
    if is_daemon_gone(claimer):
        return Claimed(results=[], failed=[])
    orphans = orphaned_supervisors(filters)
    if not orphans.exists():  # the common answer to a poll: one indexed query, no transaction, no lock
        return Claimed(results=[], failed=[])
    options = RestoreOptions(
        source=RestorationSource.TASK_REASSIGNMENT,
        actor=actor,
        reason=CLAIM_REASON,
        assign_to_daemon=claimer,
        via_claim=True,
    )
    with transaction.atomic():
        rows = list(
            orphans.filter(epoch_unchanged_q())
            .select_for_update(of=("self",), skip_locked=True)
            .select_related("contract", "task", "task__daemon")[:capacity]
        )
        if not rows:
            return Claimed(results=[], failed=[])
        items = restore_locked_supervisors(rows, options)
    return _claimed(items)


def _claimed(items: list[BatchItem]) -> Claimed:
    results = [item.result for item in items if item.result is not None]
    failed = [item.supervisor.contract_id for item in items if item.result is None]
    return Claimed(results=results, failed=failed)
