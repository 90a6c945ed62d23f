"""What every API view shares: the documented error responses and ETag handling."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.views import APIView

from supervisors.api.errors import missing_body
from supervisors.api.serializers import ErrorSerializer

ERROR_TEXT = {
    400: "`invalid`: bad input, `fields` names each offending input (a body field by its camelCase path, a header "
    'by its name, `""` for the body as a whole); `parse_error`: the body is not JSON.',
    401: "`not_authenticated`: no API key, an unknown key or a revoked key (WWW-Authenticate: Bearer).",
    403: "`permission_denied`: a staff user without the Django permission this needs, or a staff user on a "
    "daemon-only endpoint.",
    404: "`not_found`: no such contract, supervisor, question or task, or not one of this daemon's (a malformed "
    "id in the path too).",
    406: "`not_acceptable`: the Accept header does not take application/json (every answer is JSON).",
    409: "The request does not fit the current state. `superseded`: this daemon no longer owns the supervisor, "
    "or Supervisor-Epoch is not its current epoch (nothing was written). Also, where they apply: "
    "`supervisor_completed`, `restored_concurrently`, `idempotency_key_reused`, `question_already_answered`, "
    "`supervisor_exists`, `daemon_alive`, `manual_intervention_needed`, `failover_disabled`, `conflict`.",
    412: "`precondition_failed`: If-Match does not match the current ETag (`fields`: If-Match).",
    413: "`body_too_large`: the body is larger than API_MAX_BODY_BYTES.",
    415: "`unsupported_media_type`: the body is not application/json.",
    429: "`throttled`: too many requests; see Retry-After.",
    503: "`database_unavailable`: the database is unreachable; nothing was written. Retry after Retry-After.",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Error responses for extend_schema; 400, 401, 403, 406, 429 and 503 are possible everywhere."""
    wanted = sorted({400, 401, 403, 406, 429, 503, *codes})
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_TEXT[code]) for code in wanted}


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
    {"type": "string", "pattern": "^[0-9]{1,10}$", "example": "3"},
    OpenApiParameter.HEADER,
    required=False,
    description="The epoch this daemon holds the supervisor at: the restorationCount its last resume returned "
    "(decimal digits, below 2^31). "
    "A write at another epoch is refused with 409 `superseded` and changes nothing (the supervisor was "
    "restored or taken over since). Without it, ownership is still checked atomically with the write.",
)


def fenced_write(*codes: int) -> dict[int, OpenApiResponse]:
    """The errors of a fenced write: those of ``errors`` and 409 (``superseded``)."""
    return errors(409, *codes)


ETAG = OpenApiParameter(
    "ETag",
    str,
    OpenApiParameter.HEADER,
    response=[200, 201],
    description="The state's version; send it back in If-Match to make a write conditional.",
)


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
