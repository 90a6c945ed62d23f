"""resume over HTTP: the body and the Idempotency-Key header in, the restoration context out.

The rules (who may resume what, the row lock, idempotency, duplicates) are
:func:`supervisors.services.resume.resume_supervisor`'s.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from supervisors.api import examples, scoping
from supervisors.api.serializers import RestorationContextSerializer, ResumeSerializer, previous_state_fields
from supervisors.services.errors import InvalidInput
from supervisors.services.restoration import RestorationResult
from supervisors.services.resume import resume_supervisor

from .base import BODY_ERRORS, ApiView, errors
from .questions import actor_of

IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
    OpenApiParameter.HEADER,
    required=False,
    description="A retried resume with the same key returns the first answer instead of restoring again "
    "(kept per daemon for API_IDEMPOTENCY_TTL_HOURS). Reusing a key for another request is a 409.",
)


def context_body(result: RestorationResult) -> dict[str, Any]:
    """The resume's body: RestorationContextSerializer's shape (the schema declares every key)."""
    return {
        **result.context.as_dict(),
        **previous_state_fields(str(result.context.previous_state)),
        "recoveryAction": str(result.recovery_action),
        "checkpointId": result.checkpoint_id,
        "outcome": str(result.outcome),
    }


RESUME_CONFLICTS = (
    "supervisor_completed",
    "restored_concurrently",
    "idempotency_key_reused",
    "manual_intervention_needed",
    "daemon_alive",
    "superseded",
)


class ResumeView(ApiView):
    staff_permissions = {"POST": ["supervisors.restore_supervisor"]}

    @extend_schema(
        operation_id="supervisor_resume",
        summary="Resume (restore) a supervisor",
        examples=examples.RESUME,
        parameters=[IDEMPOTENCY_KEY],
        request=ResumeSerializer,
        responses={200: RestorationContextSerializer, **errors(404, *BODY_ERRORS, conflicts=RESUME_CONFLICTS)},
        description=(
            "Run the restoration protocol and return the SupervisorRestorationContext. A daemon may resume its own "
            "supervisors, and with source `task_reassignment` one whose daemon is gone (disconnected or silent past "
            "DAEMON_GONE_AFTER_SECONDS): the supervisor task then moves to it. Two concurrent resumes never restore "
            "twice: one that finds the supervisor restored after it arrived gets 409 `restored_concurrently`, or the "
            "first answer with the same Idempotency-Key. There is no time window: a resume that does not overlap "
            "another restores again and starts a new epoch (`restorationCount`, to send as `Supervisor-Epoch`). The "
            "context carries the answers not yet acknowledged (`pendingAnswers`) and the `outcome`."
        ),
    )
    def post(self, request, contractId: str) -> Response:
        arrived_at = timezone.now()
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        serializer = ResumeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source, reason = serializer.validated_data["source"], serializer.validated_data["reason"]
        key = request.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(key):
            raise InvalidInput(
                "Idempotency-Key must be 1 to 255 visible ASCII characters.",
                fields={"Idempotency-Key": ["1 to 255 visible ASCII characters."]},
            )
        daemon = scoping.daemon_of(request)
        answer = resume_supervisor(
            contract_uuid,
            source=source,
            reason=reason,
            actor=actor_of(request),
            render=context_body,
            daemon_id=daemon.daemon_id if daemon is not None else None,
            idempotency_key=key,
            arrived_at=arrived_at,
        )
        return Response(answer.body, status=answer.status)
