"""The middleware only browsers need, stepped over for daemons' API calls.

Sessions, the logged-in user, messages and static files serve the admin, the
docs page and staff who use the API with their session. A request to the
daemons' API (``/api/v1/``) that carries a ``Bearer`` key needs none of them:
its views are DRF views that authenticate the key themselves (an unknown or
revoked key is a 401, never a fall-through to the session; DRF's session
authentication reads ``request.user`` with a default, so its absence means
"not logged in"), and they add no messages. Daemons' calls are most of the
traffic, so these layers step aside for exactly those requests. Every other
request, a staff member's API call included, goes through all of them.

Every request still gets the rest of ``settings.MIDDLEWARE``: the security
middleware (HTTPS redirect, security headers), the body size limit,
CommonMiddleware (ALLOWED_HOSTS), CSRF and frame options (Django's own
classes: the deploy checks look for them by name) and the
database-unavailable handler.

Each class here is Django's (or WhiteNoise's) own, subclassed, so the admin's
system checks, which look for subclasses, still find them.
"""

from __future__ import annotations

from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.messages.storage import default_storage
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject, empty
from whitenoise import middleware as whitenoise

from makima_supervisor.daemon_calls import DAEMON_API_PREFIX, is_daemon_call

__all__ = ["DAEMON_API_PREFIX", "is_daemon_api_request"]


def is_daemon_api_request(request: HttpRequest) -> bool:
    """A call to the daemons' API with a Bearer key (valid or not: the view decides)."""
    return is_daemon_call(request.path_info, request.META)


#: The header value live.js sends with its background re-reads of an admin page.
LIVE_REFRESH = "sv-live"


class _BrowserOnly:
    """Mixed in before a middleware class: a daemon's API call goes straight to the next layer."""

    def __call__(self, request: HttpRequest):
        if is_daemon_api_request(request):
            return self.get_response(request)
        return super().__call__(request)


class WhiteNoiseMiddleware(_BrowserOnly, whitenoise.WhiteNoiseMiddleware):
    pass


class SessionMiddleware(_BrowserOnly, sessions.SessionMiddleware):
    pass


class AuthenticationMiddleware(_BrowserOnly, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(_BrowserOnly, messages.MessageMiddleware):
    """Django's, with the storage built on first use.

    The stock middleware builds a cookie signer and a session-backed storage
    on every request, while only admin pages use messages. A storage never
    touched has nothing to save (Django's ``update`` stores only used or added
    messages), so skipping it changes nothing else.
    """

    def process_request(self, request):
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request, response):
        stored = getattr(request, "_messages", None)
        if isinstance(stored, SimpleLazyObject) and stored._wrapped is empty:
            return response
        if request.headers.get("X-Requested-With") == LIVE_REFRESH:
            # The admin's live refresh (supervisors/static/supervisors/live.js) re-reads the page in the
            # background: rendering it must not use up the messages meant for the page staff go to next
            # ("restored", "answered"), or a refresh that crosses a form's redirect swallows them.
            stored.used = False
        return super().process_response(request, response)
