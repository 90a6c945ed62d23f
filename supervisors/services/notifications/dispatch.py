"""The dispatcher: new events -> one delivery per matching subscription, then the events are marked dispatched.

``supervisor_events`` is the outbox: every event is written in the
transaction of its change, with ``dispatched_at`` NULL. A batch of them (in
``(supervisor, sequence)`` order, through a partial index) is read, turned into
deliveries and marked, in ONE transaction: a dispatcher that dies leaves the
batch undispatched, and the next run does it; a delivery exists once per
(subscription, event) whatever happens (a unique constraint). One dispatcher
works at a time (a PostgreSQL advisory lock; SQLite's writers are serialized
anyway), so a supervisor's events become deliveries in their order.

At most seven statements per batch whatever its size: lock, events (with
their supervisor's contract and pending questions), daemon events (a daemon
gone: ``DaemonEvent``), subscriptions, INSERT of the deliveries, UPDATE of
each marker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from supervisors.enums import NotificationType
from supervisors.models import DaemonEvent, Delivery, Subscription, SupervisorEvent

from . import payload as payloads
from .delivery_rows import insert_deliveries
from .types import notification_type

logger = logging.getLogger("supervisors.notifications")

#: Any constant; the advisory lock that makes the dispatcher one at a time (PostgreSQL).
_DISPATCH_LOCK = 7_117_001


@dataclass
class DispatchReport:
    events: int = 0
    deliveries: int = 0
    #: Another dispatcher held the lock: this run did nothing.
    busy: bool = False


def _take_lock() -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_DISPATCH_LOCK])
        return bool(cursor.fetchone()[0])


def _facts(event: SupervisorEvent, kind: str) -> payloads.EventFacts:
    supervisor = event.supervisor
    question = None
    if kind == "question_asked":
        wanted = (event.details or {}).get("questionId")
        pending = supervisor.pending_questions if isinstance(supervisor.pending_questions, list) else []
        question = next((q for q in pending if isinstance(q, dict) and q.get("id") == wanted), None)
    return payloads.EventFacts(
        event_id=event.id,
        type=kind,
        kind=event.kind,
        occurred_at=event.occurred_at,
        supervisor_id=event.supervisor_id,
        contract_id=event.contract_id,
        contract_name=supervisor.contract.name if supervisor.contract_id else "",
        actor=event.actor_label,
        details=event.details if isinstance(event.details, dict) else {},
        question=question,
    )


def _daemon_facts(event: DaemonEvent) -> payloads.EventFacts:
    return payloads.EventFacts(
        event_id=event.id,
        type=NotificationType.DAEMON_GONE,
        kind=event.kind,
        occurred_at=event.occurred_at,
        supervisor_id=None,
        contract_id=None,
        contract_name="",
        actor="system:watchdog",
        details=event.details if isinstance(event.details, dict) else {},
        daemon_id=event.daemon_id,
        daemon_name=event.daemon_name,
    )


def dispatch_batch(*, limit: int | None = None, now: datetime | None = None) -> DispatchReport:
    """Dispatch up to ``limit`` (NOTIFICATIONS_DISPATCH_BATCH) undispatched events; opens its transaction.

    Enqueues the delivery job when the transaction commits, if it made deliveries.
    """
    limit = limit or settings.NOTIFICATIONS_DISPATCH_BATCH
    now = now or timezone.now()
    report = DispatchReport()
    with transaction.atomic():
        if not _take_lock():
            report.busy = True
            return report
        events = list(
            SupervisorEvent.objects.filter(dispatched_at__isnull=True)
            .order_by("supervisor_id", "sequence")
            .select_related("supervisor__contract")
            .only(
                "id", "supervisor_id", "contract_id", "sequence", "kind", "occurred_at", "actor_label", "details",
                "supervisor__pending_questions", "supervisor__contract_id", "supervisor__contract__name",
            )[:limit]
        )  # fmt: skip
        daemon_events = list(DaemonEvent.objects.filter(dispatched_at__isnull=True).order_by("occurred_at")[:limit])
        if not events and not daemon_events:
            return report
        subscriptions = list(Subscription.objects.filter(enabled=True))
        give_up = now + timedelta(seconds=settings.NOTIFICATIONS_RETRY_FOR_SECONDS)
        deliveries: list[Delivery] = []

        def fan_out(facts: payloads.EventFacts, order_key: str, sequence: int) -> None:
            targets = [s for s in subscriptions if s.wants(facts.type, facts.contract_id)]
            if not targets:
                return
            content = payloads.build(facts)
            deliveries.extend(
                Delivery(
                    subscription=subscription,
                    event_id=facts.event_id,
                    event_type=facts.type,
                    order_key=order_key,
                    sequence=sequence,
                    payload=content,
                    created_at=now,
                    next_attempt_at=now,
                    give_up_at=give_up,
                )
                for subscription in targets
            )

        for event in events:
            kind = notification_type(event.kind, event.details)
            if kind:
                fan_out(_facts(event, kind), str(event.supervisor_id), event.sequence)
        for event in daemon_events:
            fan_out(_daemon_facts(event), f"daemon:{event.daemon_id}", int(event.occurred_at.timestamp() * 1e6))
        if deliveries:
            insert_deliveries(deliveries)
            transaction.on_commit(_enqueue_delivery)
        if events:
            SupervisorEvent.objects.filter(pk__in=[e.pk for e in events]).update(dispatched_at=now)
        if daemon_events:
            DaemonEvent.objects.filter(pk__in=[e.pk for e in daemon_events]).update(dispatched_at=now)
        report.events, report.deliveries = len(events) + len(daemon_events), len(deliveries)
    return report


def dispatch_new_events(*, batches: int = 20) -> DispatchReport:
    """Dispatch batch after batch until no event is left (at most ``batches``); the totals."""
    total = DispatchReport()
    for _ in range(max(1, batches)):
        report = dispatch_batch()
        total.events += report.events
        total.deliveries += report.deliveries
        total.busy = total.busy or report.busy
        if report.busy or report.events < settings.NOTIFICATIONS_DISPATCH_BATCH:
            break
    if total.events:
        logger.info("notifications: dispatched %d event(s) into %d delivery(ies)", total.events, total.deliveries)
    return total


def _enqueue_delivery() -> None:
    from supervisors import jobs

    jobs.deliver_notifications.enqueue()
