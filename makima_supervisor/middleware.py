"""Project-wide middleware."""

from __future__ import annotations

from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.utils.functional import SimpleLazyObject, empty


class LazyMessageMiddleware(MessageMiddleware):
    """Django's MessageMiddleware, with the message storage built on first use.

    The stock middleware builds a cookie signer and a session-backed storage
    on every request. Only admin pages use messages, while daemons' API calls
    (most of the traffic) never do. A storage that was never touched has
    nothing to save (Django's ``update`` stores only used or added messages),
    so skipping it changes nothing else.
    """

    def process_request(self, request):
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request, response):
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response
        return super().process_response(request, response)
