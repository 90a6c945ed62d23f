"""The supervisor list and the supervisor page.

Read-only as a Django model form: every change goes through a service, from
the actions (actions.py), the correction form, the answer form or the restore
confirmation page. The list never loads ``conversation_history``; the page
reads it one slice at a time in the database (``selectors.conversation_page``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.http import Http404, HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.defaultfilters import date as date_filter
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.timesince import timesince

from supervisors.diffs import checkpoint_diff, correction_diff
from supervisors.enums import RecoveryAction
from supervisors.models import Contract, Daemon, SupervisorCheckpoint, SupervisorState, Task
from supervisors.selectors import conversation_page, conversation_search, is_stale
from supervisors.services.actors import Actor
from supervisors.services.checkpoints import checkpoint_issues
from supervisors.services.errors import InvalidInput, PreconditionFailed, ServiceError
from supervisors.services.ownership import is_daemon_gone
from supervisors.services.state import update_supervisor_detailed_state
from supervisors.services.validation import validate_supervisor_state

from . import attention, dashboard, questions, timeline
from .actions import (
    ACTIONS,
    MODES,
    RESTORE_PERMISSION,
    ReasonForm,
    log_entries,
    redeliver,
    render_confirmation,
    report_outcome,
    run_restorations,
    validate_selected,
)
from .base import CheckedSelectionMixin, ReadOnlyAdmin
from .display import daemon_liveness, progress_bar, stale_marker, state_badge
from .filters import PendingQuestionsFilter, PhaseFilter, StaleFilter
from .forms import CORRECTABLE_FIELDS, AnswerForm, CorrectionForm
from .pagination import EstimatedCountChangeList, EstimatedCountPaginator

#: Conversation messages per page on the supervisor page.
CONVERSATION_PAGE_SIZE = 25
#: Matches of a list search passed to the list's query by id (more: the condition itself).
MAX_LISTED_MATCHES = 1000
#: Error-message matches up to which the list sorts the matches (more: it walks its order to find them).
MAX_SORTED_ERROR_MATCHES = 5000
#: Search matches listed on the supervisor page; more are counted as "more".
MAX_SEARCH_MATCHES = 50
#: Longest text searched for in a conversation.
MAX_SEARCH_CHARS = 200
#: Characters of one message shown before it is cut (a single message can be megabytes).
MESSAGE_PREVIEW_CHARS = 20_000


@admin.register(SupervisorState)
class SupervisorStateAdmin(CheckedSelectionMixin, ReadOnlyAdmin):
    list_display = (
        "contract_name",
        "state_display",
        "daemon_display",
        "phase",
        "progress_display",
        "activity",
        "questions_count",
        "tasks_display",
        "restorations",
        "last_activity_display",
    )
    list_display_links = ("contract_name",)
    list_filter = ("state", PhaseFilter, "restoration_source", PendingQuestionsFilter, StaleFilter)
    # Not current_activity: heartbeats rewrite it, so it may not be indexed (HOT updates), and an
    # unindexed substring search reads the whole table (1.35 s at a million rows, bench/admin_bench.py).
    search_fields = ("contract__name", "error_message")
    search_help_text = (
        "Contract name or error message, or a daemon's exact name; or a contract, task, supervisor or daemon id."
    )
    raw_id_fields = ("contract", "task")
    list_select_related = ("contract",)
    list_per_page = settings.ADMIN_LIST_PER_PAGE  # above a page, a restore is queued as a job
    show_full_result_count = False
    # Facet counts run one COUNT per filter choice over the list: not on 100,000 rows.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    # By contract name, read from an index: last activity is rewritten by every heartbeat and cannot be
    # indexed, so sorting by it reads and sorts the whole table (183-302 ms at a million rows). Who went
    # silent first is the needs-attention page's order; the column still sorts on a click.
    ordering = ("contract__name", "contract_id")
    actions = ACTIONS
    fieldsets = (
        (None, {"fields": ("contract_link", "task_link", "state_display", "phase", "progress_display")}),
        (
            "Activity",
            {"fields": ("current_activity", "error_message", "last_activity_display", "created_at", "updated_at")},
        ),
        ("Restorations", {"fields": ("restoration_count", "last_restored_at", "restoration_source")}),
    )
    readonly_fields = (
        "contract_link",
        "task_link",
        "state_display",
        "phase",
        "progress_display",
        "current_activity",
        "error_message",
        "last_activity_display",
        "created_at",
        "updated_at",
        "restoration_count",
        "last_restored_at",
        "restoration_source",
    )

    class Media:
        css = {"all": ("supervisors/admin.css",)}

    # --- permissions: no add, change or delete (ReadOnlyAdmin); these gate the services

    def has_restore_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RESTORE_PERMISSION)

    def has_answer_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("supervisors.answer_question")

    def has_correct_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("supervisors.change_supervisorstate")

    # --- the list ----------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).defer("conversation_history").select_related("contract", "task__daemon")

    def get_changelist(self, request: HttpRequest, **kwargs: Any):
        return EstimatedCountChangeList

    def get_paginator(self, request: HttpRequest, queryset, per_page, orphans=0, allow_empty_first_page=True):
        """A page's rows are read by id from the admin's own queryset (see EstimatedCountPaginator)."""
        return self.paginator(queryset, per_page, orphans, allow_empty_first_page, rows=self.get_queryset(request))

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        """An id finds its contract, supervisor task, supervisor or daemon; text searches contract name,
        activity, error, and a daemon by its exact name (after a crash: "what ran on daemon-7?")."""
        term = search_term.strip()
        if not term:
            return queryset, False
        # A daemon named or identified exactly: its supervisors, and nothing else. Its own query: OR'd
        # with the text conditions, the daemon's sub-select was re-run per row (320 s at a million rows,
        # bench/admin_bench.py).
        try:
            wanted = uuid.UUID(term)
        except ValueError:
            wanted = None
        daemon = Daemon.objects.filter(Q(id=wanted) if wanted else Q(name=term)).values_list("id", flat=True).first()
        if daemon is not None:
            return queryset.filter(task_id__in=Task.objects.filter(daemon_id=daemon).values("id")), False
        if wanted is None:
            named = self._contract_named(term)
            errors = self._error_containing(term, alone=named is None)
            condition = errors if named is None else named | errors
        else:
            condition = Q(contract_id=wanted) | Q(task_id=wanted) | Q(id=wanted)
        return queryset.filter(condition), False

    @staticmethod
    def _contract_named(term: str) -> Q | None:
        """Supervisors of the contracts whose name contains ``term`` (a trigram index, migration 0015); None
        when no contract's name does.

        A few matches are passed on by id. Given a sub-select instead, PostgreSQL
        guesses that half the table matches and walks the whole name-ordered
        index looking for them (11 s at a million supervisors for 100 matches
        at the end of the order); with the ids it reads them and sorts a few.
        Many matches keep the sub-select: they are dense in any order.
        """
        matching = Contract.objects.filter(name__icontains=term).order_by().values_list("id", flat=True)
        few = list(matching[: MAX_LISTED_MATCHES + 1])
        if not few:
            return None
        return Q(contract_id__in=few if len(few) <= MAX_LISTED_MATCHES else matching)

    @staticmethod
    def _error_containing(term: str, *, alone: bool) -> Q:
        """Supervisors whose error message contains ``term`` (a trigram index).

        A few matches are passed on by id, as above. Given the condition,
        PostgreSQL walks the list's order (contract name) and tests each row,
        expecting matches spread evenly: fast when they are dense, but for a
        few thousand of a million it read 44,000 rows (165 ms at a million
        supervisors, bench/admin_bench.py), and matches bunched at the end of
        the order would have it read them all. Up to MAX_SORTED_ERROR_MATCHES
        the matches are found by the index first and then sorted (a sub-select
        kept whole by ``OFFSET 0``: 36 ms for 2,242); beyond, the walk finds a
        page within a few thousand rows. Not ``alone`` (contract names match
        too), the condition stays as it is: OR'd with the names' ids, both
        sides can be read from their indexes (a sub-select cannot).
        """
        condition = Q(error_message__icontains=term)
        matches = SupervisorState.objects.filter(condition).order_by()
        few = list(matches.values_list("pk", flat=True)[: MAX_LISTED_MATCHES + 1])
        if len(few) <= MAX_LISTED_MATCHES:
            return Q(pk__in=few)
        if not alone or connection.vendor != "postgresql":
            return condition
        if matches[: MAX_SORTED_ERROR_MATCHES + 1].count() > MAX_SORTED_ERROR_MATCHES:
            return condition
        sql, params = matches.values("pk").query.sql_with_params()
        return Q(pk__in=RawSQL(f"{sql} OFFSET 0", params))

    @admin.display(description="contract", ordering="contract__name")
    def contract_name(self, obj: SupervisorState) -> str:
        return obj.contract.name

    @admin.display(description="state", ordering="state")
    def state_display(self, obj: SupervisorState):
        return state_badge(obj.state)

    @admin.display(description="daemon")
    def daemon_display(self, obj: SupervisorState):
        daemon = obj.task.daemon if obj.task_id else None
        if daemon is None:
            return format_html('<span class="sv-state sv-bad">{}</span>', "none")
        gone = is_daemon_gone(daemon)
        return format_html(
            '<span class="sv-daemon sv-{}" title="{}">{}</span>',
            "bad" if gone else "ok",
            "gone" if gone else "alive",
            daemon.name,
        )

    @admin.display(description="progress", ordering="progress")
    def progress_display(self, obj: SupervisorState):
        return progress_bar(obj.progress)

    @admin.display(description="current activity")
    def activity(self, obj: SupervisorState) -> str:
        return Truncator(obj.current_activity or "").chars(60)

    @admin.display(description="questions")
    def questions_count(self, obj: SupervisorState) -> int:
        return len(obj.pending_questions) if isinstance(obj.pending_questions, list) else 0

    @admin.display(description="tasks")
    def tasks_display(self, obj: SupervisorState) -> str:
        return format_html(
            '<span title="spawned / waited on">{} / {}</span>',
            len(obj.spawned_task_ids or []),
            len(obj.pending_task_ids or []),
        )

    @admin.display(description="restored", ordering="restoration_count")
    def restorations(self, obj: SupervisorState) -> int:
        return obj.restoration_count

    @admin.display(description="last activity", ordering="last_activity")
    def last_activity_display(self, obj: SupervisorState):

        return format_html(
            '<span title="{}">{} ago</span> {}',
            date_filter(obj.last_activity, "DATETIME_FORMAT"),
            timesince(obj.last_activity),
            stale_marker(is_stale(obj)),
        )

    @admin.display(description="contract")
    def contract_link(self, obj: SupervisorState):

        url = reverse("admin:supervisors_contract_change", args=[obj.contract_id])
        return format_html(
            '<a href="{}">{}</a> <code>{}</code> ({}, phase {})',
            url,
            obj.contract.name,
            obj.contract_id,
            obj.contract.status,
            obj.contract.phase,
        )

    @admin.display(description="supervisor task")
    def task_link(self, obj: SupervisorState):

        url = reverse("admin:supervisors_task_change", args=[obj.task_id])
        daemon = obj.task.daemon.name if obj.task.daemon_id else "no daemon"
        return format_html(
            '<a href="{}"><code>{}</code></a> ({}, on {}: {})',
            url,
            obj.task_id,
            obj.task.status,
            daemon,
            daemon_liveness(obj.task.daemon),
        )

    # --- the page ----------------------------------------------------------------------------

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self.page_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def page_context(self, request: HttpRequest, obj: SupervisorState) -> dict[str, Any]:
        """Everything the supervisor page shows beyond the plain fields."""
        # The conversation is checked by the database (kind, first bad message) in the pass that reads its
        # length for the page shown: a 5 MB history is never loaded.
        conversation, page_number, pages = _conversation_at(obj.pk, request.GET.get("cpage"))
        if conversation.json_type != "missing":
            obj.history_kind, obj.history_bad_index = conversation.history_kind, conversation.history_bad_index
        validation = validate_supervisor_state(obj)
        spawned = list(obj.spawned_task_ids or [])
        pending = list(obj.pending_task_ids or [])
        wanted = list(dict.fromkeys([*spawned, *pending]))
        tasks = {t.id: t for t in Task.objects.filter(id__in=wanted).select_related("daemon")}
        task_rows = [
            {
                "id": task_id,
                "task": tasks.get(task_id),
                "spawned": task_id in spawned,
                "pending": task_id in pending,
                "url": reverse("admin:supervisors_task_change", args=[task_id]) if task_id in tasks else "",
            }
            for task_id in wanted
        ]
        checkpoints = list(
            SupervisorCheckpoint.objects.filter(supervisor=obj)
            .select_related("conversation")
            .defer("conversation__messages")
            .order_by("-created_at", "-id")[:20]
        )
        checkpoint_rows = [{"checkpoint": c, "issues": checkpoint_issues(c)} for c in checkpoints]
        restorations = list(obj.restorations.select_related("actor_user", "checkpoint").order_by("-started_at")[:20])
        search = _SearchText.of(request.GET.get("csearch"))
        matches = conversation_search(obj.pk, search.text, limit=MAX_SEARCH_MATCHES + 1) if search.text else []
        matched_here = {m.index for m in matches}
        messages_shown = [
            {**_message_view(conversation.offset + i, message), "matched": conversation.offset + i in matched_here}
            for i, message in enumerate(conversation.messages)
        ]
        questions_list = (
            [q for q in obj.pending_questions if isinstance(q, dict)] if isinstance(obj.pending_questions, list) else []
        )
        can_answer = self.has_answer_permission(request)
        return {
            "validation": validation,
            "would_do": _would_do(validation.recovery_action),
            "task_rows": task_rows,
            "checkpoint_rows": checkpoint_rows,
            "restorations": restorations,
            "conversation": conversation,
            "conversation_messages": messages_shown,
            "conversation_page_number": page_number,
            "conversation_pages": pages,
            "conversation_page_range": _page_links(page_number, pages),
            "conversation_search": search,
            "conversation_matches": [
                {"match": m, "page": m.index // CONVERSATION_PAGE_SIZE + 1} for m in matches[:MAX_SEARCH_MATCHES]
            ],
            "conversation_more_matches": len(matches) > MAX_SEARCH_MATCHES,
            "pending_questions": [
                {
                    "question": q,
                    "form": AnswerForm(
                        initial={"contract_id": obj.contract_id, "question_id": q.get("id"), "next": request.path}
                    )
                    if can_answer
                    else None,
                }
                for q in questions_list
            ],
            "is_stale": is_stale(obj),
            "can_restore": self.has_restore_permission(request),
            "can_answer": can_answer,
            "can_correct": self.has_correct_permission(request),
            "answer_url": reverse("admin:supervisors_supervisorstate_questions"),
            "recent_events": timeline.recent_events(obj),
        }

    # --- extra views -------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        name = "supervisors_supervisorstate_"
        return [
            path("questions/", wrap(self.questions_view), name=name + "questions"),
            path("attention/", wrap(self.attention_view), name=name + "attention"),
            path("dashboard/", wrap(self.dashboard_view), name=name + "dashboard"),
            path("<path:object_id>/restore/", wrap(self.restore_view), name=name + "restore"),
            path("<path:object_id>/validate/", wrap(self.validate_view), name=name + "validate"),
            path("<path:object_id>/redeliver/", wrap(self.redeliver_view), name=name + "redeliver"),
            path("<path:object_id>/correct/", wrap(self.correct_view), name=name + "correct"),
            path("<path:object_id>/timeline/", wrap(self.timeline_view), name=name + "timeline"),
            *super().get_urls(),
        ]

    def questions_view(self, request: HttpRequest):
        return questions.questions_view(self, request)

    def attention_view(self, request: HttpRequest):
        return attention.attention_view(self, request)

    def dashboard_view(self, request: HttpRequest):
        return dashboard.dashboard_view(self, request)

    def timeline_view(self, request: HttpRequest, object_id: str):
        return timeline.timeline_view(self, request, object_id)

    def _object_or_404(self, request: HttpRequest, object_id: str) -> SupervisorState:
        if not self.has_view_permission(request):
            raise PermissionDenied
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404("No such supervisor.")
        return obj

    def _change_url(self, obj: SupervisorState) -> str:
        return reverse("admin:supervisors_supervisorstate_change", args=[obj.pk])

    def restore_view(self, request: HttpRequest, object_id: str):
        """Restore, start fresh or restore a checkpoint: a confirmation page asking for a reason, then the service."""
        if not self.has_restore_permission(request):
            raise PermissionDenied
        obj = self._object_or_404(request, object_id)
        params = request.POST if request.method == "POST" else request.GET
        mode = MODES.get(params.get("mode", "restore"))
        if mode is None:
            # An unknown mode is a tampered form or link: restoring anyway would act on a guess.
            self.message_user(request, "Nothing done: unknown restore mode in the request.", messages.ERROR)
            return HttpResponseRedirect(self._change_url(obj))
        checkpoint = None
        if mode.key == "checkpoint":
            checkpoint = SupervisorCheckpoint.objects.filter(supervisor=obj, id=_int(params.get("checkpoint"))).first()
            if checkpoint is None:
                raise Http404("No such checkpoint of this supervisor.")
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            reason = form.cleaned_data["reason"]
            report = run_restorations(
                request, [obj.pk], mode=mode, reason=reason, checkpoint_id=checkpoint.pk if checkpoint else None
            )
            report_outcome(self, request, report, mode=mode, reason=reason)
            return HttpResponseRedirect(self._change_url(obj))
        hidden = [("mode", mode.key)] + ([("checkpoint", str(checkpoint.pk))] if checkpoint else [])
        response = render_confirmation(
            self,
            request,
            SupervisorState.objects.filter(pk=obj.pk),
            mode=mode,
            form=form,
            hidden=hidden,
            checkpoint=checkpoint,
            cancel_url=self._change_url(obj),
        )
        if checkpoint is not None:
            # Field by field and message by message: what this checkpoint would put back.
            response.context_data["checkpoint_diff"] = checkpoint_diff(obj, checkpoint)
        return response

    def validate_view(self, request: HttpRequest, object_id: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self._object_or_404(request, object_id)
        validate_selected(self, request, SupervisorState.objects.filter(pk=obj.pk))
        return HttpResponseRedirect(self._change_url(obj))

    def redeliver_view(self, request: HttpRequest, object_id: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_restore_permission(request):
            raise PermissionDenied
        obj = self._object_or_404(request, object_id)
        redeliver(self, request, [(obj.pk, obj.contract_id, obj.contract.name)])
        return HttpResponseRedirect(self._change_url(obj))

    def correct_view(self, request: HttpRequest, object_id: str):
        """Correct fields (e.g. drop a bad pending task) through update_supervisor_detailed_state."""
        if not self.has_correct_permission(request):
            raise PermissionDenied
        obj = self._object_or_404(request, object_id)
        form = CorrectionForm(request.POST if request.method == "POST" else None, supervisor=obj)
        diff = None
        if form.is_bound and form.is_valid():
            changes = form.changes()
            if not changes:
                self.message_user(request, "Nothing changed.", messages.INFO)
                return HttpResponseRedirect(self._change_url(obj))
            # First the difference, field by field, once the service would accept it; written on confirmation.
            confirmed = "_confirm" in request.POST
            self._apply_correction(request, obj, form, changes, dry_run=not confirmed)
            if confirmed and not form.errors:
                return HttpResponseRedirect(self._change_url(obj))
            if not form.errors:
                diff = correction_diff(obj, changes, CORRECTABLE_FIELDS)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Correct the supervisor of {obj.contract.name}",
            "subtitle": None,
            "opts": self.opts,
            "original": obj,
            "form": form,
            "diff": diff,
            "media": self.media + form.media,
            "change_url": self._change_url(obj),
        }
        return TemplateResponse(request, "admin/supervisors/supervisorstate/correct.html", context)

    def _apply_correction(
        self, request: HttpRequest, obj: SupervisorState, form: CorrectionForm, changes, *, dry_run: bool
    ) -> None:
        """Check (``dry_run``) or write the correction; a refusal becomes a form error, nothing written."""
        try:
            update_supervisor_detailed_state(
                obj.contract_id,
                changes,
                expected_version=form.cleaned_data["version"],
                actor=Actor.staff(request.user),
                dry_run=dry_run,
            )
        except PreconditionFailed:
            form.add_error(
                None,
                "The supervisor changed since you opened this form (a daemon wrote to it). "
                "Reload the form and make your correction again.",
            )
        except InvalidInput as exc:
            _errors_to_form(form, exc)
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            if dry_run:
                return
            text = f"Corrected {', '.join(sorted(changes))}."
            log_entries(request, [(obj.pk, obj.contract.name, text)])
            self.message_user(request, f"{obj.contract.name}: {text}", messages.SUCCESS)


def _errors_to_form(form: CorrectionForm, exc: InvalidInput) -> None:
    if not exc.fields:
        form.add_error(None, exc.message)
    for field, problems in exc.fields.items():
        target = field if field in form.fields else None
        for problem in problems:
            form.add_error(target, problem if target else f"{field}: {problem}")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _would_do(action: str) -> str:
    return {
        RecoveryAction.PROCEED: "Restoring would resume the supervisor as saved.",
        RecoveryAction.USE_CHECKPOINT: "Restoring would fall back to the newest valid checkpoint "
        "(or start fresh if none is valid).",
        RecoveryAction.START_FRESH: "Restoring would start fresh.",
        RecoveryAction.MANUAL_INTERVENTION: "Restoring would change nothing but mark the supervisor blocked: "
        "a human has to fix the contract or the supervisor task first.",
    }.get(action, str(action))


def _message_view(index: int, message: Any) -> dict[str, Any]:
    """One conversation message as the template shows it: role, a one-line summary, the (cut) body."""

    role = message.get("role") if isinstance(message, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    body = content if isinstance(content, str) else json.dumps(message, indent=2, ensure_ascii=False, default=str)
    cut = len(body) > MESSAGE_PREVIEW_CHARS
    return {
        "index": index,
        "role": role if isinstance(role, str) else "(no role)",
        "summary": Truncator(" ".join(body.split())).chars(120),
        "body": body[:MESSAGE_PREVIEW_CHARS],
        "cut": cut,
        "size": len(body),
    }


def _conversation_at(supervisor_id, cpage: str | None):
    """The conversation page asked for (``cpage``, 1-based), the newest when none or past the end.

    Staff open a supervisor to see what it did last: the newest messages, not
    page 1 of 36.
    """
    try:
        requested = max(1, int(cpage)) if cpage else None
    except (ValueError, OverflowError):
        requested = None
    offset = None if requested is None else (requested - 1) * CONVERSATION_PAGE_SIZE
    conversation = conversation_page(supervisor_id, offset=offset, limit=CONVERSATION_PAGE_SIZE, with_checks=True)
    pages = max(1, -(-conversation.total // CONVERSATION_PAGE_SIZE)) if conversation.total is not None else 1
    return conversation, conversation.offset // CONVERSATION_PAGE_SIZE + 1, pages


@dataclass(frozen=True)
class _SearchText:
    text: str
    error: str = ""

    @classmethod
    def of(cls, raw: str | None) -> _SearchText:
        text = (raw or "").strip()
        if len(text) > MAX_SEARCH_CHARS:
            return cls("", f"Search text is limited to {MAX_SEARCH_CHARS} characters.")
        return cls(text)


def _page_links(current: int, pages: int) -> list[int | None]:
    """Page numbers around the current one, first and last; None marks a gap."""
    wanted = sorted({1, pages, *range(max(1, current - 2), min(pages, current + 2) + 1)})
    links: list[int | None] = []
    for number in wanted:
        if links and number - (links[-1] or 0) > 1:
            links.append(None)
        links.append(number)
    return links
