"""A lean dispatch for the heartbeat endpoints: what DRF's APIView promises, without its per-request machinery.

Heartbeats are most of the API's traffic and each is one small UPDATE, so DRF's
dispatch (a Request wrapper, content negotiation, lazy parsers, a Response
rendered through a template-response cycle) costs more CPU than the database
work. A view class that mixes in :class:`LeanDaemonPost` still is the DRF view
(its schema, its ``post`` for every other caller); only a daemon's ordinary
request takes the short road, and it runs the same pieces in the same order:

1. the view's authentication (a ``Bearer`` key: :class:`DaemonKeyAuthentication`;
   an unknown or revoked key is a 401 exactly as before),
2. the view's permission classes, 3. its throttles (429 with Retry-After),
4. the view's parser (415/400 as before) and 5. its ``lean_post``, whose
   exceptions go through the API's one exception handler (the error shape).

A view with ``counts_in_write = True`` has its write count the request for the
throttle in the same statement (:class:`~supervisors.services.world.PendingCount`),
which saves a database round trip per request. The outcome is the one steps
3 to 5 give: over the limit the answer is 429 and nothing is written, whatever
the body; a request refused before its statement ran (a bad body, a malformed
id) is counted on the way out, and becomes a 429 if that puts it over.

A request the short road does not cover exactly (another method, no Bearer
key, a body that is not declared as JSON, an Accept header that does not take
JSON) goes through DRF unchanged, so every status code and header stays what
the OpenAPI schema documents.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer

from .authentication import DaemonKeyAuthentication, KeyAuth
from .errors import exception_handler, missing_body
from .throttling import SharedRateThrottle

_JSON = "application/json"
_ACCEPTS_JSON = frozenset({"*/*", "application/*", _JSON})


class _LeanRequest:
    """What permissions, throttles and the exception handler read from a request."""

    __slots__ = ("_request", "auth", "method", "user")

    def __init__(self, request: HttpRequest, user: Any, auth: Any) -> None:
        self._request = request
        self.user = user
        self.auth = auth
        self.method = request.method

    @property
    def META(self) -> dict[str, Any]:
        return self._request.META


def _takes_the_short_road(request: HttpRequest) -> bool:
    if request.method != "POST":
        return False
    meta = request.META
    if meta.get("HTTP_AUTHORIZATION", "")[:7].lower() != "bearer ":
        return False
    if meta.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower() != _JSON:
        return False
    accept = meta.get("HTTP_ACCEPT")
    return not accept or any(part.split(";", 1)[0].strip() in _ACCEPTS_JSON for part in accept.split(","))


class LeanDaemonPost:
    """Mix into an ApiView (before it) and write ``lean_post(principal, data, *, meta, **url_kwargs)``.

    ``meta`` is the request's ``META`` (for the ``Supervisor-Epoch`` header).

    ``lean_post`` returns the 200 body (a dict, rendered as DRF would) or ready JSON bytes.
    One view instance serves every lean request of the process (threads
    included): ``lean_post`` must keep no state on ``self``.
    """

    #: ``lean_post`` takes ``count`` (a PendingCount or None) and hands it to its one
    #: write, which counts the request for the throttle in the same statement.
    counts_in_write = False

    #: A request without a body is a 400 (``{}`` is a body): for views whose ``{}`` is valid input.
    body_required = False

    def lean_post(self, principal: Any, data: Any, *, meta: dict[str, Any], **kwargs: Any) -> dict[str, Any] | bytes:
        raise NotImplementedError

    @classmethod
    def as_view(cls, **initkwargs):
        full = super().as_view(**initkwargs)  # type: ignore[misc]
        if not cls.authentication_classes or cls.authentication_classes[0] is not DaemonKeyAuthentication:
            raise TypeError(f"{cls.__name__}: the lean path needs DaemonKeyAuthentication first")
        view_instance = cls(**initkwargs)
        authenticator = DaemonKeyAuthentication()
        permissions = [permission() for permission in cls.permission_classes]
        throttle_classes = list(cls.throttle_classes)
        counts_in_write = cls.counts_in_write and throttle_classes == [SharedRateThrottle]
        body_required = cls.body_required
        parser = cls.parser_classes[0]()
        allow = ", ".join(view_instance.allowed_methods)
        renderer = JSONRenderer()

        def respond(body: bytes, status: int, headers: dict[str, str] | None = None) -> HttpResponse:
            response = HttpResponse(body, status=status, content_type=_JSON)
            response["Allow"] = allow
            for name, value in (headers or {}).items():
                response[name] = value
            return response

        def check_throttles(lean_request: _LeanRequest) -> None:
            waits = []
            for throttle_class in throttle_classes:
                throttle = throttle_class()
                if not throttle.allow_request(lean_request, view_instance):
                    waits.append(throttle.wait())
            if waits:
                raise exceptions.Throttled(max((w for w in waits if w is not None), default=None))

        def view(request: HttpRequest, *args, **kwargs):
            if not _takes_the_short_road(request):
                return full(request, *args, **kwargs)
            lean_request = _LeanRequest(request, None, None)
            try:
                user, auth = authenticator.authenticate(request)
                lean_request.user, lean_request.auth = user, auth
                for permission in permissions:
                    if not permission.has_permission(lean_request, view_instance):
                        raise exceptions.PermissionDenied(getattr(permission, "message", None))
                pending = SharedRateThrottle.pending_count(lean_request) if counts_in_write else None
                if pending is None:
                    check_throttles(lean_request)
                else:
                    kwargs["count"] = pending
                try:
                    if request.META.get("CONTENT_LENGTH") not in (None, "", "0"):
                        data = parser.parse(request)
                    elif body_required:
                        raise missing_body()
                    else:
                        data = {}
                    body = view_instance.lean_post(user, data, meta=request.META, **kwargs)
                except Exception:
                    if pending is not None:  # the throttle decides as if it had run first (see the module doc)
                        lean_request.auth = KeyAuth(auth.owner, pending.counted)
                        check_throttles(lean_request)
                    raise
            except Exception as exc:  # the API's one error shape, as DRF's handle_exception gives it
                handled = exception_handler(exc, {"view": view_instance, "request": lean_request})
                if handled is None:
                    raise  # a bug or the database gone: Django's handling (500, or 503 by db_errors)
                return respond(
                    renderer.render(handled.data),
                    handled.status_code,
                    {name: value for name, value in handled.items() if name.lower() != "content-type"},
                )
            if not isinstance(body, bytes):
                body = renderer.render(body)
            return respond(body, 200)

        view.cls = cls
        view.initkwargs = initkwargs
        view.login_required = False
        view.__doc__ = cls.__doc__
        view.__name__ = cls.__name__
        return csrf_exempt(view)


def compact_json(value: Any) -> bytes:
    """Constant bodies, encoded once the way DRF's JSONRenderer would."""
    return json.dumps(value, separators=(",", ":")).encode()
