"""Two tiny views for tests/foundation/test_lazy_messages.py."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import path


def add_then_redirect(request):
    messages.success(request, "Saved <b>it</b>.")
    return redirect("/show/")


def show(request):
    return HttpResponse("|".join(str(m) for m in messages.get_messages(request)))


def untouched(request):
    return HttpResponse("no messages here")


urlpatterns = [path("add/", add_then_redirect), path("show/", show), path("untouched/", untouched)]
