"""The WSGI handler wsgi.py serves: Django's, with the request signals' work done directly for daemons' calls.

Django announces every request twice, ``request_started`` and
``request_finished``, and its own receivers do what must happen around a
request: forget the debug query log, close database connections that are
broken, in a bad state or past CONN_MAX_AGE (before and after the request),
close cache connections, and reset the thread's URLconf. Sending a signal costs
more than that work on a heartbeat (a lock, weak references resolved, each
receiver's sender filter), so for a daemon's API call or a health probe (see
:mod:`makima_supervisor.daemon_stack`) this handler runs those same functions
itself, in the same order, at the same moments.

It does so only while the signals' receivers are exactly Django's own: as soon
as anything else listens (a library, a test), the signals are sent as usual,
and every other request always sends them. The database semantics are
Django's to the letter: ``close_old_connections`` decides, on both sides of the
request, exactly as the signal would have had it run.
"""

from __future__ import annotations

import contextlib

from django.core import signals
from django.core.cache import close_caches
from django.core.handlers.base import reset_urlconf
from django.core.handlers.wsgi import WSGIHandler, get_script_name
from django.db import close_old_connections, reset_queries
from django.http import HttpResponseBase
from django.urls import set_script_prefix

from makima_supervisor.daemon_calls import takes_short_path

#: Django's own receivers, in the order Django connects them (django.db, django.core.cache, the handler).
STARTED = (reset_queries, close_old_connections)
FINISHED = (close_old_connections, close_caches, reset_urlconf)


def _only(signal: signals.Signal, receivers: tuple) -> bool:
    """Whether ``signal``'s receivers are exactly ``receivers`` (in order, for any sender)."""
    connected = signal.receivers
    if len(connected) != len(receivers):
        return False
    return all(ref() is expected for (_, ref, *_), expected in zip(connected, receivers, strict=True))


class _FinishDirectly:
    """A response's ``close``: Django's, with request_finished's receivers called rather than the signal sent."""

    __slots__ = ("response",)

    def __init__(self, response: HttpResponseBase) -> None:
        self.response = response

    def __call__(self) -> None:
        response = self.response
        for closer in response._resource_closers:
            with contextlib.suppress(Exception):  # as Django's HttpResponseBase.close
                closer()
        response._resource_closers.clear()
        response.closed = True
        if not _only(signals.request_finished, FINISHED):  # someone started listening meanwhile
            signals.request_finished.send(sender=response._handler_class)
            return
        sender = response._handler_class
        for receiver in FINISHED:
            receiver(sender=sender)


class MakimaWSGIHandler(WSGIHandler):
    """Django's WSGIHandler; daemons' API calls skip the signal machinery, not the signals' work."""

    def __call__(self, environ, start_response):
        if not (takes_short_path(environ.get("PATH_INFO", ""), environ) and _only(signals.request_started, STARTED)):
            return super().__call__(environ, start_response)
        set_script_prefix(get_script_name(environ))
        for receiver in STARTED:
            receiver(sender=self.__class__, environ=environ)
        request = self.request_class(environ)
        response = self.get_response(request)
        response._handler_class = self.__class__
        response.close = _FinishDirectly(response)
        status = f"{response.status_code} {response.reason_phrase}"
        response_headers = [
            *response.items(),
            *(("Set-Cookie", c.output(header="")) for c in response.cookies.values()),
        ]
        start_response(status, response_headers)
        if getattr(response, "file_to_stream", None) is not None and environ.get("wsgi.file_wrapper"):
            response.file_to_stream.close = response.close
            response = environ["wsgi.file_wrapper"](response.file_to_stream, response.block_size)
        return response


def get_wsgi_application() -> MakimaWSGIHandler:
    """``django.core.wsgi.get_wsgi_application``, serving this handler."""
    import django

    django.setup(set_prefix=False)
    return MakimaWSGIHandler()
