"""What every API view shares: the documented error responses and ETag handling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.views import APIView

from supervisors.api.errors import missing_body
from supervisors.api.serializers import ErrorSerializer
from supervisors.services.conversation_append import ConversationAppend

ERROR_TEXT = {
    400: "`invalid`: bad input, `fields` names each offending input (a body field by its camelCase path, a header "
    'by its name, `""` for the body as a whole); `parse_error`: the body is not JSON. Do not retry unchanged.',
    401: "`not_authenticated`: no API key, an unknown key or a revoked key (WWW-Authenticate: Bearer).",
    403: "`permission_denied`: a staff user without the Django permission this needs, or a staff user on a "
    "daemon-only endpoint.",
    404: "`not_found`: no such contract, supervisor, question or task, or not one of this daemon's (a malformed "
    "id in the path too).",
    406: "`not_acceptable`: the Accept header does not take application/json (every answer is JSON).",
    412: "`precondition_failed`: If-Match does not match the current ETag (`fields`: If-Match). Read again, then "
    "decide.",
    413: "`body_too_large`: the body is larger than API_MAX_BODY_BYTES, or holds more JSON values than "
    "API_MAX_JSON_VALUES.",
    415: "`unsupported_media_type`: the body is not application/json.",
    429: "`throttled`: too many requests; see Retry-After.",
    503: "`database_unavailable`: the database is unreachable; nothing was written. Retry after Retry-After.",
}

#: Each 409 code, for the operations that can answer it (the daemon's guide has the table with retry advice).
CONFLICT_TEXT = {
    "superseded": "this daemon no longer owns the supervisor, or Supervisor-Epoch is not its current epoch: it "
    "was restored or taken over since. Nothing was written; resume (or drop the supervisor) before writing again",
    "bad_reference": "the body names a task or daemon that does not exist, a task of another contract, a task "
    "that is not the contract's supervisor task, or pending tasks that were never spawned (`fields` names them)",
    "question_already_answered": "the question was answered already",
    "conversation_length_mismatch": "the stored conversation does not hold `expectedLength` messages (this "
    "daemon missed a change). Nothing was written; `conversationLength` in the body is the stored length: "
    "read the history (GET with include=conversationHistory) and send the messages after that many again",
    "conflict": "the request does not fit the supervisor's state (a completed supervisor; a question id already "
    "pending with other content, or no longer pending)",
    "supervisor_completed": "a completed supervisor is not restored",
    "restored_concurrently": "another resume restored the supervisor after this one arrived: use that epoch "
    "(GET the state) or resume again",
    "idempotency_key_reused": "this Idempotency-Key was used for another request",
    "manual_intervention_needed": "the state needs a person (the supervisor is now blocked with the reasons)",
    "daemon_alive": "`task_reassignment` of a supervisor whose daemon is still alive",
    "supervisor_exists": "the contract already has a supervisor task",
    "failover_disabled": "FAILOVER_ENABLED is off",
}

#: Why a daemon may get 403 beyond the staff reasons, by operation.
FORBIDDEN_TEXT = {
    "supervisor_task_for_another_daemon": " Also for a daemon that creates a supervisor task for another daemon "
    "(`daemonId`).",
}


def _conflict_description(codes: Sequence[str]) -> str:
    return "The request does not fit the current state; nothing was written. " + " ".join(
        f"`{code}`: {CONFLICT_TEXT[code]}." for code in codes
    )


def errors(*statuses: int, conflicts: Sequence[str] = (), forbidden: str | None = None) -> dict[int, OpenApiResponse]:
    """Error responses for extend_schema, each listing the ``code`` values this operation can answer.

    400, 401, 403, 406, 429 and 503 are possible everywhere; 409 lists ``conflicts``.
    """
    wanted = sorted({400, 401, 403, 406, 429, 503, *statuses, *([409] if conflicts else [])})
    if 409 in wanted and not conflicts:
        raise ValueError("409 needs the conflict codes this operation can answer")
    text = {**ERROR_TEXT, 409: _conflict_description(conflicts)}
    if forbidden:
        text[403] += FORBIDDEN_TEXT[forbidden]
    return {code: OpenApiResponse(ErrorSerializer, description=text[code]) for code in wanted}


BODY_ERRORS = (413, 415)

IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="The ETag from a previous GET: the write is refused with 412 if the state changed since.",
)


EPOCH = OpenApiParameter(
    "Supervisor-Epoch",
    {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "example": 3},
    OpenApiParameter.HEADER,
    required=False,
    description="The epoch this daemon holds the supervisor at: the restorationCount its last resume returned "
    "(decimal digits, below 2^31). "
    "A write at another epoch is refused with 409 `superseded` and changes nothing (the supervisor was "
    "restored or taken over since). Without it, ownership is still checked atomically with the write.",
)


def fenced_write(*statuses: int, conflicts: Sequence[str] = ()) -> dict[int, OpenApiResponse]:
    """The errors of a fenced write: those of ``errors`` and 409 ``superseded`` (with ``conflicts``)."""
    return errors(*statuses, conflicts=("superseded", *conflicts))


ETAG = OpenApiParameter(
    "ETag",
    str,
    OpenApiParameter.HEADER,
    response=[200, 201],
    description="The state's version; send it back in If-Match to make a write conditional.",
)


def append_of(data: dict[str, Any], *, field: str = "conversation_append") -> ConversationAppend | None:
    """The validated ``conversationAppend`` of a save point's body (or the append body itself), for the service."""
    value = data if field == "" else data.get(field)
    if value is None:
        return None
    return ConversationAppend(messages=value["messages"], expected_length=value["expected_length"], field=field)


def json_body(request) -> Any:
    """The parsed body, refusing a request without one (400): every body the schema declares is required.

    DRF hands an absent body over as ``{}``; for PATCH and the daemon heartbeat ``{}`` is valid, so an
    absent body would otherwise pass where the schema (and a generated client) says a body is sent.
    """
    if request.stream is None:
        raise missing_body()
    return request.data


def if_match(request) -> str | None:
    """The version the client expects, from ``If-Match: "<etag>"`` (``*`` means any)."""
    header = request.headers.get("If-Match")
    if not header:
        return None
    value = header.strip()
    if value == "*":
        return None
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def etag(version: str) -> str:
    return f'"{version}"'


class ApiView(APIView):
    """Base of the API's views (settings hold the defaults: auth, permissions, throttling, parser)."""
