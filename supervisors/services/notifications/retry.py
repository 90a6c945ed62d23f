"""When to try a failed delivery again: exponential backoff with jitter, capped. Pure."""

from __future__ import annotations

import random

from django.conf import settings


def retry_delay(attempts: int, *, rng: random.Random | None = None) -> float:
    """Seconds until the next attempt after ``attempts`` failed ones.

    ``BASE * 2**(attempts - 1)`` capped at ``NOTIFICATIONS_RETRY_MAX_DELAY_SECONDS``,
    then a random point in its upper half, so the retries of many deliveries
    that failed together (a receiver down) do not arrive together.
    """
    base = max(0.01, float(settings.NOTIFICATIONS_RETRY_BASE_SECONDS))
    cap = max(base, float(settings.NOTIFICATIONS_RETRY_MAX_DELAY_SECONDS))
    delay = min(cap, base * 2 ** min(max(attempts, 1) - 1, 60))
    return (rng or random).uniform(delay / 2, delay)


def lease_seconds() -> float:
    """How long an attempt in flight holds its delivery: past it, a dead worker's delivery is due again."""
    return 2 * float(settings.NOTIFICATIONS_TIMEOUT_SECONDS) + 5
