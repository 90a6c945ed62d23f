"""Per-daemon (or per staff user) request throttling with counters shared by all processes.

Each request costs one UPSERT on ``api_rate_counters`` (a fixed one-minute
window); over ``API_THROTTLE_RATE_PER_MINUTE`` the API answers 429 with
Retry-After. 0 turns throttling off. A daemon request whose key was just looked
up in the database was already counted by that same statement
(:class:`~supervisors.api.authentication.KeyAuth`); it is not counted twice.
The heartbeat's lean path goes further and lets its UPDATE count the request
(:meth:`SharedRateThrottle.pending_count`).
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from supervisors.services.world import PendingCount, hit_rate_counter

from .authentication import RATE_WINDOW_SECONDS, DaemonPrincipal, KeyAuth

WINDOW_SECONDS = RATE_WINDOW_SECONDS


class SharedRateThrottle(BaseThrottle):
    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        rate = settings.API_THROTTLE_RATE_PER_MINUTE
        if rate <= 0:
            return True
        user = request.user
        auth = request.auth
        if isinstance(auth, KeyAuth) and auth.counted is not None:
            count, remaining = auth.counted.count, auth.counted.seconds_left
        else:
            if isinstance(user, DaemonPrincipal):
                ident = user.owner.rate_key
            elif user is not None and getattr(user, "is_authenticated", False):
                ident = f"user:{user.pk}"
            else:
                ident = f"ip:{self.get_ident(request)}"
            count, remaining = hit_rate_counter(ident, window_seconds=WINDOW_SECONDS)
        if count > rate:
            self._wait = max(remaining, 1)
            return False
        return True

    def wait(self) -> float | None:
        return self._wait

    @staticmethod
    def pending_count(request) -> PendingCount | None:
        """A daemon request not counted yet, as a count its write can take; None: count it as usual."""
        rate = settings.API_THROTTLE_RATE_PER_MINUTE
        user, auth = request.user, request.auth
        if rate <= 0 or not isinstance(user, DaemonPrincipal) or not isinstance(auth, KeyAuth) or auth.counted:
            return None
        return PendingCount.now(user.owner.rate_key, limit=rate, window_seconds=WINDOW_SECONDS)
