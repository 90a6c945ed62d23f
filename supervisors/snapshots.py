"""Figures a background job computes over a large table, asked for by the pages and scrapes that read them.

A reader that finds the stored figures older than their refresh period asks
for a new computation; one conditional UPDATE of the snapshot row claims the
request, so of many readers and processes only one enqueues the job. A
request that was not served in a while (no worker ran it) is renewed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from supervisors.models import MetricsSnapshot


def request_refresh(name: str, enqueue: Callable[[], object], now: datetime, refresh_seconds: int) -> bool:
    """Enqueue the refresh job of snapshot ``name`` unless another reader just did; whether this one did."""
    renew_before = now - timedelta(seconds=max(60, 4 * refresh_seconds))
    claimed = MetricsSnapshot.objects.filter(
        Q(refresh_requested_at__isnull=True) | Q(refresh_requested_at__lt=renew_before), name=name
    ).update(refresh_requested_at=now)
    if claimed:
        transaction.on_commit(enqueue)
    return bool(claimed)


def store(name: str, figures: dict[str, Any], computed_at: datetime, duration_ms: int) -> None:
    """Save a computation of snapshot ``name`` (one upsert), answering any pending refresh request."""
    MetricsSnapshot.objects.bulk_create(
        [
            MetricsSnapshot(
                name=name,
                figures=figures,
                computed_at=computed_at,
                duration_ms=duration_ms,
                refresh_requested_at=None,
            )
        ],
        update_conflicts=True,
        unique_fields=["name"],
        update_fields=["figures", "computed_at", "duration_ms", "refresh_requested_at"],
    )


def refreshed_moments_ago(name: str, refresh_seconds: int) -> bool:
    """Whether another run computed ``name`` within half a period (refresh jobs queued while no worker ran pile up)."""
    fresh_since = timezone.now() - timedelta(seconds=refresh_seconds / 2)
    return MetricsSnapshot.objects.filter(name=name, computed_at__gte=fresh_since).exists()
