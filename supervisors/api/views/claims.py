"""A live daemon claims supervisors whose daemon is gone (failover without a person)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from supervisors.api import examples, scoping
from supervisors.api.serializers import ClaimResponseSerializer, ClaimSerializer
from supervisors.services.claims import ClaimFilters, claim_orphaned_supervisors

from .base import BODY_ERRORS, ApiView, errors
from .resume import context_body


class ClaimView(ApiView):
    daemon_only = True

    @extend_schema(
        operation_id="supervisors_claim",
        summary="Claim orphaned supervisors",
        examples=examples.CLAIM,
        request=ClaimSerializer,
        responses={200: ClaimResponseSerializer, **errors(*BODY_ERRORS, conflicts=["failover_disabled"])},
        description=(
            "Take over up to `capacity` supervisors whose daemon is gone (by its lease; never completed ones, "
            "nor FAILOVER_EXCLUDE_STATES), oldest activity first. Each is restored with source "
            "`task_reassignment`: its supervisor task moves to you and a new epoch starts (its `restorationCount`; "
            "send it as `Supervisor-Epoch`). Concurrent claims never get the same supervisor. Nothing orphaned: "
            "`claimed` is empty (a cheap answer: poll every few seconds). 409 `failover_disabled` when "
            "FAILOVER_ENABLED is off."
        ),
    )
    def post(self, request) -> Response:
        serializer = ClaimSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        filters = ClaimFilters(
            states=tuple(data["states"]) if "states" in data else None,
            contract_ids=tuple(data["contract_ids"]) if "contract_ids" in data else None,
        )
        daemon = scoping.daemon_of(request)
        claimed = claim_orphaned_supervisors(
            daemon.daemon_id, capacity=data["capacity"], filters=filters, actor=daemon.actor
        )
        return Response(
            {
                "claimed": [{"contractId": str(r.contract_id), **context_body(r)} for r in claimed.results],
                "failed": [str(c) for c in claimed.failed],
            }
        )
