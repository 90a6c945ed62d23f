"""System checks that catch deployment mistakes at start-up (every manage.py command, runserver, gunicorn)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

logger = logging.getLogger("makima_supervisor")

REDIRECT_LOOP = "supervisors.W001"


@register(Tags.security)
def check_https_redirect_trusts_a_forwarded_protocol(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when HTTPS redirects are on but no forwarded protocol is trusted.

    Behind a TLS-terminating proxy the request reaches the service over plain
    HTTP; unless the proxy's X-Forwarded-Proto is believed, every request is
    redirected to itself, for ever. Registered as a normal (not deploy-only)
    check so that runserver, every command and gunicorn's start-up say it.
    """
    if not getattr(settings, "SECURE_SSL_REDIRECT", False) or settings.SECURE_PROXY_SSL_HEADER is not None:
        return []
    return [
        Warning(
            "SECURE_SSL_REDIRECT is on but no forwarded protocol is trusted: behind a TLS-terminating proxy "
            "every request is redirected to itself (a redirect loop).",
            hint=(
                "Behind a proxy, set BEHIND_TLS_PROXY=true and TRUSTED_PROXIES to the proxy's addresses. "
                "If the service terminates TLS itself, silence this with SILENCED_SYSTEM_CHECKS=" + REDIRECT_LOOP + "."
            ),
            id=REDIRECT_LOOP,
        )
    ]


def log_startup_warnings() -> None:
    """Log this module's warnings once when a WSGI/ASGI server loads the service (it runs no checks itself)."""
    silenced = set(settings.SILENCED_SYSTEM_CHECKS)
    for message in check_https_redirect_trusts_a_forwarded_protocol():
        if message.id not in silenced:
            logger.warning("%s: %s HINT: %s", message.id, message.msg, message.hint)
