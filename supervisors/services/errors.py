"""Typed errors raised by the services.

Every surface maps them the same way: the API to its JSON error shape and HTTP
status, the admin to a message, the commands to a line on stderr and an exit
code. ``code`` is machine-readable and stable; ``fields`` names the offending
inputs (snake_case model field names; the API camel-cases them).
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: a request the service refused, with nothing written."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code is not None:
            self.code = code


class InvalidInput(ServiceError):
    """The input breaks a rule the request alone shows (an enum value, a range, a JSON shape)."""

    code = "invalid"
    http_status = 400


class Forbidden(ServiceError):
    """The caller may not do this, whatever the input (a daemon creating a supervisor task for another daemon)."""

    code = "permission_denied"
    http_status = 403


class BrokenReference(InvalidInput):
    """Well-formed input that names rows which do not fit the world as it is now.

    A task or daemon that does not exist, a task of another contract, a task
    that is not the supervisor task, pending tasks that were never spawned. The
    request's shape is right (that would be InvalidInput, 400): it conflicts
    with what is stored, and may succeed once the world changes (409). An
    InvalidInput all the same for the surfaces that show refusals by field (the admin's forms).
    """

    code = "bad_reference"
    http_status = 409


class NotFound(ServiceError):
    """The contract, supervisor, task or question does not exist (or is not visible to the caller)."""

    code = "not_found"
    http_status = 404


class Conflict(ServiceError):
    """The request does not fit the current state (a completed supervisor, a question no longer pending)."""

    code = "conflict"
    http_status = 409


class PreconditionFailed(ServiceError):
    """The caller's view of the row is out of date (If-Match)."""

    code = "precondition_failed"
    http_status = 412
