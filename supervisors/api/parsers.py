"""JSON in, strictly: JSON only (415 otherwise), no NUL character or lone surrogate anywhere, no absurd nesting.

PostgreSQL's jsonb and text cannot hold ``\\u0000`` nor a lone UTF-16 surrogate
(``\\ud800``: a valid JSON escape that is not Unicode); refusing them here turns
what would be a database error (a 500) into a clear 400 on every endpoint at once.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import JSONParser

from supervisors.validators import MAX_JSON_DEPTH, SURROGATE_MESSAGE, contains_nul, json_too_deep, surrogate_path

#: A surrogate can only arrive escaped (as raw bytes it is not UTF-8); pairs (an emoji escaped by an
#: ASCII-only encoder) match too, and the scan of the parsed data then finds nothing.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


#: Bytes scanned at a time when counting outside strings: bounds the pieces a split makes.
_CHUNK = 1 << 20


class TooManyValues(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"
    default_detail = "The request body holds too many JSON values."


def count_values_over(raw: bytes, budget: int) -> int | None:
    """The number of separators between JSON values in ``raw`` when it exceeds ``budget``, else None.

    Counted on the bytes, before parsing, at C speed: commas first (an upper
    bound, since text holds commas too), and only when that is over the budget,
    the commas outside string literals (exact for valid JSON; a body that is
    not JSON fails the parse anyway).
    """
    if raw.count(b",") <= budget:
        return None
    structural = _commas_outside_strings(raw)
    return structural if structural > budget else None


def _commas_outside_strings(raw: bytes) -> int:
    """Escapes dropped (``\\\\`` first, then ``\\"``), every other ``"`` opens or closes a string."""
    cleaned = raw.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in raw else raw
    inside, count = False, 0
    for start in range(0, len(cleaned), _CHUNK):
        pieces = cleaned[start : start + _CHUNK].split(b'"')
        count += b"".join(pieces[1::2] if inside else pieces[0::2]).count(b",")
        if len(pieces) % 2 == 0:  # an odd number of quotes in this chunk: the next starts on the other side
            inside = not inside
    return count


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, refusing NUL characters, lone surrogates and non-finite numbers."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        if not raw:
            return {}
        budget = settings.API_MAX_JSON_VALUES
        if (count := count_values_over(raw, budget)) is not None:
            raise TooManyValues(
                f"The request body holds about {count} JSON values; at most {budget} are accepted "
                "(API_MAX_JSON_VALUES)."
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("The body is not UTF-8.") from exc
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from exc
        except RecursionError:
            # json.loads recurses once per nesting level: a few thousand brackets exhaust
            # Python's stack. No request the API documents nests anywhere near that deep.
            raise ParseError(f"The body's JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels).") from None
        if json_too_deep(data):
            raise ParseError(f"The body's JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels).")
        # A NUL can only arrive escaped; the scan of the parsed data runs only then.
        if "\\u0000" in text and contains_nul(data):
            raise ValidationError(
                {"non_field_errors": ["The body contains a NUL character (\\u0000), which cannot be stored."]},
                code="nul_character",
            )
        if _SURROGATE_ESCAPE.search(text) and (path := surrogate_path(data)) is not None:
            # Named by its path in the body (``conversationHistory.3.content``), never echoed: the
            # answer could not be encoded either.
            where = ".".join(str(part) for part in path) or "non_field_errors"
            raise ValidationError({where: [SURROGATE_MESSAGE]}, code="surrogate_character")
        return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
