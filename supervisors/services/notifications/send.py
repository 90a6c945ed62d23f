"""Sending one notification: a signed webhook request (stdlib ``urllib``) or an email (Django's backend).

Each returns None when the target accepted it, else a short error for the
delivery's ``last_error`` (never the secret, never the payload). Webhooks:
only ``http``/``https`` URLs, redirects are not followed (a 3xx is a failure:
a receiver cannot bounce our requests to another host), the request and the
read are bounded by ``NOTIFICATIONS_TIMEOUT_SECONDS``; a 2xx answer is
success, anything else (other status, refused or reset connection, timeout)
is a failure to retry.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from . import payload as payloads

#: The header carrying the signature: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">``.
SIGNATURE_HEADER = "Makima-Signature"
USER_AGENT = "makima-supervisor-notifications/1"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 with ``secret`` over ``"<timestamp>.<body>"``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def is_allowed_url(url: str) -> bool:
    """Only absolute http/https URLs with a host are webhook targets."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


_opener = urllib.request.build_opener(_NoRedirects)


def post_webhook(url: str, secret: str, payload: dict[str, Any], *, timeout: float | None = None) -> str | None:
    """POST the payload, signed now; None on a 2xx answer, else why not."""
    if not is_allowed_url(url):
        return "refused: only http and https URLs are delivered to"
    data = payloads.body(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(secret, int(time.time()), data),
        "Makima-Event-Id": str(payload.get("id")),
        "Makima-Event-Type": str(payload.get("type")),
    }
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    timeout = settings.NOTIFICATIONS_TIMEOUT_SECONDS if timeout is None else timeout
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(65536)
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{type(exc).__name__}: {reason}"[:300]
    return None if 200 <= status < 300 else f"HTTP {status}"


def send_email(address: str, payload: dict[str, Any], *, timeout: float | None = None) -> str | None:
    """Send the notification's email through Django's email backend (EMAIL_URL); None once handed over."""
    timeout = settings.NOTIFICATIONS_TIMEOUT_SECONDS if timeout is None else timeout
    message = EmailMessage(
        subject=payloads.email_subject(payload),
        body=payloads.email_text(payload),
        to=[address],
        headers={"Makima-Event-Id": str(payload.get("id"))},
        connection=get_connection(timeout=timeout),
    )
    try:
        message.send()
    except Exception as exc:  # any backend's failure (SMTP, socket) is a failed attempt, retried
        return f"{type(exc).__name__}: {exc}"[:300]
    return None
