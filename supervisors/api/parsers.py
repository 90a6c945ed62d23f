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
from rest_framework import exceptions, status
from rest_framework.exceptions import APIException, ParseError
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


class BodyFieldsError(exceptions.APIException):
    """A 400 whose ``fields`` are already the client's own paths (free JSON keys included): rendered verbatim.

    DRF's ValidationError would go through ``camel``, which rewrites a free JSON key like ``tool_calls``.
    """

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, message: str, *, fields: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.fields = fields


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
            path = nul_path(data)
            raise BodyFieldsError(
                f"The body contains a NUL character (\\u0000) at {path or 'its top level'}, which cannot be stored.",
                fields={path: ["Contains a NUL character (\\u0000), which cannot be stored."]},
            )
        if _SURROGATE_ESCAPE.search(text) and (path := surrogate_path(data)) is not None:
            # Named by its path in the body (``conversationHistory.3.content``), never echoed: the
            # answer could not be encoded either.
            where = ".".join(str(part) for part in path)
            raise BodyFieldsError(
                f"The body contains a lone surrogate at {where or 'its top level'}, which cannot be stored.",
                fields={where: [SURROGATE_MESSAGE]},
            )
        return data


def nul_path(data: Any) -> str:
    """The dotted path (as the client spelt it: keys untouched, list indexes) of the first NUL in ``data``.

    A NUL inside a key names the key itself; ``""`` only when the whole body is a string.
    """
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, dict):
            children = []
            for key, value in item.items():
                child = f"{path}.{key}" if path else str(key)
                if "\x00" in str(key):
                    return child
                children.append((child, value))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(f"{path}.{i}" if path else str(i), v) for i, v in enumerate(item)]))
    return ""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
