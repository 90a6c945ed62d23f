"""Which supervisors, contracts and tasks a caller may see: the API's reads, scoped.

A daemon sees only supervisors whose supervisor task is assigned to it; staff
see everything their Django permissions allow. Anything out of scope is
answered exactly like something that does not exist (404), so a daemon cannot
probe other daemons' contracts.
"""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from supervisors.models import Contract, SupervisorState, Task
from supervisors.services.errors import NotFound

from .authentication import DaemonPrincipal


def parse_path_uuid(value: str, name: str) -> uuid.UUID:
    """A malformed id in the path names nothing that exists: 404, like an unknown one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"{value!r} is not a valid id.", fields={name: ["Not a valid UUID."]}) from None


def daemon_of(request) -> DaemonPrincipal | None:
    return request.user if isinstance(request.user, DaemonPrincipal) else None


def visible_supervisors(request) -> QuerySet[SupervisorState]:
    queryset = SupervisorState.objects.all()
    daemon = daemon_of(request)
    if daemon is not None:
        queryset = queryset.filter(task__daemon_id=daemon.daemon_id)
    return queryset


def get_supervisor(request, contract_id: uuid.UUID, *, with_history: bool = False) -> SupervisorState:
    """The contract's supervisor if the caller may see it, else NotFound."""
    queryset = visible_supervisors(request)
    if not with_history:
        queryset = queryset.defer("conversation_history")
    supervisor = queryset.filter(contract_id=contract_id).first()
    if supervisor is None:
        raise NotFound(f"Contract {contract_id} has no supervisor visible to you.")
    return supervisor


def require_supervisor(request, contract_id: uuid.UUID) -> None:
    """One EXISTS query: the caller may change this contract's supervisor."""
    if not visible_supervisors(request).filter(contract_id=contract_id).exists():
        raise NotFound(f"Contract {contract_id} has no supervisor visible to you.")


def visible_contracts(request) -> QuerySet[Contract]:
    """A daemon sees the contracts it supervises, and those with no supervisor task yet (to set one up)."""
    queryset = Contract.objects.all()
    daemon = daemon_of(request)
    if daemon is not None:
        supervised = Task.objects.filter(is_supervisor=True)
        queryset = queryset.filter(
            pk__in=supervised.filter(daemon_id=daemon.daemon_id).values("contract_id")
        ) | queryset.exclude(pk__in=supervised.values("contract_id"))
    return queryset


def visible_tasks(request) -> QuerySet[Task]:
    """A daemon sees the tasks it runs and every task of the contracts it supervises."""
    queryset = Task.objects.all()
    daemon = daemon_of(request)
    if daemon is not None:
        supervised = Task.objects.filter(is_supervisor=True, daemon_id=daemon.daemon_id).values("contract_id")
        queryset = queryset.filter(daemon_id=daemon.daemon_id) | queryset.filter(contract_id__in=supervised)
    return queryset
