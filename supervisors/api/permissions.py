"""Who may call what: daemons (scoped to their supervisors by the views) and staff with Django permissions."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from .authentication import DaemonPrincipal


def is_daemon(request) -> bool:
    return isinstance(request.user, DaemonPrincipal)


class IsDaemonOrStaff(BasePermission):
    """A daemon key, or an active staff user holding the view's ``staff_permissions`` for the method.

    ``staff_permissions`` on a view maps an HTTP method to the Django permissions
    required (default: view for safe methods, change otherwise, on supervisor states).
    """

    default_staff_permissions = {
        "GET": ["supervisors.view_supervisorstate"],
        "HEAD": ["supervisors.view_supervisorstate"],
        "OPTIONS": [],
    }
    default_write = ["supervisors.change_supervisorstate"]

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            return False
        if is_daemon(request):
            return not getattr(view, "staff_only", False)
        if not (user.is_active and user.is_staff):
            return False
        if getattr(view, "daemon_only", False):
            return False
        perms_by_method = getattr(view, "staff_permissions", None) or {}
        perms = perms_by_method.get(
            request.method, self.default_staff_permissions.get(request.method, self.default_write)
        )
        return user.has_perms(perms)
