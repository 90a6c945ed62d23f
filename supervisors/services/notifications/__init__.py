"""Notifications that are never lost: events worth a person's attention, to webhooks and email addresses.

Modules: ``types`` (which events, under which type; pure), ``payload`` (what
a notification says; pure), ``dispatch`` (the outbox: events -> deliveries),
``deliver`` (claim, send, record; staff's retry, discard, test event),
``send`` (a signed webhook request, an email), ``retry`` (backoff), ``delivery_rows`` (the batch INSERT).
``docs/notifications.md`` says what is guaranteed.
"""

from .deliver import (
    DeliverReport,
    claim_next_delivery,
    deliver_due_notifications,
    discard_deliveries,
    record_attempt,
    retry_deliveries,
    send_test_event,
)
from .dispatch import DispatchReport, dispatch_batch, dispatch_new_events
from .send import SIGNATURE_HEADER, is_allowed_url, sign

__all__ = [
    "SIGNATURE_HEADER",
    "DeliverReport",
    "DispatchReport",
    "claim_next_delivery",
    "deliver_due_notifications",
    "discard_deliveries",
    "dispatch_batch",
    "dispatch_new_events",
    "is_allowed_url",
    "record_attempt",
    "retry_deliveries",
    "send_test_event",
    "sign",
]
