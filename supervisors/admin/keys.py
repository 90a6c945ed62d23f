"""Daemon API keys from the admin: issue one for a daemon, revoke selected ones, each after a confirmation.

Both go through the world services (``create_daemon_key``, ``revoke_daemon_key``),
as ``manage.py create_daemon_key`` does. A new key is shown once, on the page
that answers the confirming POST: it is not put in a message (those live in the
session or a cookie), a log entry or a redirect URL, and the page tells the
browser not to keep it (``Cache-Control: no-store``). Every key issued or
revoked gets a Django admin log entry naming the staff user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers, patch_cache_control

from supervisors.forms import StorableForm
from supervisors.models import Daemon, DaemonApiKey
from supervisors.services.errors import ServiceError
from supervisors.services.world import create_daemon_key, revoke_daemon_key

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

ISSUE_PERMISSION = "supervisors.add_daemonapikey"
REVOKE_PERMISSION = "supervisors.change_daemonapikey"
#: Keys listed one by one on the revoke confirmation page; the rest are counted.
PREVIEW_LIMIT = 50


class IssueKeyForm(StorableForm):
    name = forms.CharField(
        max_length=100,
        required=False,
        help_text="Optional: what the key is for (e.g. the host or the deployment), to recognise it later.",
    )


def issue_key_view(model_admin: ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """GET: the confirmation; POST: issue the key and show it, this one time."""
    if not request.user.has_perm(ISSUE_PERMISSION):
        raise PermissionDenied
    daemon = model_admin.get_object(request, object_id)
    if daemon is None:
        raise Http404("No such daemon.")
    form = IssueKeyForm(request.POST if request.method == "POST" else None)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Issue an API key for {daemon.name}",
        "subtitle": None,
        "opts": Daemon._meta,
        "original": daemon,
        "form": form,
        "active_keys": daemon.api_keys.filter(revoked_at__isnull=True).count(),
        "keys_url": _keys_url(daemon),
        "change_url": reverse("admin:supervisors_daemon_change", args=[daemon.pk]),
    }
    if request.method == "POST" and form.is_valid():
        try:
            issued = create_daemon_key(daemon.pk, name=form.cleaned_data["name"])
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            model_admin.log_addition(request, issued.api_key, f"Issued API key {issued.api_key.prefix}… for {daemon}.")
            response = TemplateResponse(
                request,
                "admin/supervisors/daemon/key_issued.html",
                {**context, "title": f"New API key for {daemon.name}", "api_key": issued.api_key, "raw": issued.raw},
            )
            add_never_cache_headers(response)
            patch_cache_control(response, no_store=True)
            return response
    return TemplateResponse(request, "admin/supervisors/daemon/issue_key.html", context)


def _keys_url(daemon: Daemon) -> str:
    return reverse("admin:supervisors_daemonapikey_changelist") + f"?daemon__id__exact={daemon.pk}"


@admin.action(description="Revoke selected API keys…", permissions=["revoke"])
def revoke_keys(model_admin: ModelAdmin, request: HttpRequest, queryset: QuerySet[DaemonApiKey]):
    """First a confirmation page listing the keys; on "Yes" each is revoked through the service."""
    if "_confirm" not in request.POST:
        keys = list(queryset.select_related("daemon").order_by("daemon__name", "created_at")[:PREVIEW_LIMIT])
        total = queryset.count()
        context = {
            **model_admin.admin_site.each_context(request),
            "title": "Revoke API keys",
            "subtitle": None,
            "opts": DaemonApiKey._meta,
            "keys": keys,
            "total": total,
            "more": max(0, total - len(keys)),
            "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": reverse("admin:supervisors_daemonapikey_changelist"),
        }
        return TemplateResponse(request, "admin/supervisors/daemonapikey/revoke_confirmation.html", context)
    revoked = already = 0
    for key in queryset.select_related("daemon"):
        if key.revoked_at is not None:
            already += 1
            continue
        try:
            key = revoke_daemon_key(key.pk)
        except ServiceError as exc:
            model_admin.message_user(request, f"{key}: {exc.message}", messages.ERROR)
            continue
        model_admin.log_change(request, key, f"Revoked API key {key.prefix}… of {key.daemon}.")
        revoked += 1
    if revoked:
        model_admin.message_user(
            request,
            f"Revoked {revoked} API key{'s' if revoked != 1 else ''}; daemons using "
            f"{'them' if revoked != 1 else 'it'} are refused within API_KEY_CACHE_SECONDS.",
            messages.SUCCESS,
        )
    if already:
        model_admin.message_user(request, f"{already} already revoked, left as they were.", messages.INFO)
    return None
