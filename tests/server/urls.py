"""The service's URLs plus views that only the server tests mount (tests.server.settings).

They let a test look through the real server at what a view sees: the
request's environ as ``request.META``, an unhandled exception's error report,
a request still running while the server restarts, and which process answered.
"""

from __future__ import annotations

import os
import time

from django.http import HttpRequest, JsonResponse
from django.urls import path

from makima_supervisor.urls import urlpatterns as service_urlpatterns


def meta(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"meta": {key: str(value) for key, value in request.META.items()}})


def boom(request: HttpRequest) -> JsonResponse:
    raise RuntimeError("boom: an unhandled error, for the error report")


def slow(request: HttpRequest) -> JsonResponse:
    time.sleep(float(request.GET.get("seconds", "2")))
    return JsonResponse({"pid": os.getpid(), "done": True})


def pid(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"pid": os.getpid()})


urlpatterns = [
    path("__test__/meta", meta),
    path("__test__/boom", boom),
    path("__test__/slow", slow),
    path("__test__/pid", pid),
    *service_urlpatterns,
]
