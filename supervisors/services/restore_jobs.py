"""Restore jobs: an admin restore over more than a page, run by workers, each supervisor exactly once.

:func:`queue_restore_job` runs in the admin's request: one :class:`RestoreJob`
row and one :class:`RestoreJobItem` per selected supervisor (one
``INSERT ... SELECT`` whatever the selection's size), the job enqueued when
that commits. A worker then runs :func:`run_restore_job`: it takes the
pending items a chunk at a time, locked with ``FOR UPDATE SKIP LOCKED``
(PostgreSQL; SQLite lets one writer in at a time anyway), restores their
supervisors through the protocol's batch path (``restore_page``: the rows
locked and re-checked, one restoration log row each, a failure isolated to
its supervisor) and marks the items in the same transaction. Hence:

- a worker killed in the middle of a chunk loses that chunk's transaction
  whole: its items are still pending and its supervisors untouched, so the
  next run restores each of them once, and nothing committed is redone;
- two runs of one job at once (a rescued job whose first worker was only slow)
  never take the same item;
- a run works for ``RESTORE_JOB_SLICE_SECONDS`` and then hands the rest to a
  new run at the back of the queue (the job shows ``queued`` until a worker
  takes it), so a big job does not hold a lone worker away from the watchdog;
- a job whose worker died (django-tasks-db leaves that task RUNNING for ever)
  makes no progress: :func:`rescue_stalled_restore_jobs`, a periodic job,
  enqueues it again once ``last_progress_at`` is older than
  ``RESTORE_JOB_STALLED_AFTER_SECONDS``, and gives it up (failed, the rest
  skipped) after ``RESTORE_JOB_MAX_RESCUES`` rescues without progress;
- Cancel (:func:`cancel_restore_job`) skips at once every pending item no
  worker holds; a running worker finishes its chunk and sees the cancel
  before the next one.

Every restoration is in the restoration log with the staff user who queued
the job as its actor and ``(restore job #N)`` after the staff's reason, and in
Django's admin log, as the admin's in-request restores are.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import EmptyResultSet
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone

from supervisors.enums import (
    ActorKind,
    EventKind,
    RecoveryAction,
    RestorationOutcome,
    RestorationSource,
    RestoreJobItemStatus,
    RestoreJobKind,
    RestoreJobStatus,
    SupervisorStatus,
)
from supervisors.models import Daemon, RestoreJob, RestoreJobItem, SupervisorState
from supervisors.selectors import SupervisorSelection

from .actors import Actor
from .errors import Conflict, InvalidInput, NotFound
from .events import NewEvent, record_events
from .restoration import RestorationResult, RestoreOptions, restore_page
from .restoration.protocol import error_text
from .watchdog import INTERRUPTIBLE_STATES

logger = logging.getLogger("supervisors.restore_jobs")

PENDING = RestoreJobItemStatus.PENDING
#: Outcomes of items that are not restorations.
OUTCOME_INTERRUPTED = "interrupted"
OUTCOME_LEFT_AS_IT_WAS = "left_as_it_was"
OUTCOME_NOT_ATTEMPTED = "not_attempted"
OUTCOME_NOT_FOUND = "not_found"
OUTCOME_CANCELLED = "cancelled"
OUTCOME_GIVEN_UP = "given_up"

#: One item's end: (status, outcome, message).
Ending = tuple[str, str, str]


def describe_restoration(result: RestorationResult) -> str:
    """One supervisor's outcome in the words the command and the log use, then what it did."""
    text = f"{result.outcome} ({result.recovery_action}"
    if result.checkpoint_id:
        text += f", checkpoint #{result.checkpoint_id}"
    text += ")"
    if not result.restored:
        text += ": not restored, marked blocked until a person fixes it"
        if result.validation.issues:
            text += f" ({'; '.join(result.validation.issues[:3])})"
    else:
        text += f", restoration #{result.context.restoration_count}"
    if result.redelivered_question_ids:
        text += f", {len(result.redelivered_question_ids)} question(s) re-delivered"
    if result.finished_task_ids:
        text += f", {len(result.finished_task_ids)} task(s) finished meanwhile"
    return text


# --- queueing ------------------------------------------------------------------------------------


def job_restore_options(kind: str, *, actor: Actor, reason: str) -> RestoreOptions:
    """The restoration options of a restore or start-fresh job; ``check()`` refuses a reason that cannot be stored."""
    force = RecoveryAction.START_FRESH if kind == RestoreJobKind.START_FRESH else None
    return RestoreOptions(source=RestorationSource.MANUAL, actor=actor, reason=reason, force_action=force)


def queue_restore_job(
    supervisors: QuerySet[SupervisorState],
    *,
    kind: str,
    reason: str,
    requested_by: Any,
    description: str = "",
    daemon: Daemon | None = None,
    token: uuid.UUID | None = None,
) -> tuple[RestoreJob, bool]:
    """Queue a job over the selected supervisors; ``(job, created)``.

    One transaction: the job, its items (one ``INSERT ... SELECT``), and the
    job's enqueueing when it commits. ``token`` is the confirmation form's: a
    second submit of the same form answers the job the first one queued, with
    ``created`` False. Raises InvalidInput for an unknown kind, an empty or
    unstorable reason, or an empty selection (nothing is queued then).
    """
    if kind not in RestoreJobKind.values:
        raise InvalidInput(f"Unknown restore job kind {kind!r}.", fields={"kind": [f"{kind!r} is not a kind."]})
    if not reason.strip():
        raise InvalidInput("A reason is required.", fields={"reason": ["This field is required."]})
    job_restore_options(kind, actor=Actor.staff(requested_by), reason=reason).check()
    if token is not None and (existing := RestoreJob.objects.filter(token=token).first()) is not None:
        return existing, False
    try:
        with transaction.atomic():
            job = RestoreJob.objects.create(
                kind=kind,
                reason=reason,
                description=description,
                daemon=daemon,
                requested_by=requested_by,
                requested_by_label=str(Actor.staff(requested_by)),
                token=token or uuid.uuid4(),
            )
            job.total = _insert_items(job, supervisors)
            if job.total == 0:
                raise InvalidInput("No supervisor is selected; nothing was queued.", fields={"selection": ["Empty."]})
            job.save(update_fields=["total"])
            transaction.on_commit(lambda: enqueue_restore_job(job.pk))
    except IntegrityError:
        existing = RestoreJob.objects.filter(token=token).first() if token is not None else None
        if existing is None:
            raise
        return existing, False
    logger.info("restore job #%s queued by %s: %s %d supervisors", job.pk, job.requested_by_label, kind, job.total)
    return job, True


def _insert_items(job: RestoreJob, supervisors: QuerySet[SupervisorState]) -> int:
    """One pending item per selected supervisor, in one statement; how many."""
    source = supervisors.order_by().values_list("contract_id", flat=True)
    try:
        sql, params = source.query.sql_with_params()
    except EmptyResultSet:  # .none(), or an ``__in`` of nothing
        return 0
    connection = connections[source.db]
    qn = connection.ops.quote_name
    table, columns = (
        qn(RestoreJobItem._meta.db_table),
        ", ".join(qn(c) for c in ("job_id", "contract_id", "status", "outcome", "message")),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT %s, picked.{qn('contract_id')}, %s, '', '' FROM ({sql}) picked",
            [job.pk, PENDING, *params],
        )
        return cursor.rowcount


def enqueue_restore_job(job_id: int) -> None:
    """Put a run of the job on the queue (the job engine's ``restore_job`` task)."""
    from supervisors import jobs

    jobs.restore_job.enqueue(job_id)


# --- running -------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    """What one run of a job did: the worker's return value."""

    job_id: int
    counts: Counter[str] = field(default_factory=Counter)
    status: str = ""
    handed_over: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "status": self.status, "handed_over": self.handed_over, **self.counts}


def run_restore_job(job_id: int, *, chunk_size: int | None = None, slice_seconds: float | None = None) -> RunSummary:
    """Work on the job's pending items, a chunk per transaction, for up to ``slice_seconds``.

    Returns what this run did. Safe to run several times at once and after a
    run that died (see the module docstring). A job that is finished or
    unknown is left alone. Database errors of a chunk are retried one
    supervisor at a time; one that still fails is recorded as failed.
    """
    chunk_size = max(1, chunk_size or settings.RESTORE_JOB_CHUNK_SIZE)
    budget = settings.RESTORE_JOB_SLICE_SECONDS if slice_seconds is None else slice_seconds
    summary = RunSummary(job_id)
    job = RestoreJob.objects.select_related("requested_by").filter(pk=job_id).first()
    if job is None or job.is_finished:
        summary.status = job.status if job else "unknown"
        return summary
    now = timezone.now()
    RestoreJob.objects.filter(pk=job_id, status=RestoreJobStatus.QUEUED).update(
        status=RestoreJobStatus.RUNNING, started_at=job.started_at or now, last_progress_at=now
    )
    deadline = time.monotonic() + budget
    while True:
        now_row = RestoreJob.objects.filter(pk=job_id).values_list("status", "cancelled_by_label").first()
        status, cancelled_by = now_row or (None, "")
        if status == RestoreJobStatus.CANCELLING:
            why = f"cancelled by {cancelled_by or 'staff'}"
            summary.counts[OUTCOME_CANCELLED] += skip_pending_items(job_id, OUTCOME_CANCELLED, why)
            break
        if status is None or status in (RestoreJobStatus.DONE, RestoreJobStatus.CANCELLED, RestoreJobStatus.FAILED):
            break
        counts = _run_chunk(job, chunk_size)
        if counts is None:
            break
        summary.counts.update(counts)
        RestoreJob.objects.filter(pk=job_id).update(last_progress_at=timezone.now(), rescues=0)
        if time.monotonic() >= deadline:
            summary.handed_over = _hand_over(job_id)
            if summary.handed_over:
                summary.status = RestoreJobStatus.QUEUED
                return summary
    summary.status = finish_if_complete(job_id)
    return summary


def _hand_over(job_id: int) -> bool:
    """Slice over: back to ``queued`` and a new run enqueued, if anything is left; whether it was."""
    with transaction.atomic():
        open_ = [RestoreJobStatus.RUNNING, RestoreJobStatus.QUEUED]  # queued: another run handed over just now
        left = RestoreJob.objects.filter(pk=job_id, status__in=open_).filter(Exists(_pending_of()))
        handed = left.update(status=RestoreJobStatus.QUEUED, last_progress_at=timezone.now())
        if handed:
            transaction.on_commit(lambda: enqueue_restore_job(job_id))
    return bool(handed)


def _pending_of() -> QuerySet[RestoreJobItem]:
    return RestoreJobItem.objects.filter(job_id=OuterRef("pk"), status=PENDING)


def _lock_pending(job_id: int, limit: int) -> list[RestoreJobItem]:
    """Pending items no other run holds, oldest first, locked until the transaction ends (SKIP LOCKED)."""
    query = RestoreJobItem.objects.filter(job_id=job_id, status=PENDING).order_by("id")
    return list(query.select_for_update(skip_locked=True)[:limit])


def _run_chunk(job: RestoreJob, chunk_size: int) -> Counter[str] | None:
    """One transaction: lock a chunk of items, act on their supervisors, mark the items. None: nothing left to take."""
    try:
        with transaction.atomic():
            items = _lock_pending(job.pk, chunk_size)
            if not items:
                return None
            return _settle(job, items)
    except DatabaseError:
        logger.exception("restore job #%s: a chunk failed; trying its supervisors one at a time", job.pk)
    counts: Counter[str] = Counter()
    for _ in range(chunk_size):
        one = _run_one(job)
        if one is None:
            break
        counts.update(one)
    return counts


def _run_one(job: RestoreJob) -> Counter[str] | None:
    """One item in its own transaction; a database error marks it failed (in a transaction of its own)."""
    item_id = None
    try:
        with transaction.atomic():
            items = _lock_pending(job.pk, 1)
            if not items:
                return None
            item_id = items[0].pk
            return _settle(job, items)
    except DatabaseError as exc:
        if item_id is None:
            raise
        RestoreJobItem.objects.filter(pk=item_id, status=PENDING).update(
            status=RestoreJobItemStatus.FAILED,
            outcome=RestorationOutcome.FAILED,
            message=error_text(exc)[:2000],
            finished_at=timezone.now(),
        )
        return Counter({RestoreJobItemStatus.FAILED: 1})


def _settle(job: RestoreJob, items: list[RestoreJobItem]) -> Counter[str]:
    """Act on the items' supervisors and mark the items, inside the caller's transaction."""
    contract_ids = [item.contract_id for item in items]
    supervisor_ids = dict(SupervisorState.objects.filter(contract_id__in=contract_ids).values_list("contract_id", "id"))
    actor = job_actor(job)
    if job.kind == RestoreJobKind.INTERRUPT:
        endings = interrupt_locked(list(supervisor_ids.values()), actor=actor, reason=job_reason(job))
    else:
        endings = _restore(job, actor, list(supervisor_ids.values()))
    now = timezone.now()
    for item in items:
        status, outcome, message = endings.get(
            item.contract_id,
            (RestoreJobItemStatus.FAILED, OUTCOME_NOT_FOUND, "this contract has no supervisor (any more)"),
        )
        item.status, item.outcome, item.message, item.finished_at = status, outcome, message[:10_000], now
    RestoreJobItem.objects.bulk_update(items, ["status", "outcome", "message", "finished_at"])
    _admin_log(job, items, supervisor_ids)
    return Counter(item.status for item in items)


def job_actor(job: RestoreJob) -> Actor:
    """The staff user who queued the job (by name only, if the user has since been deleted)."""
    if job.requested_by is not None:
        return Actor.staff(job.requested_by)
    return Actor(ActorKind.STAFF, label=job.requested_by_label or "staff:(deleted user)")


def job_reason(job: RestoreJob) -> str:
    """The staff's reason with the job named: what the restoration log shows."""
    return f"{job.reason} (restore job #{job.pk})"


def _restore(job: RestoreJob, actor: Actor, supervisor_ids: list[uuid.UUID]) -> dict[uuid.UUID, Ending]:
    """The protocol's batch path over these supervisors (rows locked, re-checked, logged); each one's ending.

    The re-check leaves out a supervisor restored by anyone else since the job
    was queued (a daemon's claim, another job): it is skipped with the reason.
    """
    options = job_restore_options(job.kind, actor=actor, reason=job_reason(job))
    # Wait for the rows (in id order) rather than skip them: restore_page's SKIP LOCKED would count a row
    # a heartbeat holds for a millisecond as "locked by another run"; rows this transaction holds are not skipped.
    list(SupervisorState.objects.filter(pk__in=supervisor_ids).select_for_update(of=("self",)).order_by("id")
         .values_list("id", flat=True))  # fmt: skip
    page = restore_page(
        supervisor_ids, SupervisorSelection(all_supervisors=True), options, run_started_at=job.created_at
    )
    endings: dict[uuid.UUID, Ending] = {}
    for result in page.results:
        endings[result.contract_id] = (RestoreJobItemStatus.DONE, str(result.outcome), describe_restoration(result))
    for contract_id in page.completed:
        completed = RestorationOutcome.SKIPPED_COMPLETED
        endings[contract_id] = (RestoreJobItemStatus.SKIPPED, completed, "a completed supervisor is not restored")
    for skipped in page.skipped:
        endings[skipped.contract_id] = (RestoreJobItemStatus.SKIPPED, OUTCOME_NOT_ATTEMPTED, skipped.reason)
    for failed in page.failed:
        endings[failed.contract_id] = (RestoreJobItemStatus.FAILED, RestorationOutcome.FAILED, failed.error)
    return endings


def interrupt_locked(supervisor_ids: list[uuid.UUID], *, actor: Actor, reason: str) -> dict[uuid.UUID, Ending]:
    """Mark these supervisors ``interrupted`` if they are running (the watchdog's rule); each one's ending.

    Must run inside a transaction: the rows are locked (in id order), then one
    UPDATE, guarded by the state again, and one ``interrupted`` event per
    supervisor marked (who, why) in the timeline. A supervisor waiting for a
    person, blocked, finished or already interrupted is left as it was, and says so.
    """
    rows = list(
        SupervisorState.objects.filter(pk__in=supervisor_ids)
        .select_for_update(of=("self",))
        .order_by("id")
        .values_list("id", "contract_id", "state")
    )
    running = [pk for pk, _, state in rows if state in INTERRUPTIBLE_STATES]
    SupervisorState.objects.filter(pk__in=running, state__in=INTERRUPTIBLE_STATES).update(
        state=SupervisorStatus.INTERRUPTED, updated_at=timezone.now()
    )
    record_events(NewEvent(pk, EventKind.INTERRUPTED, actor, {"reason": reason[:300]}) for pk in running)
    endings: dict[uuid.UUID, Ending] = {}
    for _, contract_id, state in rows:
        if state in INTERRUPTIBLE_STATES:
            endings[contract_id] = (RestoreJobItemStatus.DONE, OUTCOME_INTERRUPTED, f"marked interrupted (was {state})")
        else:
            why = f"left as it was: {state} (only running supervisors are marked interrupted)"
            endings[contract_id] = (RestoreJobItemStatus.SKIPPED, OUTCOME_LEFT_AS_IT_WAS, why)
    return endings


def interrupt_supervisors(
    supervisors: QuerySet[SupervisorState], *, actor: Actor, reason: str
) -> dict[uuid.UUID, Ending]:
    """Mark the running ones of a (small) selection interrupted, in one transaction: the admin's in-request path."""
    with transaction.atomic():
        ids = list(supervisors.order_by("id").values_list("id", flat=True))
        return interrupt_locked(ids, actor=actor, reason=reason)


def _admin_log(job: RestoreJob, items: list[RestoreJobItem], supervisor_ids: dict[uuid.UUID, uuid.UUID]) -> None:
    """One Django admin LogEntry per supervisor acted on, naming the staff user (as the in-request actions do)."""
    if job.requested_by_id is None:
        return
    content_type = ContentType.objects.get_for_model(SupervisorState)
    LogEntry.objects.bulk_create(
        [
            LogEntry(
                user_id=job.requested_by_id,
                content_type=content_type,
                object_id=str(supervisor_ids[item.contract_id]),
                object_repr=f"Supervisor of contract {item.contract_id}"[:200],
                action_flag=CHANGE,
                change_message=f"Restore job #{job.pk} ({job.get_kind_display().lower()}): {item.outcome}: "
                f"{item.message}. Reason: {job.reason}"[:10_000],
            )
            for item in items
            if item.contract_id in supervisor_ids
        ]
    )


def skip_pending_items(job_id: int, outcome: str, message: str) -> int:
    """Mark ``skipped`` the job's pending items no run holds; how many. Items a run holds are its to finish."""
    free = RestoreJobItem.objects.filter(job_id=job_id, status=PENDING).select_for_update(skip_locked=True)
    with transaction.atomic():
        return RestoreJobItem.objects.filter(pk__in=list(free.values_list("pk", flat=True)), status=PENDING).update(
            status=RestoreJobItemStatus.SKIPPED, outcome=outcome, message=message, finished_at=timezone.now()
        )


def finish_if_complete(job_id: int) -> str:
    """When no item is pending any more: ``done`` (or ``cancelled`` after a cancel); the job's status now.

    The condition is in the UPDATE itself: items another run still holds are
    pending until it commits, so only the run that settles the last chunk
    finishes the job.
    """
    now = timezone.now()
    with transaction.atomic():
        complete = RestoreJob.objects.filter(pk=job_id).exclude(Exists(_pending_of()))
        complete.filter(status__in=[RestoreJobStatus.QUEUED, RestoreJobStatus.RUNNING]).update(
            status=RestoreJobStatus.DONE, finished_at=now
        )
        complete.filter(status=RestoreJobStatus.CANCELLING).update(status=RestoreJobStatus.CANCELLED, finished_at=now)
    status = RestoreJob.objects.filter(pk=job_id).values_list("status", flat=True).first() or "unknown"
    if status in (RestoreJobStatus.DONE, RestoreJobStatus.CANCELLED):
        logger.info("restore job #%s: %s", job_id, status)
    return status


# --- cancelling and rescuing ---------------------------------------------------------------------


def cancel_restore_job(job_id: int, *, actor: Actor) -> RestoreJob:
    """Staff's Cancel: no further supervisor is restored; what is done stays done.

    The items no run holds are skipped at once (outcome ``cancelled``); a run
    in the middle of a chunk finishes it, then skips the rest. Raises NotFound
    for an unknown job and Conflict for a finished job or one already being
    cancelled.
    """
    with transaction.atomic():
        job = RestoreJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            raise NotFound(f"There is no restore job #{job_id}.")
        if job.is_finished:
            raise Conflict(
                f"Restore job #{job_id} has already finished ({job.get_status_display().lower()}); "
                "there is nothing to cancel.",
                code="job_finished",
            )
        if job.status == RestoreJobStatus.CANCELLING:
            raise Conflict(f"Restore job #{job_id} is already being cancelled.", code="job_cancelling")
        job.status = RestoreJobStatus.CANCELLING
        job.cancelled_by_label = str(actor)
        job.save(update_fields=["status", "cancelled_by_label"])
    skipped = skip_pending_items(job_id, OUTCOME_CANCELLED, f"cancelled by {actor}")
    finish_if_complete(job_id)
    logger.info("restore job #%s cancelled by %s: %d supervisors skipped at once", job_id, actor, skipped)
    job.refresh_from_db()
    return job


@dataclass
class RescueReport:
    rescued: list[int] = field(default_factory=list)
    given_up: list[int] = field(default_factory=list)
    forgotten: int = 0


#: A run holds the job in these states; one that makes no progress lost its worker.
TAKEN_UP = (RestoreJobStatus.RUNNING, RestoreJobStatus.CANCELLING)


def stalled_restore_jobs(now: datetime) -> QuerySet[RestoreJob]:
    """Unfinished jobs with items pending and no progress (nor rescue) for the stall bound."""
    bound = now - timedelta(seconds=settings.RESTORE_JOB_STALLED_AFTER_SECONDS)
    return RestoreJob.objects.filter(
        status__in=[*TAKEN_UP, RestoreJobStatus.QUEUED], last_progress_at__lt=bound
    ).filter(Exists(_pending_of()))


def rescue_stalled_restore_jobs(*, now: datetime | None = None) -> RescueReport:
    """Enqueue again each stalled job (its worker died); give up one rescued too often without progress.

    Also deletes the finished jobs older than ``RESTORE_JOB_KEEP_DAYS``.

    Each rescue moves the job's ``last_progress_at`` with a conditional
    UPDATE, so of several rescuers at once one enqueues it, and a job is
    rescued at most once per stall bound. A running job counts its rescues
    and is given up after ``RESTORE_JOB_MAX_RESCUES`` without progress. A
    queued one is most likely waiting behind other jobs, but its run may also
    have been lost (the process that queued it died before enqueueing): it is
    enqueued again too, without counting (a spare run finds nothing to take).
    """
    now = now or timezone.now()
    report = RescueReport()
    bound = now - timedelta(seconds=settings.RESTORE_JOB_STALLED_AFTER_SECONDS)
    for job_id, rescues, status in stalled_restore_jobs(now).values_list("pk", "rescues", "status"):
        counted = status in TAKEN_UP
        with transaction.atomic():
            took = RestoreJob.objects.filter(pk=job_id, last_progress_at__lt=bound, status=status).update(
                last_progress_at=now, rescues=F("rescues") + int(counted)
            )
            if not took:
                continue
            if counted and rescues + 1 > settings.RESTORE_JOB_MAX_RESCUES:
                message = f"given up: no progress after {rescues} rescues"
                RestoreJob.objects.filter(pk=job_id).update(
                    status=RestoreJobStatus.FAILED, finished_at=now, error=message
                )
                transaction.on_commit(lambda job_id=job_id, m=message: skip_pending_items(job_id, OUTCOME_GIVEN_UP, m))
                report.given_up.append(job_id)
                continue
            transaction.on_commit(lambda job_id=job_id: enqueue_restore_job(job_id))
            report.rescued.append(job_id)
    # The record stays bounded: finished jobs older than RESTORE_JOB_KEEP_DAYS go, with their items.
    old = RestoreJob.objects.filter(finished_at__lt=now - timedelta(days=settings.RESTORE_JOB_KEEP_DAYS))
    report.forgotten = old.delete()[1].get(RestoreJob._meta.label, 0)
    for job_id in report.rescued:
        logger.warning("restore job #%s made no progress (its worker died?): enqueued again", job_id)
    for job_id in report.given_up:
        logger.error(
            "restore job #%s given up after %s rescues without progress", job_id, settings.RESTORE_JOB_MAX_RESCUES
        )
    return report
