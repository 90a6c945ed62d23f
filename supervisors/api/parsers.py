"""JSON in, strictly: JSON only (415 otherwise), no NUL character anywhere, no absurd nesting.

PostgreSQL's jsonb and text cannot hold ``\\u0000``; refusing it here turns what
would be a database error (a 500) into a clear 400 on every endpoint at once.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework import exceptions, status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from supervisors.validators import MAX_JSON_DEPTH, contains_nul, json_too_deep


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
    """DRF's JSON parser, refusing NUL characters and non-finite numbers."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        if not raw:
            return {}
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
