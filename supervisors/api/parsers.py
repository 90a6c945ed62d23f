"""JSON in, strictly: JSON only (415 otherwise), no NUL character or lone surrogate anywhere, no absurd nesting.

PostgreSQL's jsonb and text cannot hold ``\\u0000`` nor a lone UTF-16 surrogate
(``\\ud800``: a valid JSON escape that is not Unicode); refusing them here turns
what would be a database error (a 500) into a clear 400 on every endpoint at once.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

from supervisors.validators import MAX_JSON_DEPTH, SURROGATE_MESSAGE, contains_nul, json_too_deep, surrogate_path

#: A surrogate can only arrive escaped (as raw bytes it is not UTF-8); pairs (an emoji escaped by an
#: ASCII-only encoder) match too, and the scan of the parsed data then finds nothing.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, refusing NUL characters, lone surrogates and non-finite numbers."""

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
