"""Refuse bodies over ``API_MAX_BODY_BYTES`` before anything reads them."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .errors import error_response


class BodySizeLimitMiddleware:
    """413 in the API's error shape for a declared Content-Length over the limit.

    Django's DATA_UPLOAD_MAX_MEMORY_SIZE is set to the same limit, which covers
    bodies whose size is not declared.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.API_MAX_BODY_BYTES
        if length > limit:
            return error_response(
                413, "body_too_large", f"The request body is {length} bytes; at most {limit} bytes are accepted."
            )
        return self.get_response(request)
