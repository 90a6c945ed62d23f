"""Daemons authenticate with ``Authorization: Bearer mks_<prefix>_<secret>``.

Only a SHA-256 of each key is stored. A valid key's owner is remembered in this
process for ``API_KEY_CACHE_SECONDS`` (default 5) so the hot path (heartbeats)
does not ask the database on every request; a revoked key is therefore refused
at most that many seconds after revocation, by every process. Unknown keys are
never cached, so a new key works at once.

Every authenticated request renews the daemon's lease (``renew_lease``: one
small UPDATE every few seconds per daemon and process, not per request).

When the cache has to ask, the same statement also counts the request for the
throttle (PostgreSQL; see ``lookup_daemon_key_and_count``), so a heartbeat costs
two queries whether the key was cached or not: the counter (or key and counter
together) and the UPDATE.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from makima_supervisor.request_log import bind_daemon
from supervisors.models import Daemon
from supervisors.services.actors import Actor
from supervisors.services.ownership import note_lease_renewed, renew_lease
from supervisors.services.world import KeyOwner, RateCount, hash_key, lookup_daemon_key, lookup_daemon_key_and_count

_MAX_CACHED_KEYS = 10_000
_cache: dict[str, tuple[float, KeyOwner]] = {}
_lock = threading.Lock()
#: The cache's clock (monotonic seconds); a module attribute so tests can move time on.
clock = time.monotonic

#: The throttle's fixed window; the key lookup counts requests in it too.
RATE_WINDOW_SECONDS = 60


def clear_key_cache() -> None:
    """Forget every cached key (tests; a process that wants revocations to bite at once)."""
    with _lock:
        _cache.clear()


@dataclass(frozen=True)
class DaemonPrincipal:
    """``request.user`` for a daemon: not a Django user, never staff, no Django permissions."""

    owner: KeyOwner
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    is_anonymous: bool = False

    @property
    def daemon_id(self) -> uuid.UUID:
        return self.owner.daemon_id

    @property
    def daemon(self) -> Daemon:
        """A Daemon instance carrying id and name: enough to record who acted, without a query."""
        return Daemon(id=self.owner.daemon_id, name=self.owner.daemon_name)

    @property
    def actor(self) -> Actor:
        return Actor.for_daemon(self.daemon)

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False

    def get_username(self) -> str:
        return f"daemon:{self.owner.daemon_name}"

    def __str__(self) -> str:
        return self.get_username()


@dataclass(frozen=True)
class KeyAuth:
    """``request.auth`` for a daemon: whose key it is, and the request's rate count if the lookup took it."""

    owner: KeyOwner
    counted: RateCount | None = None
    #: The lookup's statement renewed the daemon's lease too (PostgreSQL, with the throttle on).
    lease_renewed: bool = False


def find_key_owner(raw_key: str) -> KeyAuth | None:
    """The key's owner, from this process's cache or the database (counting the request on the way)."""
    digest = hash_key(raw_key)
    now = clock()
    cached = _cache.get(digest)
    if cached is not None and cached[0] > now:
        return KeyAuth(cached[1])
    counted = None
    if settings.API_THROTTLE_RATE_PER_MINUTE > 0:
        owner, counted = lookup_daemon_key_and_count(raw_key, window_seconds=RATE_WINDOW_SECONDS)
    else:
        owner = lookup_daemon_key(raw_key)
    ttl = settings.API_KEY_CACHE_SECONDS
    with _lock:
        if owner is None or ttl <= 0:
            _cache.pop(digest, None)
        else:
            if len(_cache) >= _MAX_CACHED_KEYS:
                _cache.clear()
            _cache[digest] = (now + ttl, owner)
    return None if owner is None else KeyAuth(owner, counted, lease_renewed=counted is not None)


class DaemonKeyAuthentication(authentication.BaseAuthentication):
    """Bearer API keys of daemons; a wrong or revoked key is a 401, never a fall-through."""

    keyword = "Bearer"

    def authenticate(self, request):
        # META, not request.headers: building the headers mapping costs more than the rest of this.
        header = request.META.get("HTTP_AUTHORIZATION", "").split()
        if not header or header[0].lower() != "bearer":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <key>'.")
        raw_key = header[1]
        if not raw_key.isascii() or not raw_key.startswith("mks_") or len(raw_key) > 200:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        auth = find_key_owner(raw_key)
        if auth is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        if auth.lease_renewed:
            note_lease_renewed(auth.owner.daemon_id, connected=True)
        else:
            renew_lease(auth.owner.daemon_id)  # any request keeps the daemon alive (a statement every few seconds)
        bind_daemon(auth.owner.daemon_name)  # this request's log lines name the daemon
        return DaemonPrincipal(auth.owner), auth

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


class DaemonKeyScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema how daemons authenticate."""

    target_class = DaemonKeyAuthentication
    name = "daemonApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mks_<prefix>_<secret>",
            "description": "A daemon's API key (manage.py create_daemon_key). Revoked keys stop working within "
            "API_KEY_CACHE_SECONDS (default 5 s).",
        }
