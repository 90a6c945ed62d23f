"""The admin site: Django's own, with a guard that turns a hostile link into a clear 400 page.

Staff follow links from chat, tickets and browser history. Django's change
lists pass querystring values to the database as typed: a NUL is refused by
PostgreSQL, a year or an id beyond the column's range overflows in Python or
SQLite, SQLite refuses a search pattern of 50,000 characters, and each of
those was a 500 on any list page, including the lists of third-party apps
(users, tasks). The guard sits in ``admin_view``, which wraps
every admin page, so it covers them all with one rule.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.db import DataError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.template.response import TemplateResponse

#: Longest search text a list accepts: longer is no name or message anyone types, and SQLite refuses
#: LIKE patterns beyond 50,000 bytes with an OperationalError.
MAX_SEARCH_CHARS = 1_000
#: Failures a querystring value alone can cause in a page that only reads.
QUERYSTRING_FAILURES = (OverflowError, DataError)


def nul_parameter(query: QueryDict) -> str | None:
    """The first parameter whose name or value carries a NUL, which no database column can hold."""
    for name, values in query.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            return name
    return None


class SupervisorAdminSite(admin.AdminSite):
    site_header = "makima supervisors"
    site_title = "makima supervisors"
    index_title = "Supervisors, daemons and their records"
    #: No public site behind the admin: "View site" would be a 404.
    site_url = None
    #: The model sidebar takes 290 px that the supervisor list needs to fit a 1366 px laptop screen;
    #: the index and the breadcrumbs lead to every model.
    enable_nav_sidebar = False

    def admin_view(self, view: Callable, cacheable: bool = False) -> Callable:
        return super().admin_view(self._refusing_hostile_links(view), cacheable)

    def _refusing_hostile_links(self, view: Callable) -> Callable:
        @wraps(view)
        def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            bad = nul_parameter(request.GET)
            if bad is not None:
                return self.bad_link(request, f"The link's parameter {bad[:80]!r} carries a NUL character.")
            if len(request.GET.get("q", "")) > MAX_SEARCH_CHARS:
                return self.bad_link(request, f"Search text is limited to {MAX_SEARCH_CHARS:,} characters.")
            if request.method not in ("GET", "HEAD"):
                return view(request, *args, **kwargs)
            try:
                response = view(request, *args, **kwargs)
                if isinstance(response, TemplateResponse):
                    # A list's rows are read while the template renders: render here, where the guard sees it.
                    response.render()
            except QUERYSTRING_FAILURES:
                return self.bad_link(request, "A value in the link is out of range for what it filters.")
            return response

        return guarded

    def bad_link(self, request: HttpRequest, reason: str) -> TemplateResponse:
        """400: what was wrong, and the same page without the link's parameters."""
        context = {**self.each_context(request), "title": "This link cannot be used", "reason": reason}
        context["clean_url"] = request.path
        return TemplateResponse(request, "admin/bad_link.html", context, status=400)


class SupervisorAdminConfig(AdminConfig):
    """``django.contrib.admin`` with this site as ``admin.site``, for every app's registrations."""

    default_site = "makima_supervisor.admin_site.SupervisorAdminSite"
