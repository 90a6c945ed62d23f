"""One JSON error shape for every failure of the API: ``{code, message, fields}``.

``fields`` maps the camelCase name of each offending input to its messages, so
a daemon author sees the same names as in the request body. Service errors,
DRF's own errors and Django's (a body too large) all end up here.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from supervisors.services.errors import InvalidInput, ServiceError
from supervisors.validators import MAX_REPORTED_ERRORS

from .parsers import BodyFieldsError

logger = logging.getLogger(__name__)


#: Service field names that are not body fields: what the client sent instead (a header, the path).
WIRE_NAMES = {
    "expected_version": "If-Match",
    "idempotency_key": "Idempotency-Key",
    "assign_to_daemon": "source",
    "question.id": "id",  # the asked question's id, a body field of POST questions/
}


def missing_body() -> ServiceError:
    """An endpoint that takes a JSON object got no body at all: the schema marks every body required."""
    return InvalidInput(
        "This endpoint needs a JSON object body; send {} when there is nothing to change.",
        fields={"": ["A JSON object body is required."]},
    )


def wire_name(name: str) -> str:
    """A service's field name as the client sent it: a header by its header name, a body field in camelCase."""
    return WIRE_NAMES.get(name) or camel(name)


def camel(name: str) -> str:
    """``pending_task_ids`` -> ``pendingTaskIds``; already camelCase names stay as they are."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


#: An error body stays a few kB whatever the request: the summary and each message are shortened,
#: and fields and messages are listed until this many characters, then counted.
MAX_SUMMARY_CHARS = 1000
MAX_MESSAGE_CHARS = 200
FIELDS_BUDGET_CHARS = 2500


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _capped_fields(fields: dict[str, list[str]]) -> tuple[dict[str, list[str]], int]:
    """The fields that fit the budget (each message shortened), and how many fields were left out."""
    kept: dict[str, list[str]] = {}
    used = 0
    for index, (name, messages) in enumerate(fields.items()):
        short_name = _shortened(name, MAX_MESSAGE_CHARS)
        shown: list[str] = []
        for message in messages:
            text = _shortened(str(message), MAX_MESSAGE_CHARS)
            if used + len(short_name) + len(text) > FIELDS_BUDGET_CHARS and (shown or kept):
                break
            shown.append(text)
            used += len(text)
        if not shown:
            return kept, len(fields) - index
        if len(shown) < len(messages):
            shown.append(f"and {len(messages) - len(shown)} more")
        kept[short_name] = shown
        used += len(short_name)
    return kept, 0


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The one error shape, capped: a request with 100,000 bad values gets a readable answer, not megabytes."""
    kept, left_out = _capped_fields(fields or {})
    if left_out:
        message = f"{message} (and {left_out} more fields)"
    return {"code": code, "message": _shortened(message, MAX_SUMMARY_CHARS), "fields": kept}


def error_response(status_code: int, code: str, message: str, fields: dict | None = None) -> JsonResponse:
    """For code outside DRF views (middleware): the same shape, as a plain Django response."""
    return JsonResponse(error_body(code, message, fields), status=status_code)


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error details as ``{"camelPath": [messages]}`` (``items.0.contractId``)."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key in ("non_field_errors",) else camel(str(key))
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            for sub, messages in _flatten(value, path).items():
                out.setdefault(sub, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            out.setdefault(prefix, []).extend(str(item) for item in detail)
        else:
            for index, item in enumerate(detail):
                if item:
                    path = f"{prefix}.{index}" if prefix else str(index)
                    for sub, messages in _flatten(item, path).items():
                        out.setdefault(sub, []).extend(messages)
    else:
        out.setdefault(prefix, []).append(str(detail))
    return out


def _first_code(detail: Any) -> str | None:
    codes = detail.get_codes() if hasattr(detail, "get_codes") else None
    while isinstance(codes, (dict, list)):
        if not codes:
            return None
        codes = next(iter(codes.values())) if isinstance(codes, dict) else codes[0]
    return codes


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error the views raise, in the one shape."""
    headers: dict[str, str] = {}
    if isinstance(exc, ServiceError):
        fields = {wire_name(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in exc.fields.items()}
        set_rollback()
        body = error_body(exc.code, exc.message, fields)
        body.update(getattr(exc, "extra", None) or {})  # e.g. conversationLength, a number the client acts on
        return Response(body, status=exc.http_status)
    if isinstance(exc, BodyFieldsError):
        set_rollback()
        return Response(error_body(exc.default_code, str(exc.detail), exc.fields), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("body_too_large", "The request body is larger than the server accepts."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: let Django log it and answer 500
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
        exc.status_code = status.HTTP_401_UNAUTHORIZED
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait) or 1)
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        message = "The request is invalid: " + "; ".join(
            f"{name}: {' '.join(msgs[:3])}" if name else " ".join(msgs[:3])
            for name, msgs in list(fields.items())[:MAX_REPORTED_ERRORS]
        )
        code = "invalid"
    else:
        fields = {}
        detail = exc.detail
        message = str(detail) if not isinstance(detail, (dict, list)) else str(exc.default_detail)
        code = _first_code(detail) or exc.default_code
        code = {"not_authenticated": "not_authenticated", "authentication_failed": "not_authenticated"}.get(code, code)
    set_rollback()
    return Response(error_body(code, message, fields), status=exc.status_code, headers=headers)


def not_found_view(request, exception=None) -> JsonResponse:
    """handler404: an unknown URL gets the API's error shape instead of an HTML page."""
    return error_response(404, "not_found", "No such endpoint.")
