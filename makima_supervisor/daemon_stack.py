"""The daemons' API as its own short middleware stack, chosen before any browser layer runs.

Daemons' calls (``/api/v1/`` with a ``Bearer`` key) are most of the traffic,
and each middleware layer costs a call, an exception-converting wrapper and
whatever the layer does, on every request. :class:`DaemonApiDispatchMiddleware`,
first in ``settings.MIDDLEWARE``, hands such a call to a second handler
(:class:`DaemonApiHandler`) whose chain is ``settings.MIDDLEWARE`` without the
layers only browsers need (:data:`BROWSER_ONLY`): sessions, the logged-in user,
messages, CSRF, static files and the admin's login lockout. Every other request
goes down the whole chain unchanged.

Why each skipped layer changes nothing a daemon sees: its key is checked by
the API's own authentication (an unknown or revoked key is a 401, never a fall
through to a session), the API's views are CSRF-exempt and never ask for a CSRF
token (so the CSRF layer sets no cookie), no API view adds a message, static
files are not under ``/api/``, and the lockout layer acts only on a request
that went through Django's ``authenticate()`` (the admin's login form).

Everything else still applies, in the same order, because the daemon chain is
derived from ``settings.MIDDLEWARE`` rather than listed apart (a layer added
there later applies to daemons too unless it is named in BROWSER_ONLY): the
forwarded-header rule, the request id, access line and metrics, the security
middleware (HTTPS redirect, security headers), the body size limit,
CommonMiddleware (ALLOWED_HOSTS), X-Frame-Options and the database-unavailable
503.

URL resolution tries the root URLconf's own ``api/v1/`` entry first (the same
resolver object, so the same views, route, namespace and names), and falls back
to the whole URLconf for anything it does not match, so a 404 is the root's.
Its matches are remembered by path (a daemon calls the same few paths per
supervisor over and over; walking the API's patterns and building the match
costs a tenth of a heartbeat): each request gets its own copy of the match,
with its own ``kwargs``. At most ``RESOLVED_PATHS`` paths are kept; when full,
the memory starts over.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.urls import URLResolver, get_resolver
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, ResolverMatch
from django.utils.module_loading import import_string

from makima_supervisor.browser_middleware import DAEMON_API_PREFIX
from makima_supervisor.daemon_calls import takes_short_path

DISPATCHER = "makima_supervisor.daemon_stack.DaemonApiDispatchMiddleware"

#: Layers that serve browsers only (see the module docstring for why a daemon's call never needs them).
BROWSER_ONLY = frozenset(
    {
        "makima_supervisor.browser_middleware.WhiteNoiseMiddleware",
        "makima_supervisor.browser_middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "makima_supervisor.browser_middleware.AuthenticationMiddleware",
        "makima_supervisor.browser_middleware.MessageMiddleware",
        "axes.middleware.AxesMiddleware",
    }
)


#: Paths whose URL match is remembered (a few hundred bytes each).
RESOLVED_PATHS = 4096


def daemon_middleware(middleware: list[str] | tuple[str, ...]) -> list[str]:
    """The daemons' chain: ``middleware`` in its order, without the dispatcher and the browser-only layers."""
    return [path for path in middleware if path != DISPATCHER and path not in BROWSER_ONLY]


def api_resolver(root: URLResolver) -> URLResolver | None:
    """A resolver holding only ``root``'s ``api/v1/`` entry (the very same object); None if it has none."""
    prefix = DAEMON_API_PREFIX[1:]
    entries = [p for p in root.url_patterns if isinstance(p, URLResolver) and str(p.pattern) == prefix]
    if not entries:
        return None
    return URLResolver(RegexPattern(r"^/"), SimpleNamespace(urlpatterns=entries[:1]))


class DaemonApiHandler(BaseHandler):
    """Django's request handling (view middleware, exception middleware, response checks) over a given chain.

    Only the chain and URL resolution differ from the handler that serves
    everything else; the outer handler (WSGI or the test client) still builds
    the request, sends the request signals and logs 4xx/5xx responses.
    """

    def __init__(self, middleware: list[str]) -> None:
        super().__init__()
        self.middleware = middleware
        self._root: URLResolver | None = None
        self._api: URLResolver | None = None
        self._matches: dict[str, ResolverMatch] = {}
        self.load_middleware()

    def load_middleware(self, is_async: bool = False) -> None:
        """Django's ``BaseHandler.load_middleware`` for a synchronous chain of ``self.middleware``."""
        if is_async:
            raise ImproperlyConfigured("The daemons' stack is synchronous (WSGI).")
        self._view_middleware: list[Callable] = []
        self._template_response_middleware: list[Callable] = []
        self._exception_middleware: list[Callable] = []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed(self.middleware):
            middleware = import_string(path)
            if not getattr(middleware, "sync_capable", True):
                raise ImproperlyConfigured(f"Middleware {path} cannot serve synchronous requests.")
            try:
                instance = middleware(handler)
            except MiddlewareNotUsed:
                continue
            if instance is None:
                raise ImproperlyConfigured(f"Middleware factory {path} returned None.")
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(instance.process_template_response)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        if hasattr(request, "urlconf"):
            return super().resolve_request(request)
        root = get_resolver()  # cached by Django per ROOT_URLCONF (a test may override it)
        if root is not self._root:
            self._api, self._root, self._matches = api_resolver(root), root, {}
        if self._api is None:
            return super().resolve_request(request)
        path = request.path_info
        known = self._matches.get(path)
        if known is None:
            try:
                known = self._api.resolve(path)
            except Resolver404:
                return super().resolve_request(request)  # the root URLconf: its 404 (handler404), or a later entry
            if len(self._matches) >= RESOLVED_PATHS:
                self._matches = {}
            self._matches[path] = known
        match = ResolverMatch.__new__(ResolverMatch)  # a copy: nothing a request does to it reaches the next one
        match.__dict__.update(known.__dict__)
        match.kwargs = dict(known.kwargs)
        request.resolver_match = match
        return match


class DaemonApiDispatchMiddleware:
    """First in ``settings.MIDDLEWARE``: a daemon's API call (or a health probe) goes down the daemons' chain,
    anything else on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.daemon_chain = DaemonApiHandler(daemon_middleware(settings.MIDDLEWARE))._middleware_chain

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if takes_short_path(request.path_info, request.META):
            return self.daemon_chain(request)
        return self.get_response(request)
