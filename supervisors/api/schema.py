"""Touches to the generated OpenAPI document that drf-spectacular cannot infer.

Daemon authors generate typed clients from ``/api/schema/``; every touch here
makes the document say exactly what the service does, so that a client built
from it neither misses a key nor rejects a real answer.
"""

from __future__ import annotations

from typing import Any

from supervisors.api.serializers import CONVERSATION_MESSAGE_SCHEMA, NO_PREVIOUS_STATE, UNKNOWN_STATE

#: Response keys that are not always present (everything else in a response object is).
OPTIONAL_RESPONSE_KEYS: dict[str, set[str]] = {
    "SupervisorState": {"conversationHistory"},  # only with ?include=conversationHistory
    "Error": {"conversationLength"},  # only with 409 conversation_length_mismatch
}

#: Components added by hand: referenced from serializer fields whose schema drf-spectacular cannot build.
EXTRA_COMPONENTS: dict[str, dict[str, Any]] = {
    "ConversationMessage": CONVERSATION_MESSAGE_SCHEMA,
    "NoPreviousStateEnum": {
        "type": "string",
        "enum": [NO_PREVIOUS_STATE],
        "description": "There was no supervisor state before this restoration (a fresh start).",
    },
    "UnknownStateEnum": {
        "type": "string",
        "enum": [UNKNOWN_STATE],
        "description": "The stored state is none of SupervisorStateEnum's (makima wrote a value this service does "
        "not know); the value itself is in the storedState (previousStoredState) beside it.",
    },
}

#: OpenAPI links: which response's ids feed which operation, so that a tool walking the schema (schemathesis's
#: stateful phase) or a reader goes contract -> supervisor task -> supervisor -> question -> answer -> ack.
_SUPERVISOR_PATH = {"path.contractId": "$response.body#/contractId"}
_AT_EPOCH = {**_SUPERVISOR_PATH, "header.Supervisor-Epoch": "$response.body#/restorationCount"}
_SAME_SUPERVISOR = {"path.contractId": "$request.path.contractId"}


def _link(operation_id: str, description: str, parameters: dict[str, str], body: Any = None) -> dict[str, Any]:
    link: dict[str, Any] = {"operationId": operation_id, "description": description, "parameters": parameters}
    if body is not None:
        link["requestBody"] = body
    return link


def _supervisor_links(parameters: dict[str, str]) -> dict[str, dict[str, Any]]:
    """From a response that carries the supervisor (its contractId, and maybe the epoch) to what uses it."""
    plain = {k: v for k, v in parameters.items() if k.startswith("path.")}
    return {
        "ReadSupervisor": _link("supervisor_get", "Read the supervisor.", plain),
        "UpdateSupervisor": _link(
            "supervisor_update", "Change some of its fields.", {**parameters, "header.If-Match": "*"}
        ),
        "Heartbeat": _link("supervisor_heartbeat", "Send its heartbeat.", parameters),
        # Save points without conversationAppend: its expectedLength cannot come from this response (the state
        # does not carry the history's length), and a guessed one is a 409, ending the walk there.
        "ChangePhase": _link("supervisor_phase_changed", "Record a phase change.", parameters, {"phase": "review"}),
        "AskQuestion": _link(
            "supervisor_question_ask",
            "Ask the human a question.",
            parameters,
            {"question": "Move on to the review?", "choices": ["yes", "no"], "questionType": "phase_confirmation"},
        ),
        "AppendMessages": _link(
            "supervisor_conversation_append", "Append messages to its conversation (the delta form).", parameters
        ),
        "ListQuestions": _link("supervisor_questions_list", "Its pending questions.", plain),
        "ListAnswers": _link("supervisor_answers_list", "Answers not yet acknowledged.", plain),
        "Validate": _link("supervisor_validate", "Validate its state.", plain),
        "Resume": _link("supervisor_resume", "Resume it (after a crash).", plain),
    }


LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("contract_create", "201"): {
        "ReadContract": _link("contract_get", "Read the contract.", {"path.contractId": "$response.body#/id"}),
        "CreateSupervisorTask": _link(
            "task_create",
            "Create the contract's supervisor task (on you: daemonId null or left out).",
            {},
            {"contractId": "$response.body#/id", "isSupervisor": True, "daemonId": None, "parentTaskId": None},
        ),
    },
    ("task_create", "201"): {
        "ReadTask": _link("task_get", "Read the task.", {"path.taskId": "$response.body#/id"}),
        "ChangeTaskStatus": _link("task_status_update", "Report its status.", {"path.taskId": "$response.body#/id"}),
        "SaveSupervisor": _link(
            "supervisor_save",
            "Save the supervisor's first state on this (supervisor) task (epoch 0, no If-Match: it is new).",
            {**_SUPERVISOR_PATH, "header.Supervisor-Epoch": "0", "header.If-Match": "*"},
            {"taskId": "$response.body#/id", "spawnedTaskIds": [], "pendingTaskIds": []},
        ),
    },
    ("supervisor_save", "200"): _supervisor_links(_AT_EPOCH),
    ("supervisor_save", "201"): _supervisor_links(_AT_EPOCH),
    ("supervisor_resume", "200"): _supervisor_links(
        {"path.contractId": "$request.path.contractId", "header.Supervisor-Epoch": "$response.body#/restorationCount"}
    ),
    ("supervisor_question_ask", "201"): {
        "Answer": _link(
            "supervisor_question_answer",
            "Answer it (a person, or the daemon on its behalf).",
            {**_SAME_SUPERVISOR, "path.questionId": "$response.body#/question/id"},
        ),
        "Withdraw": _link(
            "supervisor_question_withdraw",
            "Withdraw it.",
            {**_SAME_SUPERVISOR, "path.questionId": "$response.body#/question/id"},
        ),
    },
    ("supervisor_question_answer", "200"): {
        "Acknowledge": _link(
            "supervisor_answer_ack",
            "The daemon acknowledges the answer once it acted on it.",
            {**_SAME_SUPERVISOR, "path.questionId": "$response.body#/questionId"},
        ),
    },
}

CSRF_SCHEME = "csrfToken"
UNSAFE_METHODS = frozenset({"post", "put", "patch", "delete"})


def finish_schema(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular's postprocessing hook: every touch of this module, in order.

    Request bodies refuse unknown keys (400 naming them), so they say additionalProperties: false; free
    JSON inside them (conversation messages) keeps its own open schema.
    """
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, component in schemas.items():
        if name.endswith("Request") and component.get("type") == "object" and "properties" in component:
            component["additionalProperties"] = False
    schemas.update(EXTRA_COMPONENTS)
    require_response_keys(schemas)
    reuse_named_enums(result)
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            type_path_ids(operation)
            if "requestBody" in operation:
                # Every body is a JSON object; a client sends {} when it has nothing to say.
                operation["requestBody"]["required"] = True
            if method in UNSAFE_METHODS:
                require_csrf_with_cookie(operation)
    document_cookie_auth(result["components"].setdefault("securitySchemes", {}))
    add_links(result)
    return result


def add_links(result: dict[str, Any]) -> None:
    """Put LINKS on the responses they start from (an operation missing from the document is an error)."""
    responses = {
        operation["operationId"]: operation["responses"]
        for path_item in result.get("paths", {}).values()
        for operation in path_item.values()
    }
    for (operation_id, status), links in LINKS.items():
        responses[operation_id][status]["links"] = links


def require_response_keys(schemas: dict[str, Any]) -> None:
    """In a response, required means "always present": the API's responses always carry every key.

    drf-spectacular leaves out fields with a default (``Task.status``) or ``required=False``.
    """
    for name, component in schemas.items():
        if name.endswith("Request") or component.get("type") != "object" or "properties" not in component:
            continue
        optional = OPTIONAL_RESPONSE_KEYS.get(name, set())
        component["required"] = sorted(key for key in component["properties"] if key not in optional)


def reuse_named_enums(result: dict[str, Any]) -> None:
    """An enum drf-spectacular left inline (query parameters, list items) becomes a $ref to its named enum."""
    schemas = result["components"]["schemas"]
    named = {
        tuple(component["enum"]): name
        for name, component in schemas.items()
        if "enum" in component and None not in component["enum"]
    }

    def visit(node: Any, *, top: bool = False) -> Any:
        if isinstance(node, dict):
            values = node.get("enum")
            if not top and isinstance(values, list) and tuple(values) in named:
                ref = {"$ref": f"#/components/schemas/{named[tuple(values)]}"}
                return {"allOf": [ref], "description": node["description"]} if "description" in node else ref
            return {key: visit(value) for key, value in node.items()}
        if isinstance(node, list):
            return [visit(item) for item in node]
        return node

    result["paths"] = visit(result.get("paths", {}))
    for name, component in list(schemas.items()):
        schemas[name] = visit(component, top=True)


def type_path_ids(operation: dict[str, Any]) -> None:
    """Path ids (contractId, questionId, taskId) are UUIDs; a malformed one is a 404."""
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path" and parameter["name"].endswith("Id"):
            parameter["schema"] = {"type": "string", "format": "uuid"}


def require_csrf_with_cookie(operation: dict[str, Any]) -> None:
    """A staff session's unsafe request also needs the CSRF header; a Bearer key needs nothing else."""
    for requirement in operation.get("security", []):
        if "cookieAuth" in requirement:
            requirement[CSRF_SCHEME] = []


def document_cookie_auth(schemes: dict[str, Any]) -> None:
    """Say what a staff caller sends: the session cookie, and for writes the CSRF token in a header."""
    if "cookieAuth" in schemes:
        schemes["cookieAuth"]["description"] = (
            "Staff only: the Django admin's session cookie (log in at /admin/). Writes (POST, PUT, PATCH, DELETE) "
            "also need the CSRF token, sent as the X-CSRFToken header (see csrfToken)."
        )
        schemes[CSRF_SCHEME] = {
            "type": "apiKey",
            "in": "header",
            "name": "X-CSRFToken",
            "description": "Staff sessions only, on writes: the value of the csrftoken cookie Django sets at login "
            "(the session also needs a Referer on HTTPS). Daemons with a Bearer key never send it.",
        }


#: The name SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] gives this module's hook.
forbid_unknown_request_fields = finish_schema
