"""Minimal contracts and tasks endpoints, and the lists across supervisors."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from supervisors.api import scoping
from supervisors.api.serializers import (
    ContractSerializer,
    PendingQuestionOutSerializer,
    SupervisorStateSerializer,
    TaskSerializer,
    TaskStatusSerializer,
)
from supervisors.enums import SupervisorStatus
from supervisors.selectors import pending_questions_overview, stale_q
from supervisors.services.errors import InvalidInput, NotFound
from supervisors.services.world import create_contract, create_task, update_task_status

from .base import BODY_ERRORS, ApiView, errors


class Page(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


class ContractsView(ApiView):
    staff_permissions = {"POST": ["supervisors.add_contract"]}

    @extend_schema(
        operation_id="contract_create",
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

    @extend_schema(operation_id="contract_get", responses={200: ContractSerializer, **errors(404)})
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
        request=TaskSerializer,
        responses={201: TaskSerializer, **errors(404, *BODY_ERRORS)},
        description="A task of a contract this daemon supervises (or of a contract with no supervisor task yet).",
    )
    def post(self, request) -> Response:
        serializer = TaskSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if not scoping.visible_contracts(request).filter(pk=data["contract_id"]).exists():
            raise NotFound(f"Contract {data['contract_id']} does not exist.", fields={"contract_id": ["Not found."]})
        task = create_task(**data)
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)


class TaskView(ApiView):
    staff_permissions = {"GET": ["supervisors.view_task"]}

    @extend_schema(operation_id="task_get", responses={200: TaskSerializer, **errors(404)})
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
        request=TaskStatusSerializer,
        responses={200: TaskSerializer, **errors(404, *BODY_ERRORS)},
    )
    def post(self, request, taskId: str) -> Response:
        task_uuid = scoping.parse_path_uuid(taskId, "taskId")
        serializer = TaskStatusSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not scoping.visible_tasks(request).filter(pk=task_uuid).exists():
            raise NotFound(f"Task {task_uuid} does not exist.")
        task = update_task_status(task_uuid, serializer.validated_data["status"])
        return Response(TaskSerializer(task).data)


class SupervisorFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=SupervisorStatus.choices, required=False)
    phase = serializers.CharField(max_length=50, required=False, min_length=1)
    stale = serializers.ChoiceField(choices=["true", "false"], required=False)
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    offset = serializers.IntegerField(min_value=0, required=False)


def _filters(request) -> dict[str, str]:
    """Query filters, strictly: an empty or unknown value is a 400, not "no filter"."""
    params = request.query_params
    known = {"state", "phase", "stale", "limit", "offset"}
    errors = {name: ["Unknown parameter."] for name in params if name not in known}
    values = {name: params[name] for name in ("state", "phase", "stale", "limit", "offset") if name in params}
    filters = SupervisorFilterSerializer(data=values)
    if not filters.is_valid() or errors:
        raise InvalidInput(
            "Invalid filters.", fields={**errors, **{k: [str(m) for m in v] for k, v in (filters.errors or {}).items()}}
        )
    return dict(filters.validated_data)


class SupervisorsView(ApiView):
    @extend_schema(
        operation_id="supervisors_list",
        parameters=[
            SupervisorFilterSerializer,
        ],
        responses={200: SupervisorStateSerializer(many=True), **errors()},
        description="The supervisors visible to the caller, filtered. Paginated: limit (max 1000) and offset.",
    )
    def get(self, request) -> Response:
        data = _filters(request)
        queryset = scoping.visible_supervisors(request).defer("conversation_history").order_by("contract_id")
        if "state" in data:
            queryset = queryset.filter(state=data["state"])
        if "phase" in data:
            queryset = queryset.filter(phase=data["phase"])
        if "stale" in data:
            queryset = queryset.filter(stale_q()) if data["stale"] == "true" else queryset.exclude(stale_q())
        page = Page()
        rows = page.paginate_queryset(queryset, request, view=self)
        response = Response(SupervisorStateSerializer(rows, many=True).data)
        response["X-Total-Count"] = str(page.count)
        return response


class OverviewItemSerializer(serializers.Serializer):
    contractId = serializers.UUIDField()
    contractName = serializers.CharField()
    supervisorId = serializers.UUIDField()
    state = serializers.CharField()
    phase = serializers.CharField()
    question = PendingQuestionOutSerializer()


class PendingQuestionsView(ApiView):
    @extend_schema(
        operation_id="supervisors_pending_questions",
        responses={200: OverviewItemSerializer(many=True), **errors()},
        description="Every pending question across the supervisors visible to the caller, oldest first.",
    )
    def get(self, request) -> Response:
        items = pending_questions_overview()
        daemon = scoping.daemon_of(request)
        if daemon is not None:
            mine = set(scoping.visible_supervisors(request).values_list("contract_id", flat=True))
            items = [item for item in items if item["contract_id"] in mine]
        return Response([_overview_item(item) for item in items])


def _overview_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "contractId": str(item["contract_id"]),
        "contractName": item["contract_name"],
        "supervisorId": str(item["supervisor_id"]),
        "state": item["state"],
        "phase": item["phase"],
        "question": item["question"],
    }
