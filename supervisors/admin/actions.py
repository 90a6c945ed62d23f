"""Restore, start fresh, restore from a checkpoint, validate, re-deliver: the admin's actions.

Every one of them calls the restoration services (``restore_supervisor``,
``restore_page``, ``validate_supervisor_state``, ``redeliver_pending_questions``);
none writes a supervisor row itself. The restoration service records each
restoration in the restoration log; this module adds one Django admin
``LogEntry`` per supervisor touched, naming the staff user, and reports the
outcome per supervisor in admin messages (the first ``MESSAGE_LIMIT`` of them,
then a summary, so select-all over 100,000 rows does not produce 100,000
messages).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from supervisors.enums import RESTORED_OUTCOMES, RecoveryAction, RestorationOutcome, RestorationSource
from supervisors.forms import StorableForm
from supervisors.models import Daemon, SupervisorCheckpoint, SupervisorState
from supervisors.selectors import SupervisorSelection
from supervisors.services.actors import Actor
from supervisors.services.errors import ServiceError
from supervisors.services.restoration import (
    RestorationResult,
    RestoreOptions,
    restore_page,
    restore_supervisor,
)
from supervisors.services.restoration import redeliver_pending_questions as redeliver_service
from supervisors.services.restore_jobs import describe_restoration, interrupt_supervisors, queue_restore_job
from supervisors.services.validation import load_worlds, validate_with_world
from supervisors.services.watchdog import INTERRUPTIBLE_STATES

#: Supervisors previewed one by one on the confirmation page; the rest are counted.
PREVIEW_LIMIT = 25
#: Supervisors the confirmation page plans (a dry run); beyond that the count is "up to".
PLAN_LIMIT = 2000
#: Per-supervisor messages after an action; beyond that a summary says how many more.
MESSAGE_LIMIT = 25
#: Supervisors restored per transaction when many are selected.
BATCH_SIZE = 200

RESTORE_PERMISSION = "supervisors.restore_supervisor"


@dataclass(frozen=True)
class Mode:
    """One way of restoring: what the confirmation page says and what the service is asked."""

    key: str
    title: str
    verb: str
    force_action: RecoveryAction | None = None


MODES = {
    "restore": Mode("restore", "Restore supervisors", "Restore"),
    "fresh": Mode("fresh", "Start supervisors fresh", "Start fresh", RecoveryAction.START_FRESH),
    "checkpoint": Mode("checkpoint", "Restore from a checkpoint", "Restore from checkpoint"),
    # Not a restoration: running supervisors (the watchdog's rule) become interrupted, for a later restore.
    "interrupt": Mode("interrupt", "Mark supervisors interrupted", "Mark interrupted"),
}


class ReasonForm(StorableForm):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        max_length=2000,
        help_text="Why you are doing this. Recorded in the restoration log with your user name.",
    )
    #: One per confirmation page: submitting the same page twice queues one restore job, not two.
    token = forms.UUIDField(required=False, widget=forms.HiddenInput, initial=uuid.uuid4)


# --- preview ------------------------------------------------------------------------------------
#
# The preview is the restoration's own dry run (the same load, validate and plan
# as the real run, nothing written), so what the page shows is what will happen.


@dataclass
class PreviewRow:
    """One supervisor of the preview: how it would end, per the dry-run plan."""

    supervisor: SupervisorState
    outcome: str
    recovery_action: str
    new_state: str
    error_before: str | None = None
    error_after: str | None = None
    checkpoint_id: int | None = None
    questions: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    finished_task_ids: list[uuid.UUID] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def error_change(self) -> str:
        if self.error_before and not self.error_after:
            return f"clears {self.error_before!r}"
        if self.error_after and self.error_after != self.error_before:
            return f"sets {self.error_after!r}"
        return f"keeps {self.error_after!r}" if self.error_after else ""


@dataclass
class Preview:
    total: int
    rows: list[PreviewRow]
    by_outcome: dict[str, int]
    planned: int

    @property
    def will_restore(self) -> int:
        """Only the supervisors that will actually be brought back (not blocked, skipped or failing)."""
        return sum(n for outcome, n in self.by_outcome.items() if outcome in {*RESTORED_OUTCOMES, "interrupted"})


def preview_row(supervisor: SupervisorState, result: RestorationResult) -> PreviewRow:
    return PreviewRow(
        supervisor=supervisor,
        outcome=str(result.outcome),
        recovery_action=str(result.recovery_action),
        new_state=result.new_state,
        error_before=result.previous_error_message,
        error_after=result.error_message,
        checkpoint_id=result.checkpoint_id,
        questions=result.redelivered_questions,
        answers=result.context.pending_answers,
        finished_task_ids=result.finished_task_ids,
        issues=result.validation.issues,
        warnings=result.context.warnings,
    )


def preview(
    request: HttpRequest,
    queryset: QuerySet[SupervisorState],
    mode: Mode,
    checkpoint: SupervisorCheckpoint | None = None,
) -> Preview:
    """The dry-run plan of the first PLAN_LIMIT selected supervisors; rows for the first PREVIEW_LIMIT."""
    total = queryset.count()
    shown = {s.id: s for s in queryset.select_related("contract").order_by("contract__name", "id")[:PREVIEW_LIMIT]}
    ids = list(queryset.order_by("contract__name", "id").values_list("id", flat=True)[:PLAN_LIMIT])
    report = run_restorations(
        request, ids, mode=mode, reason="preview", checkpoint_id=checkpoint.pk if checkpoint else None, dry_run=True
    )
    by_contract = {s.contract_id: s for s in shown.values()}
    rows = [preview_row(by_contract[r.contract_id], r) for r in report.restored if r.contract_id in by_contract]
    for contract_id, why in report.failed:
        if contract_id in by_contract:
            row = PreviewRow(by_contract[contract_id], RestorationOutcome.FAILED, "", by_contract[contract_id].state)
            row.issues = [why]
            rows.append(row)
    for contract_id in report.completed:
        if contract_id in by_contract:
            supervisor = by_contract[contract_id]
            rows.append(PreviewRow(supervisor, RestorationOutcome.SKIPPED_COMPLETED, "", supervisor.state))
    rows.sort(key=lambda r: (r.supervisor.contract.name, r.supervisor.id))
    counts = Counter(str(r.outcome) for r in report.restored)
    counts[RestorationOutcome.FAILED] += len(report.failed)
    counts[RestorationOutcome.SKIPPED_COMPLETED] += len(report.completed)
    by_outcome = {o: counts[o] for o in RestorationOutcome.values if counts[o]}
    return Preview(total=total, rows=rows, by_outcome=by_outcome, planned=len(ids))


def interrupt_preview(by_state: dict[str, int]) -> Preview:
    """What marking interrupted would do, from the counts by state: the running ones change, the rest do not."""
    running = sum(n for state, n in by_state.items() if state in INTERRUPTIBLE_STATES)
    left = sum(by_state.values()) - running
    by_outcome = {k: n for k, n in (("interrupted", running), ("left_as_it_was", left)) if n}
    return Preview(total=sum(by_state.values()), rows=[], by_outcome=by_outcome, planned=sum(by_state.values()))


def render_confirmation(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[SupervisorState],
    *,
    mode: Mode,
    form: ReasonForm,
    hidden: Sequence[tuple[str, str]],
    checkpoint: SupervisorCheckpoint | None = None,
    cancel_url: str = "",
) -> TemplateResponse:
    by_state = dict(queryset.order_by().values_list("state").annotate(n=Count("id")))
    planned = interrupt_preview(by_state) if mode.key == "interrupt" else preview(request, queryset, mode, checkpoint)
    total, rows = planned.total, planned.rows
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": mode.title,
        "subtitle": None,
        "opts": modeladmin.model._meta,
        "mode": mode,
        "form": form,
        "total": total,
        "rows": rows,
        "more": max(0, total - len(rows)),
        "by_state": sorted(by_state.items()),
        "by_outcome": sorted(planned.by_outcome.items()),
        "will_restore": planned.will_restore,
        "not_planned": max(0, total - planned.planned),
        "hidden": hidden,
        "checkpoint": checkpoint,
        "cancel_url": cancel_url,
        "as_job": total > settings.ADMIN_LIST_PER_PAGE,
        "job_threshold": settings.ADMIN_LIST_PER_PAGE,
        "media": modeladmin.media,
    }
    return TemplateResponse(request, "admin/supervisors/supervisorstate/restore_confirmation.html", context)


# --- running -------------------------------------------------------------------------------------


@dataclass
class RunReport:
    """What one admin action did, supervisor by supervisor."""

    restored: list[RestorationResult] = field(default_factory=list)  # every outcome but skipped and failed
    completed: list[uuid.UUID] = field(default_factory=list)
    skipped: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # not attempted (held by another run)
    failed: list[tuple[uuid.UUID, str]] = field(default_factory=list)


def run_restorations(
    request: HttpRequest,
    ids: Sequence[uuid.UUID],
    *,
    mode: Mode,
    reason: str,
    checkpoint_id: int | None = None,
    dry_run: bool = False,
) -> RunReport:
    """Restore the supervisors with these ids through the restoration service (``dry_run``: plan only).

    One supervisor goes through ``restore_supervisor`` (waits for the row lock);
    many go through the batch path in pages of BATCH_SIZE, one transaction each,
    the same path as the ``restore_supervisors`` command.
    """
    actor = Actor.staff(request.user)
    report = RunReport()
    if len(ids) == 1:
        contract_id = SupervisorState.objects.filter(id=ids[0]).values_list("contract_id", flat=True).first()
        if contract_id is None:
            report.failed.append((ids[0], "no such supervisor"))
            return report
        try:
            report.restored.append(
                restore_supervisor(
                    contract_id,
                    source=RestorationSource.MANUAL,
                    actor=actor,
                    reason=reason,
                    checkpoint_id=checkpoint_id,
                    force_action=mode.force_action,
                    dry_run=dry_run,
                )
            )
        except ServiceError as exc:
            if exc.code == "supervisor_completed":
                report.completed.append(contract_id)
            else:
                report.failed.append((contract_id, exc.message))
        return report
    options = RestoreOptions(
        source=RestorationSource.MANUAL, actor=actor, reason=reason, force_action=mode.force_action, dry_run=dry_run
    )
    started = timezone.now()
    selection = SupervisorSelection(all_supervisors=True)
    for start in range(0, len(ids), BATCH_SIZE):
        page = restore_page(list(ids[start : start + BATCH_SIZE]), selection, options, run_started_at=started)
        report.restored += page.results
        report.completed += page.completed
        report.skipped += [(s.contract_id, s.reason) for s in page.skipped]
        report.failed += [(f.contract_id, f.error) for f in page.failed]
    return report


def _names(contract_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, tuple[uuid.UUID, str]]:
    """contract id -> (supervisor id, contract name), in one query per thousand."""
    ids = list(contract_ids)
    found: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}
    for start in range(0, len(ids), 1000):
        rows = SupervisorState.objects.filter(contract_id__in=ids[start : start + 1000]).values_list(
            "contract_id", "id", "contract__name"
        )
        found.update({c: (s, n) for c, s, n in rows})
    return found


describe_result = describe_restoration


def report_outcome(modeladmin: admin.ModelAdmin, request: HttpRequest, report: RunReport, *, mode: Mode, reason: str):
    """Admin messages per supervisor (named by outcome) and one LogEntry per supervisor touched."""
    names = _names(
        [r.contract_id for r in report.restored]
        + report.completed
        + [c for c, _ in report.skipped]
        + [c for c, _ in report.failed]
    )
    lines: list[tuple[int, str, uuid.UUID, str]] = []
    for result in report.restored:
        level = messages.SUCCESS if result.restored else messages.WARNING
        lines.append((level, f"{mode.verb}: {describe_result(result)}", result.contract_id, str(result.outcome)))
    completed = RestorationOutcome.SKIPPED_COMPLETED
    for contract_id in report.completed:
        text = f"{mode.verb}: {completed}: a completed supervisor is not restored"
        lines.append((messages.WARNING, text, contract_id, completed))
    for contract_id, why in report.skipped:
        lines.append((messages.WARNING, f"{mode.verb}: not attempted: {why}", contract_id, "not attempted"))
    for contract_id, why in report.failed:
        lines.append((messages.ERROR, f"{mode.verb}: {RestorationOutcome.FAILED}: {why}", contract_id, "failed"))
    for level, text, contract_id, _ in lines[:MESSAGE_LIMIT]:
        name = names.get(contract_id, (None, str(contract_id)))[1]
        modeladmin.message_user(request, f"{name}: {text}", level)
    if len(lines) > MESSAGE_LIMIT:
        counts = Counter(kind for *_, kind in lines)
        summary = ", ".join(f"{kind}: {n}" for kind, n in sorted(counts.items()))
        modeladmin.message_user(
            request,
            f"… and {len(lines) - MESSAGE_LIMIT} more. In all: {summary}. The restoration log has every one.",
            messages.INFO,
        )
    log_entries(
        request,
        [
            (names[contract_id][0], names[contract_id][1], f"{text}. Reason: {reason}")
            for _, text, contract_id, _ in lines
            if contract_id in names
        ],
    )


def log_entries(request: HttpRequest, entries: Sequence[tuple[uuid.UUID, str, str]]) -> None:
    """One admin LogEntry per (supervisor id, repr, message), written in one bulk insert."""
    if not entries:
        return
    content_type = ContentType.objects.get_for_model(SupervisorState)
    LogEntry.objects.bulk_create(
        [
            LogEntry(
                user_id=request.user.pk,
                content_type=content_type,
                object_id=str(pk),
                object_repr=f"Supervisor of {name}"[:200],
                action_flag=CHANGE,
                change_message=message[:10_000],
            )
            for pk, name, message in entries
        ],
        batch_size=1000,
    )


# --- the list actions ----------------------------------------------------------------------------


def _list_hidden(request: HttpRequest, queryset: QuerySet[SupervisorState], action: str) -> list[tuple[str, str]]:
    """The POST fields that bring the confirmation back to the same action on the same selection."""
    hidden = [("action", action), ("post", "yes")]
    if request.POST.get("select_across") == "1":
        first = queryset.values_list("pk", flat=True).first()
        hidden += [("select_across", "1"), (helpers.ACTION_CHECKBOX_NAME, str(first))]
    else:
        hidden += [("select_across", "0")]
        hidden += [(helpers.ACTION_CHECKBOX_NAME, v) for v in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)]
    return hidden


def confirm_or_run(
    modeladmin,
    request: HttpRequest,
    supervisors: QuerySet[SupervisorState],
    *,
    mode: Mode,
    hidden: Sequence[tuple[str, str]],
    cancel_url: str,
    description: str,
    daemon: Daemon | None = None,
    done_url: str | None = None,
) -> HttpResponse | None:
    """The confirmation page; once confirmed with a reason, run (a page or less) or queue a restore job (more).

    More than ``ADMIN_LIST_PER_PAGE`` supervisors: a restore job is queued and
    the answer is a redirect to its page, at once. Up to that, the supervisors
    are acted on in this request, reported in messages, and the answer is a
    redirect to ``done_url`` (None: the list the action came from).
    """
    form = ReasonForm(request.POST if request.POST.get("post") == "yes" else None)
    if not (form.is_bound and form.is_valid()):
        return render_confirmation(
            modeladmin, request, supervisors, mode=mode, form=form, hidden=hidden, cancel_url=cancel_url
        )
    reason = form.cleaned_data["reason"]
    if supervisors.count() > settings.ADMIN_LIST_PER_PAGE:
        return queue_job(modeladmin, request, supervisors, mode=mode, form=form, description=description, daemon=daemon)
    if mode.key == "interrupt":
        endings = interrupt_supervisors(supervisors, actor=Actor.staff(request.user), reason=reason)
        report_interrupted(modeladmin, request, endings, reason=reason)
    else:
        ids = list(supervisors.order_by("id").values_list("id", flat=True))
        report = run_restorations(request, ids, mode=mode, reason=reason)
        report_outcome(modeladmin, request, report, mode=mode, reason=reason)
    return HttpResponseRedirect(done_url) if done_url else None


def queue_job(
    modeladmin,
    request: HttpRequest,
    supervisors: QuerySet[SupervisorState],
    *,
    mode: Mode,
    form: ReasonForm,
    description: str,
    daemon: Daemon | None,
) -> HttpResponse:
    """Queue the restore job and send staff to its page (the same job again for a second submit of the form)."""
    try:
        job, created = queue_restore_job(
            supervisors,
            kind=mode.key,
            reason=form.cleaned_data["reason"],
            requested_by=request.user,
            description=description,
            daemon=daemon,
            token=form.cleaned_data.get("token"),
        )
    except ServiceError as exc:
        modeladmin.message_user(request, f"Nothing was queued: {exc.message}", messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())
    if created:
        text = (
            f"Queued restore job #{job.pk}: {mode.verb.lower()} {job.total} supervisors. A worker runs it; "
            "this page shows its progress."
        )
        modeladmin.message_user(request, text, messages.SUCCESS)
    else:
        modeladmin.message_user(
            request, f"This form was already submitted: it queued restore job #{job.pk}.", messages.WARNING
        )
    return HttpResponseRedirect(reverse("admin:supervisors_restorejob_change", args=[job.pk]))


def report_interrupted(modeladmin, request: HttpRequest, endings: dict[uuid.UUID, Any], *, reason: str) -> None:
    """Messages (the first MESSAGE_LIMIT, then a summary) and one LogEntry per supervisor marked or left."""
    names = _names(endings)
    counts = Counter(outcome for _, outcome, _ in endings.values())
    for index, (contract_id, (status, _, message)) in enumerate(endings.items()):
        if index < MESSAGE_LIMIT:
            level = messages.SUCCESS if status == "done" else messages.INFO
            modeladmin.message_user(request, f"{names.get(contract_id, (None, contract_id))[1]}: {message}", level)
    if len(endings) > MESSAGE_LIMIT:
        summary = ", ".join(f"{kind}: {n}" for kind, n in sorted(counts.items()))
        modeladmin.message_user(
            request, f"… and {len(endings) - MESSAGE_LIMIT} more. In all: {summary}.", messages.INFO
        )
    log_entries(
        request,
        [
            (names[c][0], names[c][1], f"Mark interrupted: {message}. Reason: {reason}")
            for c, (_, _, message) in endings.items()
            if c in names
        ],
    )


def _confirm_or_run(modeladmin, request: HttpRequest, queryset: QuerySet[SupervisorState], mode: Mode, action: str):
    return confirm_or_run(
        modeladmin,
        request,
        queryset,
        mode=mode,
        hidden=_list_hidden(request, queryset, action),
        cancel_url=request.get_full_path(),
        description=list_description(request, queryset),
    )


def list_description(request: HttpRequest, queryset: QuerySet) -> str:
    """What was selected in the list, in words, for the job's page."""
    filters = request.GET.urlencode()
    how = "every supervisor matching the list's filters" if request.POST.get("select_across") == "1" else "ticked rows"
    return f"{how} ({filters})" if filters else how


@admin.action(description="Restore selected supervisors…", permissions=["restore"])
def restore_selected(modeladmin, request, queryset):
    return _confirm_or_run(modeladmin, request, queryset, MODES["restore"], "restore_selected")


@admin.action(description="Start selected supervisors fresh…", permissions=["restore"])
def start_fresh_selected(modeladmin, request, queryset):
    return _confirm_or_run(modeladmin, request, queryset, MODES["fresh"], "start_fresh_selected")


@admin.action(description="Validate selected supervisors", permissions=["view"])
def validate_selected(modeladmin, request, queryset):
    """Read-only: the live validation result per supervisor, as messages (nothing is written but the admin log).

    Every selected supervisor is validated, BATCH_SIZE at a time (one world load per batch).
    """
    ids = list(queryset.order_by("id").values_list("id", flat=True))
    entries = []
    invalid = 0
    for start in range(0, len(ids), BATCH_SIZE):
        rows = list(
            SupervisorState.objects.filter(id__in=ids[start : start + BATCH_SIZE])
            .select_related("contract", "task")
            .order_by("contract__name", "id")
        )
        worlds = load_worlds(rows)
        for supervisor in rows:
            result = validate_with_world(supervisor, worlds[supervisor.id])
            text = validation_text(result)
            invalid += not result.is_valid
            if len(entries) < MESSAGE_LIMIT:
                level = messages.SUCCESS if result.is_valid else messages.WARNING
                modeladmin.message_user(request, f"{supervisor.contract.name}: {text}", level)
            entries.append((supervisor.pk, supervisor.contract.name, f"Validated: {text}"))
    if len(entries) > MESSAGE_LIMIT:
        modeladmin.message_user(
            request,
            f"… and {len(entries) - MESSAGE_LIMIT} more. In all: {len(entries)} validated, {invalid} invalid.",
            messages.INFO,
        )
    log_entries(request, entries)


def validation_text(result) -> str:
    if result.is_valid:
        text = f"valid, restoring would {result.recovery_action}"
    else:
        text = f"invalid, restoring would {result.recovery_action}: {'; '.join(result.issues)}"
    if result.warnings:
        text += f" (warnings: {'; '.join(result.warnings)})"
    return text


@admin.action(description="Re-deliver pending questions of selected supervisors", permissions=["restore"])
def redeliver_selected(modeladmin, request, queryset):
    rows = list(queryset.order_by("id").values_list("id", "contract_id", "contract__name"))
    redeliver(modeladmin, request, rows)


def redeliver(modeladmin, request: HttpRequest, rows: Sequence[tuple[uuid.UUID, uuid.UUID, str]]) -> None:
    actor = Actor.staff(request.user)
    entries = []
    for index, (pk, contract_id, name) in enumerate(rows):
        try:
            questions = redeliver_service(contract_id, actor=actor)
        except ServiceError as exc:
            if index < MESSAGE_LIMIT:
                modeladmin.message_user(request, f"{name}: re-delivery failed: {exc.message}", messages.ERROR)
            continue
        text = (
            f"re-delivered {len(questions)} pending question(s)" if questions else "no pending question to re-deliver"
        )
        if index < MESSAGE_LIMIT:
            modeladmin.message_user(request, f"{name}: {text}", messages.SUCCESS if questions else messages.INFO)
        entries.append((pk, name, text[0].upper() + text[1:]))
    if len(rows) > MESSAGE_LIMIT:
        modeladmin.message_user(
            request, f"… and {len(rows) - MESSAGE_LIMIT} more; {len(entries)} of {len(rows)} done.", messages.INFO
        )
    log_entries(request, entries)


ACTIONS: list[Any] = [restore_selected, start_fresh_selected, validate_selected, redeliver_selected]
