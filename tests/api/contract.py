"""Real responses against the OpenAPI schema: every key declared, every type allowed, every status listed.

tests/api/conftest.py runs every response of the API tests through
:func:`check_response`, so the whole API suite doubles as a contract test: a
response carrying a key the schema does not declare, a value of a type it does
not allow, or a status it does not list fails the test that got it.

The schema is OpenAPI 3.0; jsonschema speaks JSON Schema, so ``nullable`` is
rewritten, and every response object the schema gives properties but no
``additionalProperties`` is closed (``false``): the published schema stays
open for clients (a new key must not break an old client), the check is strict.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

JSON_CONTENT = "application/json"


class ResponseContractError(AssertionError):
    """A response the schema does not allow."""


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]


@functools.cache
def api_schema() -> dict[str, Any]:
    """The schema /api/schema/ serves, generated in-process (as JSON: plain dicts, lists and strings)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


@functools.cache
def _operations() -> tuple[Operation, ...]:
    found = []
    for template, item in api_schema()["paths"].items():
        literal_parts = re.split(r"\{[^}]+\}", template)
        pattern = re.compile("^" + "[^/]+".join(map(re.escape, literal_parts)) + "$")
        for method, spec in item.items():
            found.append(Operation(method.upper(), template, pattern, spec))
    return tuple(found)


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema: ``nullable`` becomes null allowed; response objects closed."""
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _to_json_schema(value) for key, value in node.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def _components() -> dict[str, Any]:
    return _to_json_schema(copy.deepcopy(api_schema()["components"]))


_formats = FormatChecker()


@_formats.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("an RFC 3339 date-time carries its offset")
    return True


def schema_problems(schema: dict[str, Any], instance: Any) -> list[str]:
    """What is wrong with ``instance`` by ``schema`` (an OpenAPI schema object of api_schema())."""
    validator = Draft202012Validator({"components": _components(), **_to_json_schema(schema)}, format_checker=_formats)
    return [
        f"at {'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    ]


def find_operation(method: str, path: str) -> Operation | None:
    for operation in _operations():
        if operation.method == method.upper() and operation.pattern.match(path):
            return operation
    return None


def problems(method: str, path: str, status: int, content_type: str, body: bytes) -> list[str]:
    """What is wrong with this response by the schema (empty: nothing, or not one of the schema's operations)."""
    operation = find_operation(method, path)
    if operation is None:
        return []
    where = f"{method.upper()} {operation.template} -> {status}"
    declared = operation.spec.get("responses", {})
    response = declared.get(str(status), declared.get("default"))
    if response is None:
        return [f"{where}: status {status} is not declared (declared: {', '.join(sorted(declared))})"]
    content = response.get("content")
    if not content:
        return [f"{where}: the schema declares no body, the response has {len(body)} bytes"] if body else []
    if JSON_CONTENT not in content or not content_type.startswith(JSON_CONTENT):
        return [f"{where}: content type {content_type!r}, the schema declares {sorted(content)}"]
    try:
        instance = json.loads(body)
    except ValueError as exc:
        return [f"{where}: the body is not JSON ({exc})"]
    found = [f"{where}: {problem}" for problem in schema_problems(content[JSON_CONTENT]["schema"], instance)]
    if status >= 400 and isinstance(instance, dict) and isinstance(instance.get("code"), str):
        listed = declared_codes(response)
        if instance["code"] not in listed:
            found.append(f"{where}: code {instance['code']!r} is not listed for it (listed: {', '.join(listed)})")
    return found


def declared_codes(response: dict[str, Any]) -> list[str]:
    """The ``code`` values an error response's description lists (each in backticks, before a colon)."""
    return re.findall(r"`([a-z_]+)`:", response.get("description", ""))


def check_response(response: Any) -> None:
    """Raise ResponseContractError when a Django test client's response breaks the schema."""
    if getattr(response, "streaming", False):
        return
    request = response.request
    found = problems(
        request["REQUEST_METHOD"],
        request["PATH_INFO"],
        response.status_code,
        response.get("Content-Type", ""),
        response.content,
    )
    if found:
        raise ResponseContractError("The response breaks the OpenAPI schema:\n" + "\n".join(found[:20]))
