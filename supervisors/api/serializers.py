"""The API's wire format: camelCase names given explicitly (``source=``), the seed's field names.

No renaming library walks the payloads: free JSON that the service stores for
the agent (the conversation history, a question's context) passes through
untouched, keys and all.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import MaxLengthValidator, RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from supervisors.enums import (
    ContractStatus,
    DaemonStatus,
    QuestionType,
    RecoveryAction,
    RestorationOutcome,
    RestorationSource,
    SupervisorStatus,
    TaskStatus,
)
from supervisors.validators import (
    MAX_PENDING_QUESTIONS,
    MAX_REPORTED_ERRORS,
    MAX_TASK_IDS,
    MAX_TEXT_LENGTH,
    validate_conversation_history,
)

PHASE_MAX = 50
MAX_BATCH = 10_000
TEXT_MAX = MAX_TEXT_LENGTH


# --- Strict JSON types -------------------------------------------------------------
# DRF coerces by default (0 -> "0", "5" -> 5, 1 -> True, false -> UUID(int=0)); a daemon
# sending the wrong JSON type has a bug it should hear about, and the schema says so.


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictUUIDField(serializers.UUIDField):
    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictDateTimeField(serializers.DateTimeField):
    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str):
            self.fail("invalid", format="RFC 3339")
        return super().to_internal_value(value)


# --- Shared pieces ----------------------------------------------------------------

#: Names and texts that must say something: a character Python's ``str.strip()`` keeps (what the services
#: check). Spelt out rather than ``\\S``, whose meaning differs between regex dialects (ECMA's keeps U+001C).
NOT_WHITESPACE = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
NOT_BLANK = RegexValidator(NOT_WHITESPACE, "Must contain a character other than whitespace.")


class ErrorSerializer(serializers.Serializer):
    """Every error response: a stable machine code, a message for humans, the offending inputs."""

    code = StrictCharField(help_text="Machine-readable, e.g. invalid, not_found, conflict, throttled.")
    message = StrictCharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=StrictCharField()),
        help_text="Messages per offending input, keyed by its camelCase name (nested: items.0.contractId).",
    )
    conversationLength = StrictIntegerField(
        required=False,
        help_text="Only with `conversation_length_mismatch`: how many messages the stored conversation holds.",
    )


#: One message of the agent's conversation: the only key the service relies on is ``role``; the rest is free JSON.
CONVERSATION_MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One message of the agent's conversation. Only `role` is checked; every other key is stored "
    "and returned untouched.",
    "properties": {"role": {"type": "string", "minLength": 1, "description": "Who spoke (user, assistant, ...)."}},
    "required": ["role"],
    "additionalProperties": True,
}


@extend_schema_field(
    {
        "type": "array",
        "items": {"$ref": "#/components/schemas/ConversationMessage"},
        "description": "The agent's conversation, stored and returned untouched: an array of message objects "
        "each with a non-empty string `role`.",
    }
)
class ConversationHistoryField(serializers.JSONField):
    """Free JSON, checked only for the shape restoration relies on, never rewritten."""

    def to_internal_value(self, data: Any) -> Any:
        try:
            validate_conversation_history(data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return data


class BoundedListField(serializers.ListField):
    """A list with a maximum length checked first, whose refusal names at most MAX_REPORTED_ERRORS elements.

    DRF's ListField validates every element before it looks at the length and
    reports each bad one: 100,000 bad ids made an 11.8 MB error body.
    """

    def __init__(self, *, max_length: int, **kwargs: Any) -> None:
        super().__init__(max_length=max_length, **kwargs)

    def to_internal_value(self, data: Any) -> list[Any]:
        if isinstance(data, (str, dict)) or not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        if len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return self.run_child_validation(data)

    def run_child_validation(self, data: list[Any]) -> list[Any]:
        result = []
        errors: dict[int, Any] = {}
        bad = 0
        first_unlisted = None
        for index, item in enumerate(data):
            try:
                result.append(self.child.run_validation(item))
            except serializers.ValidationError as exc:
                bad += 1
                if bad <= MAX_REPORTED_ERRORS:
                    errors[index] = exc.detail
                elif first_unlisted is None:
                    first_unlisted = index
        if not errors:
            return result
        if first_unlisted is not None:
            unlisted = bad - MAX_REPORTED_ERRORS
            errors[first_unlisted] = [f"This and {unlisted - 1} more bad elements after it are not listed."]
        raise serializers.ValidationError(errors)


def task_id_list(**kwargs: Any) -> BoundedListField:
    return BoundedListField(
        child=StrictUUIDField(),
        max_length=MAX_TASK_IDS,
        help_text=f"At most {MAX_TASK_IDS} task ids (setting SUPERVISOR_MAX_TASK_IDS).",
        **kwargs,
    )


def question_list(**kwargs: Any) -> serializers.ListSerializer:
    return FullPendingQuestionSerializer(
        many=True,
        max_length=MAX_PENDING_QUESTIONS,
        help_text=f"At most {MAX_PENDING_QUESTIONS} questions (setting SUPERVISOR_MAX_PENDING_QUESTIONS). An id "
        "listed twice is one question: the later listing, at the first one's position.",
        **kwargs,
    )


def _reject_unknown(serializer: serializers.Serializer, data: Any) -> None:
    """Unknown keys are a 400 naming them: a misspelt ``currentActivty`` must not be silently dropped."""
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(serializer.fields))
        if unknown:
            raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})


class StrictSerializer(serializers.Serializer):
    def to_internal_value(self, data: Any) -> Any:
        _reject_unknown(self, data)
        return super().to_internal_value(data)


# --- The conversation's delta form -----------------------------------------------------


@extend_schema_field(
    {
        "type": "array",
        "items": {"$ref": "#/components/schemas/ConversationMessage"},
        "minItems": 1,
        "description": "New messages for the end of the conversation, in order; each an object with a non-empty "
        "string `role`, stored untouched.",
    }
)
class AppendedMessagesField(ConversationHistoryField):
    """The messages of an append: a non-empty conversation of their own."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, list) and not data:
            raise serializers.ValidationError("Send at least one message.")
        return super().to_internal_value(data)


class ConversationAppendSerializer(StrictSerializer):
    """The delta form of the conversation: the new messages and the length the daemon believes stored."""

    expectedLength = StrictIntegerField(
        source="expected_length",
        min_value=0,
        max_value=2**31 - 1,
        help_text="How many messages the daemon believes the stored conversation has now. If it has another "
        "number, nothing is written and the answer is 409 `conversation_length_mismatch` with the stored "
        "`conversationLength`.",
    )
    messages = AppendedMessagesField()


def conversation_append_field() -> ConversationAppendSerializer:
    """The optional ``conversationAppend`` of a save point: new messages in the same transaction."""
    return ConversationAppendSerializer(
        source="conversation_append",
        required=False,
        help_text="Messages to append to the conversation in the same transaction, checked against the stored "
        "length (the delta form; see POST conversation/).",
    )


class AppendResponseSerializer(serializers.Serializer):
    conversationLength = StrictIntegerField(help_text="How many messages the conversation holds now.")


# --- Questions and answers -----------------------------------------------------------


class PendingQuestionSerializer(StrictSerializer):
    """The seed's PendingQuestion."""

    id = StrictUUIDField(required=False, help_text="Generated when omitted.")
    question = StrictCharField(max_length=10_000, trim_whitespace=False, validators=[NOT_BLANK])
    choices = BoundedListField(
        child=StrictCharField(max_length=1_000, trim_whitespace=False), max_length=50, default=list
    )
    context = StrictCharField(allow_null=True, allow_blank=True, required=False, default=None, trim_whitespace=False)
    questionType = serializers.ChoiceField(
        source="question_type", choices=QuestionType.choices, default=QuestionType.GENERAL
    )
    askedAt = StrictDateTimeField(source="asked_at", required=False, help_text="Now when omitted.")
    conversationAppend = conversation_append_field()

    def to_wire(self) -> dict[str, Any]:
        """The validated question in the camelCase form the services store."""
        return questions_to_wire([self.validated_data])[0]


class PublishedLimitListSerializer(serializers.ListSerializer):
    """DRF checks ``max_length`` itself, before the elements; drf-spectacular only publishes a list
    serializer's limit as maxItems when it finds it among the validators."""

    def get_validators(self) -> list[Any]:
        validators = list(super().get_validators())
        if self.max_length is not None:
            validators.append(MaxLengthValidator(self.max_length))
        return validators


class FullPendingQuestionSerializer(PendingQuestionSerializer):
    """A PendingQuestion inside a whole state: id and askedAt are given, as the seed's struct requires."""

    class Meta:
        list_serializer_class = PublishedLimitListSerializer

    id = StrictUUIDField()
    askedAt = StrictDateTimeField(source="asked_at")
    conversationAppend = None  # a question inside a state has no append of its own


class PendingQuestionOutSerializer(serializers.Serializer):
    """A stored PendingQuestion as the daemon gets it back (already camelCase in the database)."""

    id = StrictUUIDField()
    question = StrictCharField()
    choices = serializers.ListField(child=StrictCharField())
    context = StrictCharField(allow_null=True)
    questionType = serializers.ChoiceField(choices=QuestionType.choices)
    askedAt = StrictDateTimeField()


@extend_schema_field(PendingQuestionOutSerializer(many=True))
class StoredQuestionsField(serializers.JSONField):
    """Pending questions as stored (already camelCase), returned as they are."""


class AnswerSerializer(StrictSerializer):
    """A human's answer (the component is AnswerRequest: drf-spectacular adds Request to request bodies)."""

    answer = StrictCharField(max_length=TEXT_MAX, trim_whitespace=False, validators=[NOT_BLANK])
    conversationAppend = conversation_append_field()


class QuestionAnswerSerializer(serializers.Serializer):
    """A human's answer to a question, until the daemon acknowledges it."""

    questionId = StrictUUIDField(source="question_id")
    question = PendingQuestionOutSerializer()
    answer = StrictCharField()
    answeredAt = StrictDateTimeField(source="answered_at")
    acknowledgedAt = StrictDateTimeField(source="acknowledged_at", allow_null=True)


class AskQuestionResponseSerializer(serializers.Serializer):
    question = PendingQuestionOutSerializer()
    created = StrictBooleanField(help_text="False when a question with this id was already pending.")


# --- Supervisor state ---------------------------------------------------------------

#: ``state`` in a response when the stored value is none of SupervisorStateEnum's. makima itself writes the
#: table and may store a state this service does not know (newer makima, a bug); a generated client must
#: still parse the answer, so the value is reported as ``unknown`` and kept verbatim in ``storedState``.
UNKNOWN_STATE = "unknown"
_KNOWN_STATES = frozenset(SupervisorStatus.values)


def reported_state(stored: str | None) -> str:
    """A stored state as the API reports it: itself when known, else UNKNOWN_STATE."""
    return stored if stored in _KNOWN_STATES else UNKNOWN_STATE


@extend_schema_field(
    {
        "oneOf": [
            {"$ref": "#/components/schemas/SupervisorStateEnum"},
            {"$ref": "#/components/schemas/UnknownStateEnum"},
        ],
        "description": "The supervisor's state; `unknown` when the stored value is not one of "
        "SupervisorStateEnum's (then `storedState` has it, and a resume repairs it).",
    }
)
class ReportedStateField(serializers.Field):
    """The stored state, or ``unknown`` for a value outside the enum (read-only)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: str) -> str:
        return reported_state(value)


def stored_state_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(
        read_only=True,
        help_text="The state exactly as stored: equal to `state` unless that is `unknown`.",
        **kwargs,
    )


class SupervisorStateSerializer(serializers.Serializer):
    """The seed's SupervisorState; ``conversationHistory`` only with ``?include=conversationHistory``."""

    id = StrictUUIDField()
    contractId = StrictUUIDField(source="contract_id")
    taskId = StrictUUIDField(source="task_id")
    state = ReportedStateField()
    storedState = stored_state_field(source="state")
    phase = StrictCharField()
    currentActivity = StrictCharField(source="current_activity", allow_null=True)
    progress = StrictIntegerField(min_value=0, max_value=100)
    errorMessage = StrictCharField(source="error_message", allow_null=True)
    spawnedTaskIds = serializers.ListField(source="spawned_task_ids", child=StrictUUIDField())
    pendingTaskIds = serializers.ListField(source="pending_task_ids", child=StrictUUIDField())
    pendingQuestions = StoredQuestionsField(source="pending_questions")
    restorationCount = StrictIntegerField(source="restoration_count")
    lastRestoredAt = StrictDateTimeField(source="last_restored_at", allow_null=True)
    restorationSource = serializers.ChoiceField(
        source="restoration_source", choices=RestorationSource.choices, allow_null=True
    )
    lastActivity = StrictDateTimeField(source="last_activity")
    createdAt = StrictDateTimeField(source="created_at")
    updatedAt = StrictDateTimeField(source="updated_at")
    conversationHistory = ConversationHistoryField(source="conversation_history", required=False)

    def __init__(self, *args: Any, include_history: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.include_history = include_history

    @property
    def _readable_fields(self):
        """Skip the history when not asked for, without reading it (it is deferred: a query, maybe megabytes).

        The field stays declared, so the OpenAPI schema lists it (as optional) and clients get typed access.
        """
        for field in super()._readable_fields:
            if self.include_history or field.field_name != "conversationHistory":
                yield field


class SaveSupervisorStateSerializer(StrictSerializer):
    """PUT: the whole state (UPSERT by contract)."""

    taskId = StrictUUIDField(source="task_id")
    phase = StrictCharField(max_length=PHASE_MAX, validators=[NOT_BLANK])
    state = serializers.ChoiceField(choices=SupervisorStatus.choices)
    conversationHistory = ConversationHistoryField(source="conversation_history", default=list)
    pendingTaskIds = task_id_list(source="pending_task_ids", default=list)
    spawnedTaskIds = task_id_list(source="spawned_task_ids", default=list)
    pendingQuestions = question_list(source="pending_questions", default=list)
    currentActivity = StrictCharField(
        source="current_activity",
        allow_null=True,
        allow_blank=True,
        required=False,
        default=None,
        max_length=MAX_TEXT_LENGTH,
    )
    progress = StrictIntegerField(min_value=0, max_value=100, default=0)
    errorMessage = StrictCharField(
        source="error_message",
        allow_null=True,
        allow_blank=True,
        required=False,
        default=None,
        max_length=MAX_TEXT_LENGTH,
    )


class UpdateSupervisorStateSerializer(StrictSerializer):
    """PATCH: the seed's UpdateSupervisorStateRequest; only the keys sent change."""

    conversationHistory = ConversationHistoryField(source="conversation_history", required=False)
    pendingTaskIds = task_id_list(source="pending_task_ids", required=False)
    phase = StrictCharField(max_length=PHASE_MAX, required=False, validators=[NOT_BLANK])
    state = serializers.ChoiceField(choices=SupervisorStatus.choices, required=False)
    currentActivity = StrictCharField(
        source="current_activity",
        allow_null=True,
        allow_blank=True,
        required=False,
        max_length=MAX_TEXT_LENGTH,
    )
    progress = StrictIntegerField(min_value=0, max_value=100, required=False)
    errorMessage = StrictCharField(
        source="error_message",
        allow_null=True,
        allow_blank=True,
        required=False,
        max_length=MAX_TEXT_LENGTH,
    )
    spawnedTaskIds = task_id_list(source="spawned_task_ids", required=False)
    pendingQuestions = question_list(source="pending_questions", required=False)
    conversationAppend = conversation_append_field()


def questions_to_wire(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validated PendingQuestion dicts (snake_case sources) back to their stored camelCase form.

    An id listed twice is one question: the later listing, at the first one's position (as a batch
    heartbeat naming a contract twice). The schema cannot say "ids distinct", so the API does not refuse it.
    """
    by_id: dict[str, dict[str, Any]] = {}
    for q in questions:
        item = {
            "question": q["question"],
            "choices": q.get("choices") or [],
            "context": q.get("context"),
            "questionType": q.get("question_type", QuestionType.GENERAL),
        }
        if q.get("id") is not None:
            item["id"] = str(q["id"])
        if q.get("asked_at") is not None:
            item["askedAt"] = q["asked_at"].isoformat()
        by_id[item.get("id") or f"new-{len(by_id)}"] = item
    return list(by_id.values())


class HeartbeatSerializer(StrictSerializer):
    """A supervisor's heartbeat: the lightweight save point."""

    state = serializers.ChoiceField(choices=SupervisorStatus.choices)
    currentActivity = StrictCharField(
        source="current_activity",
        allow_null=True,
        allow_blank=True,
        required=False,
        default=None,
        max_length=TEXT_MAX,
    )
    progress = StrictIntegerField(min_value=0, max_value=100)


class HeartbeatResponseSerializer(serializers.Serializer):
    ok = StrictBooleanField()


class SpawnedTaskSerializer(StrictSerializer):
    taskId = StrictUUIDField(source="task_id")
    wait = StrictBooleanField(default=True, help_text="Also wait on it (add it to pendingTaskIds).")
    conversationAppend = conversation_append_field()


class PhaseSerializer(StrictSerializer):
    phase = StrictCharField(max_length=PHASE_MAX, validators=[NOT_BLANK])
    conversationAppend = conversation_append_field()


class ResumeSerializer(StrictSerializer):
    source = serializers.ChoiceField(choices=RestorationSource.choices)
    reason = StrictCharField(max_length=10_000, allow_blank=True, required=False, default="")


class PendingAnswerSerializer(serializers.Serializer):
    """An answer the human gave that the daemon has not acknowledged yet (it travels with every resume)."""

    questionId = StrictUUIDField()
    question = PendingQuestionOutSerializer(help_text="The PendingQuestion as it was asked.")
    answer = StrictCharField()
    answeredAt = StrictDateTimeField()
    answeredBy = StrictCharField(allow_null=True, help_text="The staff user or daemon that answered, when known.")


#: ``previousState`` of a supervisor that did not exist before its restoration (a fresh start).
NO_PREVIOUS_STATE = "none"


@extend_schema_field(
    {
        "oneOf": [
            {"$ref": "#/components/schemas/SupervisorStateEnum"},
            {"$ref": "#/components/schemas/NoPreviousStateEnum"},
            {"$ref": "#/components/schemas/UnknownStateEnum"},
        ],
        "description": "The state before the restoration; `none` when there was no supervisor state (a fresh start), "
        "`unknown` when the stored value was not one of SupervisorStateEnum's (`previousStoredState` has it).",
    }
)
class PreviousStateField(StrictCharField):
    """A supervisor state, ``none`` when the restoration created the supervisor, or ``unknown``."""


def previous_state_fields(previous: str) -> dict[str, Any]:
    """``previousState`` and ``previousStoredState`` of a restoration context, from the stored previous state."""
    if previous == NO_PREVIOUS_STATE:
        return {"previousState": NO_PREVIOUS_STATE, "previousStoredState": None}
    return {"previousState": reported_state(previous), "previousStoredState": previous}


class RestorationContextSerializer(serializers.Serializer):
    """The seed's SupervisorRestorationContext, plus how it was restored and the answers not yet acknowledged."""

    success = StrictBooleanField()
    previousState = PreviousStateField()
    previousStoredState = StrictCharField(
        allow_null=True,
        help_text="The state before the restoration exactly as it was stored (null for a fresh start): equal to "
        "previousState unless that is `unknown`.",
    )
    conversationHistory = ConversationHistoryField()
    pendingQuestions = PendingQuestionOutSerializer(many=True)
    waitingTaskIds = serializers.ListField(child=StrictUUIDField())
    spawnedTaskIds = serializers.ListField(child=StrictUUIDField())
    restorationCount = StrictIntegerField()
    restorationContextMessage = StrictCharField()
    warnings = serializers.ListField(child=StrictCharField())
    recoveryAction = serializers.ChoiceField(choices=RecoveryAction.choices)
    checkpointId = StrictIntegerField(allow_null=True)
    outcome = serializers.ChoiceField(
        choices=RestorationOutcome.choices,
        help_text="How the restoration ended: needs_person means blocked until an operator intervenes.",
    )
    pendingAnswers = PendingAnswerSerializer(
        many=True,
        help_text="Answers given and not yet acknowledged: act on them, then POST answers/{questionId}/ack/. "
        "A question that came back already answered is not in pendingQuestions; its answer is here.",
    )


class StateValidationResultSerializer(serializers.Serializer):
    """The seed's StateValidationResult."""

    isValid = StrictBooleanField()
    issues = serializers.ListField(child=StrictCharField())
    recoveryAction = serializers.ChoiceField(choices=RecoveryAction.choices)
    warnings = serializers.ListField(child=StrictCharField())


class PendingQuestionsOverviewItemSerializer(serializers.Serializer):
    contractId = StrictUUIDField()
    question = PendingQuestionOutSerializer()


# --- Daemons -------------------------------------------------------------------------


class SupervisorHeartbeatItemSerializer(HeartbeatSerializer):
    contractId = StrictUUIDField(source="contract_id")
    epoch = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=2**31 - 1,
        help_text="The epoch this daemon holds the supervisor at (its last resume's restorationCount): the "
        "heartbeat is written only at that epoch. Left out: at the epoch current when the statement runs.",
    )


class DaemonHeartbeatSerializer(StrictSerializer):
    """A daemon's own heartbeat, optionally carrying its supervisors' heartbeats (one statement)."""

    status = serializers.ChoiceField(choices=DaemonStatus.choices, default=DaemonStatus.CONNECTED)
    supervisors = SupervisorHeartbeatItemSerializer(
        many=True,
        default=list,
        max_length=MAX_BATCH,
        help_text="Heartbeats of this daemon's supervisors, applied in order: a contract listed twice gets the "
        "later item.",
    )


class ClaimSerializer(StrictSerializer):
    """How many orphaned supervisors the daemon can take on, and which."""

    capacity = StrictIntegerField(
        min_value=1,
        max_value=settings.FAILOVER_MAX_CLAIM,
        help_text="The most supervisors to take over in this claim (FAILOVER_MAX_CLAIM at most).",
    )
    states = serializers.ListField(
        child=serializers.ChoiceField(choices=SupervisorStatus.choices),
        required=False,
        allow_empty=False,
        min_length=1,
        max_length=len(SupervisorStatus.values),
        help_text="Only supervisors in these states (completed and FAILOVER_EXCLUDE_STATES are never claimed).",
    )
    contractIds = serializers.ListField(
        child=StrictUUIDField(),
        source="contract_ids",
        required=False,
        allow_empty=False,
        min_length=1,
        max_length=1000,
        help_text="Only these contracts' supervisors.",
    )


class ClaimedSupervisorSerializer(RestorationContextSerializer):
    """One supervisor taken over: its contract and its restoration context (with the new epoch)."""

    contractId = StrictUUIDField()


class ClaimResponseSerializer(serializers.Serializer):
    claimed = ClaimedSupervisorSerializer(many=True, help_text="Oldest activity first; empty when nothing is orphaned.")
    failed = serializers.ListField(
        child=StrictUUIDField(), help_text="Contracts whose supervisor was picked but failed to restore (retry later)."
    )


class DaemonMeSerializer(serializers.Serializer):
    """A daemon's own view: who it is, its lease, and how many supervisors it owns."""

    daemonId = StrictUUIDField()
    name = serializers.CharField()
    alive = serializers.BooleanField(
        help_text="Computed from the lease (always true for the caller: this request renews it)."
    )
    lastHeartbeatAt = StrictDateTimeField(allow_null=True, help_text="When the lease was last renewed.")
    leaseExpiresAt = StrictDateTimeField(
        allow_null=True,
        help_text="When the daemon counts as gone unless another request of its arrives (DAEMON_GONE_AFTER_SECONDS).",
    )
    supervisors = StrictIntegerField(help_text="Supervisors this daemon owns.")


class DaemonHeartbeatResponseSerializer(serializers.Serializer):
    daemonId = StrictUUIDField()
    status = serializers.ChoiceField(choices=DaemonStatus.choices)
    lastHeartbeatAt = StrictDateTimeField()
    supervisorsUpdated = StrictIntegerField(
        help_text="Supervisor heartbeats written (those of supervisors not on this daemon are ignored)."
    )
    supervisorsNotUpdated = serializers.ListField(
        child=StrictUUIDField(),
        help_text="Contracts of items that were not written: not this daemon's supervisor (any more), or at "
        "another epoch (superseded: resume before working on it again).",
    )


# --- Contracts and tasks ----------------------------------------------------------------


class ContractSerializer(serializers.Serializer):
    id = StrictUUIDField(read_only=True)
    name = StrictCharField(max_length=10_000, validators=[NOT_BLANK])
    phase = StrictCharField(max_length=PHASE_MAX, validators=[NOT_BLANK])
    status = serializers.ChoiceField(choices=ContractStatus.choices, default=ContractStatus.ACTIVE)
    createdAt = StrictDateTimeField(source="created_at", read_only=True)
    updatedAt = StrictDateTimeField(source="updated_at", read_only=True)

    def to_internal_value(self, data: Any) -> Any:
        _reject_unknown(self, data)
        return super().to_internal_value(data)


class TaskSerializer(serializers.Serializer):
    id = StrictUUIDField(read_only=True)
    contractId = StrictUUIDField(source="contract_id")
    parentTaskId = StrictUUIDField(source="parent_task_id", allow_null=True, required=False, default=None)
    daemonId = StrictUUIDField(source="daemon_id", allow_null=True, required=False, default=None)
    name = StrictCharField(max_length=10_000, validators=[NOT_BLANK])
    status = serializers.ChoiceField(choices=TaskStatus.choices, default=TaskStatus.PENDING)
    isSupervisor = StrictBooleanField(source="is_supervisor", default=False)
    createdAt = StrictDateTimeField(source="created_at", read_only=True)
    updatedAt = StrictDateTimeField(source="updated_at", read_only=True)
    completedAt = StrictDateTimeField(source="completed_at", read_only=True, allow_null=True)

    def to_internal_value(self, data: Any) -> Any:
        _reject_unknown(self, data)
        return super().to_internal_value(data)


class TaskStatusSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=TaskStatus.choices)


# --- The heartbeat hot path ----------------------------------------------------------------

_HEARTBEAT_KEYS = frozenset({"state", "currentActivity", "progress"})
_ITEM_KEYS = _HEARTBEAT_KEYS | {"contractId", "epoch"}
_STATES = frozenset(SupervisorStatus.values)


def validate_heartbeat(data: Any, *, with_contract: bool = False) -> dict[str, Any]:
    """What HeartbeatSerializer checks, without building a serializer: same rules, same error shape.

    Heartbeats are most of the traffic; a DRF serializer costs more than the UPDATE it feeds.
    HeartbeatSerializer stays the documented (OpenAPI) form of this body.
    """
    if not isinstance(data, dict):
        raise serializers.ValidationError({"non_field_errors": ["Expected an object."]})
    errors: dict[str, list[str]] = {}
    allowed = _ITEM_KEYS if with_contract else _HEARTBEAT_KEYS
    for key in data:
        if key not in allowed:
            errors[key] = ["Unknown field."]
    state = data.get("state")
    if state is None:
        errors["state"] = ["This field is required."]
    elif not isinstance(state, str) or state not in _STATES:
        errors["state"] = [f'"{state}" is not a valid choice.']
    activity = data.get("currentActivity")
    if activity is not None and (not isinstance(activity, str) or len(activity) > TEXT_MAX):
        errors["currentActivity"] = [f"Not a valid string of at most {TEXT_MAX} characters."]
    progress = data.get("progress")
    if progress is None:
        errors["progress"] = ["This field is required."]
    elif isinstance(progress, bool) or not isinstance(progress, int) or not 0 <= progress <= 100:
        errors["progress"] = ["A whole number from 0 to 100 is required."]
    out = {"state": state, "current_activity": activity, "progress": progress}
    if with_contract:
        epoch = data.get("epoch")
        if epoch is not None and (type(epoch) is not int or not 0 <= epoch < 2**31):
            errors["epoch"] = ["A non-negative whole number is required."]
        out["epoch"] = epoch
        try:
            out["contract_id"] = uuid.UUID(data["contractId"])
        except KeyError:
            errors["contractId"] = ["This field is required."]
        except (TypeError, ValueError, AttributeError):
            errors["contractId"] = ["Must be a valid UUID."]
    if errors:
        raise serializers.ValidationError(errors)
    return out


def validate_daemon_heartbeat(data: Any) -> dict[str, Any]:
    """DaemonHeartbeatSerializer's rules, fast: ``supervisors`` can carry thousands of items."""
    if not isinstance(data, dict):
        raise serializers.ValidationError({"non_field_errors": ["Expected an object."]})
    errors: dict[str, Any] = {key: ["Unknown field."] for key in data if key not in ("status", "supervisors")}
    status = data.get("status", DaemonStatus.CONNECTED)
    if status not in DaemonStatus.values:
        errors["status"] = [f'"{status}" is not a valid choice.']
    items = data.get("supervisors", [])
    parsed = []
    if not isinstance(items, list):
        errors["supervisors"] = ["Expected a list of items."]
    elif len(items) > MAX_BATCH:
        errors["supervisors"] = [f"At most {MAX_BATCH} items."]
    else:
        item_errors = {}
        for index, item in enumerate(items):
            try:
                parsed.append(validate_heartbeat(item, with_contract=True))
            except serializers.ValidationError as exc:
                item_errors[str(index)] = exc.detail
        if item_errors:
            errors["supervisors"] = item_errors
    if errors:
        raise serializers.ValidationError(errors)
    return {"status": status, "supervisors": parsed}
