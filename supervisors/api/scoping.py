"""Who is asking, and what they may see: the API's side of :mod:`supervisors.services.ownership`.

A daemon sees only the supervisors it owns; staff see everything their Django
permissions allow. Anything out of scope is answered exactly like something
that does not exist (404), so a daemon cannot probe other daemons' contracts.
Writes carry a :class:`~supervisors.services.ownership.Fence` (who writes, and
the epoch from the ``Supervisor-Epoch`` header) that the services check under
the supervisor's row lock.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from supervisors.models import Contract, SupervisorState, Task
from supervisors.services import ownership
from supervisors.services.errors import InvalidInput, NotFound
from supervisors.services.inputs import row_version_annotation
from supervisors.services.ownership import EPOCH_HEADER, Fence

from .authentication import DaemonPrincipal

_EPOCH_META = "HTTP_" + EPOCH_HEADER.upper().replace("-", "_")


def parse_path_uuid(value: str, name: str) -> uuid.UUID:
    """A malformed id in the path names nothing that exists: 404, like an unknown one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"{value!r} is not a valid id.", fields={name: ["Not a valid UUID."]}) from None


def daemon_of(request) -> DaemonPrincipal | None:
    return request.user if isinstance(request.user, DaemonPrincipal) else None


def daemon_id_of(request) -> uuid.UUID | None:
    daemon = daemon_of(request)
    return daemon.daemon_id if daemon is not None else None


def epoch_of(meta: dict[str, Any]) -> int | None:
    """The ``Supervisor-Epoch`` header: a non-negative integer, or None when not sent (400 when malformed)."""
    raw = meta.get(_EPOCH_META)
    if raw is None:
        return None
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 10 or int(text) >= 2**31:
        raise InvalidInput(
            f"{EPOCH_HEADER} must be the restorationCount your resume returned (a non-negative integer).",
            fields={EPOCH_HEADER: ["Must be a non-negative integer."]},
        )
    return int(text)


def fence_of(request) -> Fence:
    """Who writes (the daemon, or None for staff) and the epoch it sent."""
    return Fence(daemon_id=daemon_id_of(request), epoch=epoch_of(request.META))


def visible_supervisors(request) -> QuerySet[SupervisorState]:
    return ownership.owned_supervisors(daemon_id_of(request))


def get_supervisor(request, contract_id: uuid.UUID, *, with_history: bool = False) -> SupervisorState:
    """The contract's supervisor if the caller may see it, else NotFound."""
    queryset = visible_supervisors(request).annotate(**row_version_annotation())
    if not with_history:
        queryset = queryset.defer("conversation_history")
    supervisor = queryset.filter(contract_id=contract_id).first()
    if supervisor is None:
        raise ownership.not_visible(contract_id)
    return supervisor


def require_supervisor(request, contract_id: uuid.UUID) -> None:
    """One EXISTS query: the caller may read this contract's supervisor (writes check under the row lock)."""
    if not visible_supervisors(request).filter(contract_id=contract_id).exists():
        raise ownership.not_visible(contract_id)


def visible_contracts(request) -> QuerySet[Contract]:
    return ownership.visible_contracts(daemon_id_of(request))


def visible_tasks(request) -> QuerySet[Task]:
    return ownership.visible_tasks(daemon_id_of(request))
