"""The supervisor of a contract: read, full save, partial update, heartbeat, spawned tasks, phase, validation."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from supervisors.api import examples, scoping
from supervisors.api.authentication import DaemonPrincipal
from supervisors.api.lean import LeanDaemonPost, compact_json
from supervisors.api.serializers import (
    AppendResponseSerializer,
    ConversationAppendSerializer,
    HeartbeatResponseSerializer,
    HeartbeatSerializer,
    PhaseSerializer,
    SaveSupervisorStateSerializer,
    SpawnedTaskSerializer,
    StateValidationResultSerializer,
    SupervisorStateSerializer,
    UpdateSupervisorStateSerializer,
    questions_to_wire,
    validate_heartbeat,
)
from supervisors.models import SupervisorState
from supervisors.services.conversation_append import append_conversation_messages
from supervisors.services.errors import InvalidInput, NotFound
from supervisors.services.state import (
    add_supervisor_spawned_task,
    save_supervisor_state,
    state_version,
    update_supervisor_detailed_state,
    update_supervisor_heartbeat_state,
    update_supervisor_phase,
)
from supervisors.services.validation import validate_supervisor_state
from supervisors.services.world import PendingCount

from .base import (
    BODY_ERRORS,
    EPOCH,
    ETAG,
    IF_MATCH,
    ApiView,
    append_of,
    errors,
    etag,
    fenced_write,
    if_match,
    json_body,
)
from .questions import actor_of

OK_BODY = compact_json({"ok": True})

INCLUDE = OpenApiParameter(
    "include",
    str,
    enum=["conversationHistory"],
    required=False,
    description="`conversationHistory` to include the (possibly large) conversation history.",
)


def state_response(supervisor: SupervisorState, *, include_history: bool = False, code: int = 200) -> Response:
    body = SupervisorStateSerializer(supervisor, include_history=include_history).data
    return Response(body, status=code, headers={"ETag": etag(state_version(supervisor))})


class SupervisorView(ApiView):
    staff_permissions = {
        "GET": ["supervisors.view_supervisorstate"],
        "PUT": ["supervisors.change_supervisorstate", "supervisors.add_supervisorstate"],
        "PATCH": ["supervisors.change_supervisorstate"],
    }

    @extend_schema(
        operation_id="supervisor_get",
        summary="Read a supervisor's state",
        examples=examples.SUPERVISOR_GET,
        parameters=[INCLUDE, ETAG],
        responses={200: SupervisorStateSerializer, **errors(404)},
        description="The supervisor's state, with its version in the ETag header.",
    )
    def get(self, request, contractId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        include = request.query_params.get("include")
        if include not in (None, "conversationHistory"):
            raise InvalidInput(
                "include accepts only conversationHistory.", fields={"include": ["Only conversationHistory."]}
            )
        include_history = include is not None
        supervisor = scoping.get_supervisor(request, contract_uuid, with_history=include_history)
        return state_response(supervisor, include_history=include_history)

    @extend_schema(
        operation_id="supervisor_save",
        summary="Save a supervisor's whole state",
        examples=examples.SUPERVISOR_SAVE,
        parameters=[IF_MATCH, EPOCH, ETAG],
        request=SaveSupervisorStateSerializer,
        responses={
            200: SupervisorStateSerializer,
            201: SupervisorStateSerializer,
            **fenced_write(404, 412, *BODY_ERRORS, conflicts=["bad_reference", "question_already_answered"]),
        },
        description="Save the whole state (UPSERT). A new supervisor's task must be one of this daemon's.",
    )
    def put(self, request, contractId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        serializer = SaveSupervisorStateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data["pending_questions"] = questions_to_wire(data["pending_questions"])
        fence = scoping.fence_of(request)
        saved = save_supervisor_state(
            contract_id=contract_uuid, expected_version=if_match(request), fence=fence, actor=actor_of(request), **data
        )
        return state_response(saved.supervisor, code=status.HTTP_201_CREATED if saved.created else status.HTTP_200_OK)

    @extend_schema(
        operation_id="supervisor_update",
        summary="Update some fields of a supervisor's state",
        examples=examples.SUPERVISOR_UPDATE,
        parameters=[IF_MATCH, EPOCH, ETAG],
        request=UpdateSupervisorStateSerializer,
        responses={
            200: SupervisorStateSerializer,
            **fenced_write(
                404,
                412,
                *BODY_ERRORS,
                conflicts=["bad_reference", "question_already_answered", "conversation_length_mismatch", "conflict"],
            ),
        },
        description="Change only the fields sent (the seed's UpdateSupervisorStateRequest). `conversationAppend` "
        "appends messages to the stored conversation instead of replacing it (not with `conversationHistory`).",
    )
    def patch(self, request, contractId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        serializer = UpdateSupervisorStateSerializer(data=json_body(request))
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        append = append_of(changes)
        changes.pop("conversation_append", None)
        if "pending_questions" in changes:
            changes["pending_questions"] = questions_to_wire(changes["pending_questions"])
        supervisor = update_supervisor_detailed_state(
            contract_uuid,
            changes,
            expected_version=if_match(request),
            fence=scoping.fence_of(request),
            actor=actor_of(request),
            append=append,
        )
        return state_response(supervisor)


class ConversationView(ApiView):
    """The delta form: new messages only, appended in the database (issue 12, "save points cost what changed")."""

    staff_permissions = {"POST": ["supervisors.change_supervisorstate"]}

    @extend_schema(
        operation_id="supervisor_conversation_append",
        summary="Append messages to the conversation",
        examples=examples.CONVERSATION_APPEND,
        parameters=[IF_MATCH, EPOCH, ETAG],
        request=ConversationAppendSerializer,
        responses={
            200: AppendResponseSerializer,
            **fenced_write(404, 412, *BODY_ERRORS, conflicts=["conversation_length_mismatch", "conflict"]),
        },
        description="Append `messages` to the stored conversation if it holds `expectedLength` messages now; "
        "the rest of the history is neither sent nor read. Not a save point (no checkpoint, no event); save "
        "points take the same form as `conversationAppend`. `conflict`: the stored history is not an array "
        "(only a full save repairs it).",
    )
    def post(self, request, contractId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        serializer = ConversationAppendSerializer(data=json_body(request))
        serializer.is_valid(raise_exception=True)
        appended = append_conversation_messages(
            contract_uuid,
            append_of(serializer.validated_data, field=""),
            expected_version=if_match(request),
            fence=scoping.fence_of(request),
        )
        return Response(
            {"conversationLength": appended.length}, headers={"ETag": etag(state_version(appended.supervisor))}
        )


class HeartbeatView(LeanDaemonPost, ApiView):
    """The hot path: one UPDATE scoped to the daemon, nothing read first (daemons take the lean dispatch)."""

    staff_permissions = {"POST": ["supervisors.change_supervisorstate"]}

    @extend_schema(
        operation_id="supervisor_heartbeat",
        summary="Supervisor heartbeat",
        examples=examples.SUPERVISOR_HEARTBEAT,
        parameters=[EPOCH],
        request=HeartbeatSerializer,
        responses={200: HeartbeatResponseSerializer, **fenced_write(404, *BODY_ERRORS)},
        description="The supervisor is alive: state, currentActivity and progress (no checkpoint is taken).",
    )
    def post(self, request, contractId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        data = validate_heartbeat(request.data)
        fence = scoping.fence_of(request)
        update_supervisor_heartbeat_state(contract_uuid, **data, daemon_id=fence.daemon_id, epoch=fence.epoch)
        return Response({"ok": True})

    counts_in_write = True

    def lean_post(
        self,
        principal: DaemonPrincipal,
        data: Any,
        *,
        contractId: str,
        meta: dict[str, Any],
        count: PendingCount | None = None,
    ) -> bytes:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        epoch = scoping.epoch_of(meta)
        if not update_supervisor_heartbeat_state(
            contract_uuid, **validate_heartbeat(data), daemon_id=principal.daemon_id, count=count, epoch=epoch
        ):
            raise NotFound(f"Contract {contract_uuid} has no supervisor visible to you.")  # throttled: 429 wins
        return OK_BODY


class SpawnedTaskView(ApiView):
    staff_permissions = {"POST": ["supervisors.change_supervisorstate"]}

    @extend_schema(
        operation_id="supervisor_task_spawned",
        summary="Record a spawned task",
        examples=examples.TASK_SPAWNED,
        parameters=[EPOCH],
        request=SpawnedTaskSerializer,
        responses={
            200: SupervisorStateSerializer,
            **fenced_write(404, *BODY_ERRORS, conflicts=["bad_reference", "conversation_length_mismatch", "conflict"]),
        },
        description="A task was spawned (save point); with `wait` the supervisor also waits on it. "
        "`conversationAppend`: messages for the conversation, in the same transaction.",
    )
    def post(self, request, contractId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        serializer = SpawnedTaskSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        supervisor = add_supervisor_spawned_task(
            contract_uuid,
            data["task_id"],
            wait=data["wait"],
            fence=scoping.fence_of(request),
            actor=actor_of(request),
            append=append_of(data),
        )
        return state_response(supervisor)


class PhaseView(ApiView):
    staff_permissions = {"POST": ["supervisors.change_supervisorstate"]}

    @extend_schema(
        operation_id="supervisor_phase_changed",
        summary="Record a phase change",
        examples=examples.PHASE_CHANGED,
        parameters=[EPOCH],
        request=PhaseSerializer,
        responses={
            200: SupervisorStateSerializer,
            **fenced_write(404, *BODY_ERRORS, conflicts=["conversation_length_mismatch", "conflict"]),
        },
        description="The contract's phase changed (save point). `conversationAppend`: messages for the "
        "conversation, in the same transaction.",
    )
    def post(self, request, contractId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        serializer = PhaseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        supervisor = update_supervisor_phase(
            contract_uuid,
            serializer.validated_data["phase"],
            fence=scoping.fence_of(request),
            actor=actor_of(request),
            append=append_of(serializer.validated_data),
        )
        return state_response(supervisor)


class ValidationView(ApiView):
    @extend_schema(
        operation_id="supervisor_validate",
        summary="Validate a supervisor's state",
        examples=examples.VALIDATE,
        responses={200: StateValidationResultSerializer, **errors(404)},
        description="What a restoration would find, without changing anything.",
    )
    def get(self, request, contractId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        supervisor = scoping.get_supervisor(request, contract_uuid, with_history=True)
        result = validate_supervisor_state(supervisor)
        return Response(
            {
                "isValid": result.is_valid,
                "issues": list(result.issues),
                "recoveryAction": str(result.recovery_action),
                "warnings": list(result.warnings),
            }
        )


__all__ = ["ConversationView", "HeartbeatView", "PhaseView", "SpawnedTaskView", "SupervisorView", "ValidationView"]
