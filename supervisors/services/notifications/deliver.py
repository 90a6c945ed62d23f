"""Sending due deliveries (claim, send, record), and staff's retry, discard and test event.

A delivery is claimed with one conditional UPDATE (its ``attempts`` as seen,
still pending and due) that counts the attempt and moves ``next_attempt_at``
past the attempt's lease: any number of workers may run at once, each
delivery is attempted by one of them at a time, and a worker killed mid-send
leaves it pending and due again when the lease runs out (at-least-once: the
receiver may get it twice, with the same event id). The result is recorded
with the same guard, so a late worker whose lease ran out never overwrites
a newer attempt's result.

Order: a delivery is due only when no earlier one (lower ``sequence``) of the
same supervisor to the same subscription is still pending; a supervisor's
notifications to one subscription are sent one at a time, in their order,
each after the earlier one was delivered, dead-lettered or discarded.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone

from supervisors.enums import DeliveryStatus, NotificationType
from supervisors.models import Delivery, Subscription

from . import payload as payloads
from .retry import lease_seconds, retry_delay
from .send import post_webhook, send_email

logger = logging.getLogger("supervisors.notifications")


@dataclass
class DeliverReport:
    delivered: int = 0
    failed: int = 0
    dead: int = 0


def due_deliveries(now: datetime) -> QuerySet[Delivery]:
    """Pending deliveries whose time has come and that no earlier pending one of their supervisor holds back."""
    earlier = Delivery.objects.filter(
        subscription=OuterRef("subscription"),
        order_key=OuterRef("order_key"),
        sequence__lt=OuterRef("sequence"),
        status=DeliveryStatus.PENDING,
    )
    return (
        Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .filter(~Exists(earlier))
        .order_by("next_attempt_at", "id")
    )


def claim_next_delivery(now: datetime | None = None) -> Delivery | None:
    """Take one due delivery for an attempt (counted, leased), or None when nothing is due."""
    now = now or timezone.now()
    lease_until = now + timedelta(seconds=lease_seconds())
    for pk, attempts in due_deliveries(now).values_list("id", "attempts")[:10]:
        taken = Delivery.objects.filter(
            pk=pk, attempts=attempts, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
        ).update(attempts=F("attempts") + 1, next_attempt_at=lease_until, last_attempt_at=now)
        if taken:
            return Delivery.objects.select_related("subscription").get(pk=pk)
    return None


def attempt(delivery: Delivery) -> str | None:
    """Send a claimed delivery to its subscription's webhook or address; None on success, else the error."""
    subscription = delivery.subscription
    if subscription.webhook_url:
        return post_webhook(subscription.webhook_url, subscription.secret, delivery.payload)
    return send_email(subscription.email, delivery.payload)


def record_attempt(delivery: Delivery, error: str | None, *, now: datetime | None = None) -> str:
    """Write an attempt's outcome (delivered, retry later, or dead-lettered); the delivery's new status."""
    now = now or timezone.now()
    mine = Delivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts, status=DeliveryStatus.PENDING)
    if error is None:
        mine.update(status=DeliveryStatus.DELIVERED, delivered_at=now, last_error="")
        return DeliveryStatus.DELIVERED
    if now >= delivery.give_up_at:
        mine.update(status=DeliveryStatus.DEAD, last_error=error)
        logger.warning("notifications: delivery %s dead-lettered after %d attempts: %s", delivery.pk,
                       delivery.attempts, error)  # fmt: skip
        return DeliveryStatus.DEAD
    retry_at = min(now + timedelta(seconds=retry_delay(delivery.attempts)), delivery.give_up_at)
    mine.update(next_attempt_at=retry_at, last_error=error)
    return DeliveryStatus.PENDING


def deliver_due_notifications(*, limit: int = 500, slice_seconds: float | None = None) -> DeliverReport:
    """Send due deliveries until none is due, ``limit`` were tried, or the time slice is over.

    Each claim and each outcome is its own short transaction (autocommit);
    no transaction is open while a request is in flight.
    """
    slice_seconds = settings.NOTIFICATIONS_DELIVER_SLICE_SECONDS if slice_seconds is None else slice_seconds
    stop_at = time.monotonic() + slice_seconds
    report = DeliverReport()
    for _ in range(limit):
        delivery = claim_next_delivery()
        if delivery is None:
            break
        status = record_attempt(delivery, attempt(delivery))
        if status == DeliveryStatus.DELIVERED:
            report.delivered += 1
        elif status == DeliveryStatus.DEAD:
            report.dead += 1
        else:
            report.failed += 1
        if time.monotonic() >= stop_at:
            break
    return report


# --- staff's actions --------------------------------------------------------------------------------------


def retry_deliveries(ids: list[int]) -> int:
    """Dead-lettered, discarded or failing deliveries become due now, with a fresh retry window; how many."""
    now = timezone.now()
    changed = (
        Delivery.objects.filter(pk__in=ids)
        .exclude(status=DeliveryStatus.DELIVERED)
        .update(
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            give_up_at=now + timedelta(seconds=settings.NOTIFICATIONS_RETRY_FOR_SECONDS),
        )
    )
    if changed:
        transaction.on_commit(_enqueue_delivery)
    return changed


def discard_deliveries(ids: list[int]) -> int:
    """Pending or dead deliveries are given up for good (the later ones of their supervisor go on); how many."""
    return (
        Delivery.objects.filter(pk__in=ids, status__in=[DeliveryStatus.PENDING, DeliveryStatus.DEAD])
        .update(status=DeliveryStatus.DISCARDED)
    )  # fmt: skip


def send_test_event(subscription: Subscription, *, actor: str) -> Delivery:
    """Queue a ``test`` notification to one subscription (delivered like any other, by the delivery job)."""
    now = timezone.now()
    event_id = uuid.uuid4()
    content = payloads.build(
        payloads.EventFacts(
            event_id=event_id,
            type=NotificationType.TEST,
            kind=NotificationType.TEST,
            occurred_at=now,
            supervisor_id=None,
            contract_id=None,
            contract_name="",
            actor=actor,
            details={"message": f"A test of the subscription {subscription.name!r}, sent by {actor}."},
        )
    )
    delivery = Delivery.objects.create(
        subscription=subscription,
        event_id=event_id,
        event_type=NotificationType.TEST,
        order_key=f"test:{event_id}",
        payload=content,
        created_at=now,
        next_attempt_at=now,
        give_up_at=now + timedelta(seconds=settings.NOTIFICATIONS_RETRY_FOR_SECONDS),
    )
    transaction.on_commit(_enqueue_delivery)
    return delivery


def _enqueue_delivery() -> None:
    from supervisors import jobs

    jobs.deliver_notifications.enqueue()
