"""resume: run the restoration protocol for a daemon, at most once per Idempotency-Key."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from supervisors.api import scoping
from supervisors.api.serializers import RestorationContextSerializer, ResumeSerializer
from supervisors.enums import RestorationSource
from supervisors.models import Daemon, SupervisorState
from supervisors.services.errors import Conflict, InvalidInput, NotFound
from supervisors.services.restoration import RestorationResult, restore_supervisor
from supervisors.services.world import (
    find_idempotent_response,
    is_daemon_gone,
    request_fingerprint,
    store_idempotent_response,
)

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
    ctx = result.context
    return {
        "success": ctx.success,
        "previousState": str(ctx.previous_state),
        "conversationHistory": ctx.conversation_history,
        "pendingQuestions": list(ctx.pending_questions),
        "waitingTaskIds": [str(t) for t in ctx.waiting_task_ids],
        "spawnedTaskIds": [str(t) for t in ctx.spawned_task_ids],
        "restorationCount": ctx.restoration_count,
        "restorationContextMessage": ctx.restoration_context_message,
        "warnings": list(ctx.warnings),
        "recoveryAction": str(result.recovery_action),
        "checkpointId": result.checkpoint_id,
    }


def _restored_meanwhile(seen: SupervisorState | None, locked: dict[str, Any], *, debounce: bool) -> bool:
    """Another resume got there first: restored since this request looked, or (without an
    Idempotency-Key, so no other way to tell a duplicate) within API_RESUME_DEBOUNCE_SECONDS."""
    if seen is not None and locked["restoration_count"] != seen.restoration_count:
        return True
    window = settings.API_RESUME_DEBOUNCE_SECONDS
    last = locked["last_restored_at"]
    return debounce and window > 0 and last is not None and last > timezone.now() - timedelta(seconds=window)


class ResumeView(ApiView):
    staff_permissions = {"POST": ["supervisors.restore_supervisor"]}

    @extend_schema(
        operation_id="supervisor_resume",
        parameters=[IDEMPOTENCY_KEY],
        request=ResumeSerializer,
        responses={200: RestorationContextSerializer, **errors(404, 409, *BODY_ERRORS)},
        description=(
            "Run the restoration protocol and return the SupervisorRestorationContext. A daemon may resume its own "
            "supervisors, and with source `task_reassignment` one whose daemon is gone (disconnected or silent past "
            "DAEMON_GONE_AFTER_SECONDS): the supervisor task then moves to it. Two concurrent resumes never restore "
            "twice: the later one gets 409 `restored_concurrently`, or the first answer with the same Idempotency-Key. "
            "Without an Idempotency-Key, a resume within API_RESUME_DEBOUNCE_SECONDS (default 5) of the last "
            "restoration is treated as a duplicate (409)."
        ),
    )
    def post(self, request, contractId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        serializer = ResumeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source, reason = serializer.validated_data["source"], serializer.validated_data["reason"]
        key = request.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(key):
            raise InvalidInput(
                "Idempotency-Key must be 1 to 255 visible ASCII characters.",
                fields={"idempotency_key": ["1 to 255 visible ASCII characters."]},
            )
        daemon = scoping.daemon_of(request)
        seen = (
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
            .filter(contract_id=contract_uuid)
            .first()
        )
        assign_to: Daemon | None = None
        if daemon is not None:
            if seen is None:
                raise NotFound(f"Contract {contract_uuid} has no supervisor visible to you.")
            if seen.task.daemon_id != daemon.daemon_id:
                if source != RestorationSource.TASK_REASSIGNMENT or not is_daemon_gone(seen.task.daemon):
                    raise NotFound(f"Contract {contract_uuid} has no supervisor visible to you.")
                assign_to = Daemon.objects.get(pk=daemon.daemon_id)
        fingerprint = request_fingerprint("resume", str(contract_uuid), source, reason)
        refusal: Conflict | None = None
        try:
            with transaction.atomic():
                # Serialise with any other resume (or write) of this supervisor before deciding anything.
                locked = (
                    SupervisorState.objects.select_for_update()
                    .filter(contract_id=contract_uuid)
                    .values("restoration_count", "last_restored_at")
                    .first()
                )
                if key is not None and daemon is not None:
                    stored = find_idempotent_response(daemon_id=daemon.daemon_id, key=key, fingerprint=fingerprint)
                    if stored is not None:
                        return Response(stored.body, status=stored.status)
                if locked is not None and _restored_meanwhile(seen, locked, debounce=key is None):
                    raise Conflict(
                        "The supervisor was restored by a concurrent request; fetch its state instead.",
                        code="restored_concurrently",
                    )
                try:
                    result = restore_supervisor(
                        contract_uuid, source=source, actor=actor_of(request), reason=reason, assign_to_daemon=assign_to
                    )
                except Conflict as exc:
                    refusal = exc  # the service logged the refusal: let that commit, then answer 409
                else:
                    body = context_body(result)
                    if key is not None and daemon is not None:
                        store_idempotent_response(
                            daemon_id=daemon.daemon_id,
                            key=key,
                            fingerprint=fingerprint,
                            supervisor_id=result.supervisor_id,
                            status=200,
                            body=body,
                        )
        except IntegrityError:
            # The same key committed by a concurrent request first: this one's work was rolled back.
            stored = find_idempotent_response(daemon_id=daemon.daemon_id, key=key, fingerprint=fingerprint)
            if stored is None:
                raise
            return Response(stored.body, status=stored.status)
        if refusal is not None:
            raise refusal
        return Response(body)
