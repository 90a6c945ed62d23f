"""Minimal contracts and tasks endpoints, and the lists across supervisors."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from supervisors.api import examples, scoping
from supervisors.api.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PAGE_HEADERS,
    PageParamsSerializer,
    check_query,
    paginated,
)
from supervisors.api.serializers import (
    ContractSerializer,
    PendingQuestionOutSerializer,
    ReportedStateField,
    SupervisorStateSerializer,
    TaskSerializer,
    TaskStatusSerializer,
    reported_state,
    stored_state_field,
)
from supervisors.enums import SupervisorStatus
from supervisors.selectors import pending_questions_overview, stale_q
from supervisors.services.errors import NotFound
from supervisors.services.world import create_contract, create_task, update_task_status

from .base import BODY_ERRORS, ApiView, errors


class ContractsView(ApiView):
    staff_permissions = {"POST": ["supervisors.add_contract"]}

    @extend_schema(
        operation_id="contract_create",
        summary="Create a contract",
        examples=examples.CONTRACT_CREATE,
        description=(
            "Create a contract (a unit of work moving through phases) and get its `id`. Next, create its supervisor "
            "task (`POST /api/v1/tasks/` with `isSupervisor: true`; without `daemonId` it runs on you), then save "
            "the supervisor's state with `PUT contracts/{contractId}/supervisor/`. `status` defaults to `active`."
        ),
        request=ContractSerializer,
        responses={201: ContractSerializer, **errors(*BODY_ERRORS)},
    )
    def post(self, request) -> Response:
        serializer = ContractSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contract = create_contract(**serializer.validated_data)
        return Response(ContractSerializer(contract).data, status=status.HTTP_201_CREATED)


class ContractView(ApiView):
    staff_permissions = {"GET": ["supervisors.view_contract"]}

    @extend_schema(
        operation_id="contract_get",
        summary="Read a contract",
        examples=examples.CONTRACT_GET,
        description=(
            "A contract you can see: one whose supervisor task runs on you, or one with no supervisor task yet. "
            "Any other contract is 404, exactly as if it did not exist. Staff see every contract."
        ),
        responses={200: ContractSerializer, **errors(404)},
    )
    def get(self, request, contractId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        contract = scoping.visible_contracts(request).filter(pk=contract_uuid).first()
        if contract is None:
            raise NotFound(f"Contract {contract_uuid} does not exist.")
        return Response(ContractSerializer(contract).data)


class TasksView(ApiView):
    staff_permissions = {"POST": ["supervisors.add_task"]}

    @extend_schema(
        operation_id="task_create",
        summary="Create a task",
        examples=examples.TASK_CREATE,
        request=TaskSerializer,
        responses={
            201: TaskSerializer,
            **errors(
                404,
                *BODY_ERRORS,
                conflicts=["supervisor_exists", "bad_reference"],
                forbidden="supervisor_task_for_another_daemon",
            ),
        },
        description=(
            "A task of a contract this daemon supervises (or of a contract with no supervisor task yet). Without "
            "`daemonId` the task runs on the calling daemon. A contract has one supervisor task "
            "(`isSupervisor`): a second is 409 `supervisor_exists`, and a daemon creates one only for itself."
        ),
    )
    def post(self, request) -> Response:
        serializer = TaskSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = create_task(**serializer.validated_data, caller_daemon_id=scoping.daemon_id_of(request))
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)


class TaskView(ApiView):
    staff_permissions = {"GET": ["supervisors.view_task"]}

    @extend_schema(
        operation_id="task_get",
        summary="Read a task",
        examples=examples.TASK_GET,
        description=(
            "A task you can see: one that runs on you, or any task of a contract you supervise; any other task is "
            "404, exactly as if it did not exist. `completedAt` is set while the task is `done` or `failed`."
        ),
        responses={200: TaskSerializer, **errors(404)},
    )
    def get(self, request, taskId: str) -> Response:
        task_uuid = scoping.parse_path_uuid(taskId, "taskId")
        task = scoping.visible_tasks(request).filter(pk=task_uuid).first()
        if task is None:
            raise NotFound(f"Task {task_uuid} does not exist.")
        return Response(TaskSerializer(task).data)


class TaskStatusView(ApiView):
    staff_permissions = {"POST": ["supervisors.change_task"]}

    @extend_schema(
        operation_id="task_status_update",
        summary="Change a task's status",
        examples=examples.TASK_STATUS,
        description=(
            "Report a task's new status: a task that runs on you, or any task of a contract you supervise (else "
            "404). `done` and `failed` set `completedAt` (another status clears it); a supervisor waiting on the "
            "task (its `pendingTaskIds`) learns at its next resume that it finished."
        ),
        request=TaskStatusSerializer,
        responses={200: TaskSerializer, **errors(404, *BODY_ERRORS)},
    )
    def post(self, request, taskId: str) -> Response:
        task_uuid = scoping.parse_path_uuid(taskId, "taskId")
        serializer = TaskStatusSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = update_task_status(
            task_uuid, serializer.validated_data["status"], daemon_id=scoping.daemon_id_of(request)
        )
        return Response(TaskSerializer(task).data)


@extend_schema_field(OpenApiTypes.BOOL)
class QueryBooleanField(serializers.Field):
    """A boolean query parameter, spelt ``true`` or ``false`` (what generated clients send); else a 400."""

    def to_internal_value(self, data: Any) -> bool:
        if data not in ("true", "false"):
            raise serializers.ValidationError("Must be true or false.")
        return data == "true"


class SupervisorFilterSerializer(PageParamsSerializer):
    state = serializers.ChoiceField(choices=SupervisorStatus.choices, required=False)
    # Matched exactly as given: a value no phase has (whitespace included) finds nothing, it is not an error.
    phase = serializers.CharField(max_length=50, required=False, min_length=1, trim_whitespace=False)
    stale = QueryBooleanField(
        required=False, help_text="true: only supervisors silent past the stale threshold; false: only the others."
    )


class SupervisorsView(ApiView):
    @extend_schema(
        operation_id="supervisors_list",
        summary="List supervisors",
        examples=examples.SUPERVISORS_LIST,
        parameters=[SupervisorFilterSerializer, *PAGE_HEADERS],
        responses={200: SupervisorStateSerializer(many=True), **errors()},
        description=f"The supervisors visible to the caller, filtered, by contract id. Paginated: `limit` "
        f"(default {DEFAULT_LIMIT}, at most {MAX_LIMIT}) and `offset`; the total is in `X-Total-Count`, the "
        "next page in `Link`.",
    )
    def get(self, request) -> Response:
        data = check_query(request, SupervisorFilterSerializer)
        queryset = scoping.visible_supervisors(request).defer("conversation_history").order_by("contract_id")
        if "state" in data:
            queryset = queryset.filter(state=data["state"])
        if "phase" in data:
            queryset = queryset.filter(phase=data["phase"])
        if "stale" in data:
            queryset = queryset.filter(stale_q()) if data["stale"] else queryset.exclude(stale_q())
        return paginated(request, self, queryset, lambda rows: SupervisorStateSerializer(rows, many=True).data)


class OverviewItemSerializer(serializers.Serializer):
    contractId = serializers.UUIDField()
    contractName = serializers.CharField()
    supervisorId = serializers.UUIDField()
    state = ReportedStateField()
    storedState = stored_state_field()
    phase = serializers.CharField()
    question = PendingQuestionOutSerializer()


class PendingQuestionsView(ApiView):
    @extend_schema(
        operation_id="supervisors_pending_questions",
        summary="List pending questions across supervisors",
        examples=examples.PENDING_QUESTIONS,
        parameters=[PageParamsSerializer, *PAGE_HEADERS],
        responses={200: OverviewItemSerializer(many=True), **errors()},
        description="The pending questions across the supervisors visible to the caller, oldest first. "
        f"Paginated: `limit` (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}) and `offset`; the total is in "
        "`X-Total-Count`, the next page in `Link`.",
    )
    def get(self, request) -> Response:
        check_query(request, PageParamsSerializer)
        mine = scoping.visible_supervisors(request) if scoping.daemon_of(request) is not None else None
        items = pending_questions_overview(mine)
        return paginated(request, self, items, lambda rows: [_overview_item(item) for item in rows])


def _overview_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "contractId": str(item["contract_id"]),
        "contractName": item["contract_name"],
        "supervisorId": str(item["supervisor_id"]),
        "state": reported_state(item["state"]),
        "storedState": item["state"],
        "phase": item["phase"],
        "question": item["question"],
    }
