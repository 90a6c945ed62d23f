from __future__ import annotations

import time

import pytest
from django.utils import timezone

from supervisors.enums import DaemonStatus
from supervisors.models import Delivery, Subscription
from supervisors.services.notifications import deliver_due_notifications, dispatch_new_events
from tests.factories import make_contract, make_daemon, make_supervisor


@pytest.fixture(autouse=True)
def quick_retries(settings):
    """Retries in tens of milliseconds, so a test sees many; links on a known public URL."""
    settings.NOTIFICATIONS_RETRY_BASE_SECONDS = 0.02
    settings.NOTIFICATIONS_RETRY_MAX_DELAY_SECONDS = 0.1
    settings.NOTIFICATIONS_RETRY_FOR_SECONDS = 60
    settings.NOTIFICATIONS_TIMEOUT_SECONDS = 2
    settings.PUBLIC_BASE_URL = "https://makima.example.com"


def supervisors(count: int, **fields):
    daemon = make_daemon("daemon-n")
    daemon.__class__.objects.filter(pk=daemon.pk).update(
        status=DaemonStatus.CONNECTED, last_heartbeat_at=timezone.now()
    )
    return [make_supervisor(make_contract(f"Contract {i}"), daemon=daemon, **fields) for i in range(count)]


def webhook(url: str, **fields) -> Subscription:
    return Subscription.objects.create(name=fields.pop("name", "hook"), webhook_url=url, **fields)


def drain(seconds: float = 20.0) -> None:
    """Dispatch and deliver until nothing is pending (or fail after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        dispatch_new_events()
        deliver_due_notifications(slice_seconds=1)
        if not Delivery.objects.filter(status="pending").exists():
            return
        assert time.monotonic() < deadline, list(Delivery.objects.values("id", "status", "attempts", "last_error"))
        time.sleep(0.02)
