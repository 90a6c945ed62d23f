"""A supervisor's questions to the human, and the answers waiting for the daemon."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from supervisors.api import examples, scoping
from supervisors.api.serializers import (
    AnswerSerializer,
    AskQuestionResponseSerializer,
    PendingQuestionOutSerializer,
    PendingQuestionSerializer,
    QuestionAnswerSerializer,
)
from supervisors.selectors import unacknowledged_answers
from supervisors.services.actors import Actor
from supervisors.services.questions import (
    acknowledge_answer,
    add_supervisor_pending_question,
    clear_pending_question,
    remove_supervisor_pending_question,
)

from .base import BODY_ERRORS, EPOCH, ApiView, append_of, errors, fenced_write


def actor_of(request) -> Actor:
    """Who makes this request's change: the daemon, or the staff user (recorded with answers and events)."""
    daemon = scoping.daemon_of(request)
    return daemon.actor if daemon is not None else Actor.staff(request.user)


class QuestionsView(ApiView):
    staff_permissions = {
        "GET": ["supervisors.view_supervisorstate"],
        "POST": ["supervisors.change_supervisorstate"],
    }

    @extend_schema(
        operation_id="supervisor_questions_list",
        summary="List pending questions",
        examples=examples.QUESTIONS_LIST,
        responses={200: PendingQuestionOutSerializer(many=True), **errors(404)},
        description="The questions waiting for the human.",
    )
    def get(self, request, contractId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        supervisor = scoping.get_supervisor(request, contract_uuid)
        return Response(supervisor.pending_questions or [])

    @extend_schema(
        operation_id="supervisor_question_ask",
        summary="Ask the human a question",
        examples=examples.QUESTION_ASK,
        parameters=[EPOCH],
        request=PendingQuestionSerializer,
        responses={
            200: OpenApiResponse(AskQuestionResponseSerializer, description="Already pending (same id)."),
            201: AskQuestionResponseSerializer,
            **fenced_write(
                404, *BODY_ERRORS, conflicts=["conflict", "question_already_answered", "conversation_length_mismatch"]
            ),
        },
        description="Ask the human a question (save point). Re-asking with the same id is harmless (and appends "
        "nothing). `conversationAppend`: messages for the conversation, in the same transaction.",
    )
    def post(self, request, contractId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        serializer = PendingQuestionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        _, question, created = add_supervisor_pending_question(
            contract_uuid,
            serializer.to_wire(),
            fence=scoping.fence_of(request),
            actor=actor_of(request),
            append=append_of(serializer.validated_data),
        )
        return Response(
            {"question": question, "created": created},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class QuestionView(ApiView):
    staff_permissions = {"DELETE": ["supervisors.change_supervisorstate"]}

    @extend_schema(
        operation_id="supervisor_question_withdraw",
        summary="Withdraw a pending question",
        parameters=[EPOCH],
        responses={
            204: OpenApiResponse(description="Withdrawn: the question is no longer pending (no body)."),
            **fenced_write(404, conflicts=["conflict", "question_already_answered"]),
        },
        description="Withdraw a pending question without an answer.",
    )
    def delete(self, request, contractId: str, questionId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        question_uuid = scoping.parse_path_uuid(questionId, "questionId")
        remove_supervisor_pending_question(
            contract_uuid, question_uuid, actor=actor_of(request), fence=scoping.fence_of(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnswerView(ApiView):
    staff_permissions = {"POST": ["supervisors.answer_question"]}

    @extend_schema(
        operation_id="supervisor_question_answer",
        summary="Answer a pending question",
        examples=examples.QUESTION_ANSWER,
        parameters=[EPOCH],
        request=AnswerSerializer,
        responses={
            200: QuestionAnswerSerializer,
            **fenced_write(
                404, *BODY_ERRORS, conflicts=["conflict", "question_already_answered", "conversation_length_mismatch"]
            ),
        },
        description="Answer a pending question (save point); the daemon picks the answer up from answers/. "
        "`conversationAppend`: messages for the conversation, in the same transaction.",
    )
    def post(self, request, contractId: str, questionId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        question_uuid = scoping.parse_path_uuid(questionId, "questionId")
        serializer = AnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        answer = clear_pending_question(
            contract_uuid,
            question_uuid,
            answer=serializer.validated_data["answer"],
            actor=actor_of(request),
            fence=scoping.fence_of(request),
            append=append_of(serializer.validated_data),
        )
        return Response(QuestionAnswerSerializer(answer).data)


class AnswersView(ApiView):
    @extend_schema(
        operation_id="supervisor_answers_list",
        summary="List answers not yet acknowledged",
        examples=examples.ANSWERS_LIST,
        responses={200: QuestionAnswerSerializer(many=True), **errors(404)},
        description="Answers the daemon has not acknowledged yet, oldest first.",
    )
    def get(self, request, contractId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        scoping.require_supervisor(request, contract_uuid)
        return Response(QuestionAnswerSerializer(unacknowledged_answers(contract_uuid), many=True).data)


class AnswerAckView(ApiView):
    staff_permissions = {"POST": ["supervisors.change_supervisorstate"]}

    @extend_schema(
        operation_id="supervisor_answer_ack",
        summary="Acknowledge an answer",
        examples=examples.ANSWER_ACK,
        parameters=[EPOCH],
        request=None,
        responses={200: QuestionAnswerSerializer, **fenced_write(404)},
        description="The daemon received this answer (idempotent).",
    )
    def post(self, request, contractId: str, questionId: str) -> Response:
        contract_uuid = scoping.parse_path_uuid(contractId, "contractId")
        question_uuid = scoping.parse_path_uuid(questionId, "questionId")
        answer = acknowledge_answer(
            contract_uuid, question_uuid, fence=scoping.fence_of(request), actor=actor_of(request)
        )
        return Response(QuestionAnswerSerializer(answer).data)
