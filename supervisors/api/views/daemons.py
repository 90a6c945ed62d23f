"""A daemon's own view of itself, and its own heartbeat carrying its supervisors' heartbeats in one statement."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from supervisors.api import examples
from supervisors.api.authentication import DaemonPrincipal
from supervisors.api.lean import LeanDaemonPost
from supervisors.api.serializers import (
    DaemonHeartbeatResponseSerializer,
    DaemonHeartbeatSerializer,
    DaemonMeSerializer,
    validate_daemon_heartbeat,
)
from supervisors.models import Daemon
from supervisors.services.ownership import is_daemon_gone, lease_expires_at, owned_supervisors
from supervisors.services.state import HeartbeatItem, record_daemon_and_supervisor_heartbeats

from .base import BODY_ERRORS, ApiView, errors, json_body


class DaemonMeView(ApiView):
    daemon_only = True

    @extend_schema(
        operation_id="daemon_me",
        summary="The calling daemon",
        examples=examples.DAEMON_ME,
        responses={200: DaemonMeSerializer, **errors()},
        description="The calling daemon: its id and name, its lease, and how many supervisors it owns.",
    )
    def get(self, request) -> Response:
        daemon = Daemon.objects.get(pk=request.user.daemon_id)
        return Response(
            {
                "daemonId": str(daemon.id),
                "name": daemon.name,
                "alive": not is_daemon_gone(daemon),
                "lastHeartbeatAt": daemon.last_heartbeat_at,
                "leaseExpiresAt": lease_expires_at(daemon),
                "supervisors": owned_supervisors(daemon.id).count(),
            }
        )


class DaemonHeartbeatView(LeanDaemonPost, ApiView):
    """Daemons take the lean dispatch (supervisors.api.lean); staff get 403 through DRF."""

    daemon_only = True
    body_required = True  # {} is a valid heartbeat; no body at all is not (the schema requires one)

    @extend_schema(
        operation_id="daemon_heartbeat",
        summary="Daemon heartbeat",
        examples=examples.DAEMON_HEARTBEAT,
        request=DaemonHeartbeatSerializer,
        responses={200: DaemonHeartbeatResponseSerializer, **errors(*BODY_ERRORS)},
        description=(
            "The daemon is alive (status `connected`), or leaving (`disconnected`). A daemon silent longer than "
            "DAEMON_GONE_AFTER_SECONDS counts as gone and its supervisors may be taken over. `supervisors` carries "
            "the heartbeats of its supervisors, written in one statement: only those it owns, at the epoch each "
            "item names (its resume's restorationCount); the others are listed in supervisorsNotUpdated."
        ),
    )
    def post(self, request) -> Response:
        return Response(self.lean_post(request.user, json_body(request), meta=request.META))

    def lean_post(self, principal: DaemonPrincipal, data: Any, *, meta: dict[str, Any]) -> dict[str, Any]:
        data = validate_daemon_heartbeat(data)
        daemon_id = principal.daemon_id
        items = [
            HeartbeatItem(
                contract_id=item["contract_id"],
                state=item["state"],
                current_activity=item.get("current_activity"),
                progress=item["progress"],
                epoch=item.get("epoch"),
            )
            for item in data["supervisors"]
        ]
        at, written = record_daemon_and_supervisor_heartbeats(daemon_id, status=data["status"], items=items)
        not_written = [str(item.contract_id) for item in items if item.contract_id not in written]
        return {
            "daemonId": str(daemon_id),
            "status": data["status"],
            "lastHeartbeatAt": at,
            "supervisorsUpdated": len(written),
            "supervisorsNotUpdated": not_written,
        }
