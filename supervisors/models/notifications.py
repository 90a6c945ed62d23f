"""Notifications: who wants to hear about which events (:class:`Subscription`), and each delivery to them.

The outbox is ``supervisor_events`` itself (an event is written in the
transaction of its change); its ``dispatched_at`` marks the events the
dispatcher has fanned out into :class:`Delivery` rows, one per event and
matching subscription, which the delivery jobs send (``docs/notifications.md``).
"""

from __future__ import annotations

import secrets
import uuid

from django.db import models
from django.utils import timezone

from supervisors.enums import DeliveryStatus, NotificationType


def new_secret() -> str:
    """A webhook endpoint's signing secret: 32 random bytes, hex."""
    return secrets.token_hex(32)


class Subscription(models.Model):
    """Which events (by type, by contract) go where: a webhook URL (signed with ``secret``) or an email address."""

    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    #: NotificationType values; empty: every type worth a person's attention.
    event_types = models.JSONField(default=list, blank=True)
    #: Contract ids (strings); empty: every contract. Ids, not a foreign key: makima owns and deletes contracts.
    contract_ids = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(max_length=2000, blank=True, default="")
    secret = models.CharField(max_length=200, default=new_secret, help_text="Signs every webhook request.")
    email = models.EmailField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "notification_subscriptions"
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(webhook_url="") & ~models.Q(email=""))
                | (~models.Q(webhook_url="") & models.Q(email="")),
                name="subscription_one_target",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def target(self) -> str:
        return self.webhook_url or f"mailto:{self.email}"

    def wants(self, event_type: str, contract_id: uuid.UUID | str | None) -> bool:
        """Whether an event of this type, of this contract, is for this subscription."""
        if not self.enabled:
            return False
        if self.event_types and event_type not in self.event_types and event_type != NotificationType.TEST:
            return False
        return not self.contract_ids or (contract_id is not None and str(contract_id) in self.contract_ids)


class Delivery(models.Model):
    """One notification (an event, as its payload was at dispatch) to one subscription, until sent or given up.

    ``order_key`` + ``sequence`` order a supervisor's notifications: one is
    sent only when no earlier one of the same key to the same subscription is
    still pending. ``next_attempt_at`` is also the lease of an attempt in
    flight: a worker that dies mid-send leaves the delivery pending, due again
    when the lease runs out.
    """

    id = models.BigAutoField(primary_key=True)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    #: The event's id: the same in every attempt, for the receiver's de-duplication.
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=40, choices=NotificationType.choices)
    order_key = models.CharField(max_length=80)
    sequence = models.BigIntegerField(default=0)
    payload = models.JSONField()
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    #: After a failure past this moment the delivery is dead-lettered (NOTIFICATIONS_RETRY_FOR_SECONDS).
    give_up_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "notification_deliveries"
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["subscription", "event_id"], name="delivery_once_per_subscription"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="deliveries_due",
            ),
            # /metrics counts dead letters at every scrape: over these rows only, not the delivered history.
            models.Index(fields=["created_at"], condition=models.Q(status="dead"), name="deliveries_dead"),
            models.Index(
                fields=["subscription", "order_key", "sequence"],
                condition=models.Q(status="pending"),
                name="deliveries_pending_in_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} to {self.subscription_id}"
