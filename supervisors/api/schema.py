"""Touches to the generated OpenAPI document that drf-spectacular cannot infer."""

from __future__ import annotations

from typing import Any


def forbid_unknown_request_fields(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """Request bodies refuse unknown keys (400 naming them), so the schema says additionalProperties: false.

    Free JSON inside them (conversation messages) keeps its own open schema.
    """
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object" and "properties" in component:
            component["additionalProperties"] = False
    return result
