"""The pending-questions page: every question waiting for a human, oldest first, answerable in place.

Answers go through ``clear_pending_question``, the same service the API's
answer endpoint calls, with the staff user as the actor.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from supervisors.models import SupervisorState
from supervisors.selectors import pending_questions_overview
from supervisors.services.actors import Actor
from supervisors.services.errors import ServiceError
from supervisors.services.questions import clear_pending_question
from supervisors.validators import parse_aware_datetime

from .actions import log_entries
from .forms import AnswerForm

if TYPE_CHECKING:
    from .supervisor import SupervisorStateAdmin

QUESTIONS_PER_PAGE = 50


def questions_view(model_admin: SupervisorStateAdmin, request: HttpRequest):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    here = reverse("admin:supervisors_supervisorstate_questions")
    if request.method == "POST":
        if not model_admin.has_answer_permission(request):
            raise PermissionDenied
        form = AnswerForm(request.POST)
        next_url = _admin_path_or(request.POST.get("next"), here)
        if form.is_valid():
            answer(model_admin, request, form)
        else:
            model_admin.message_user(request, " ".join(form.errors.get("__all__", ["Invalid answer."])), messages.ERROR)
        return HttpResponseRedirect(next_url)

    items = pending_questions_overview()
    page = Paginator(items, QUESTIONS_PER_PAGE).get_page(request.GET.get("page"))
    can_answer = model_admin.has_answer_permission(request)
    rows = [
        {
            **item,
            "url": reverse("admin:supervisors_supervisorstate_change", args=[item["supervisor_id"]]),
            "asked_at": _asked_at(item["question"]),
            "form": AnswerForm(
                initial={"contract_id": item["contract_id"], "question_id": item["question"].get("id"), "next": here}
            )
            if can_answer
            else None,
        }
        for item in page.object_list
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Pending questions",
        "subtitle": None,
        "opts": model_admin.opts,
        "rows": rows,
        "page": page,
        "total": len(items),
        "can_answer": can_answer,
        "media": model_admin.media,
    }
    return TemplateResponse(request, "admin/supervisors/supervisorstate/questions.html", context)


def _admin_path_or(candidate: str | None, default: str) -> str:
    """Where to go back after answering: a path inside the admin, or the questions page.

    The form carries the page it came from; a tampered value (another host, a
    NUL, a relative path) must not become the redirect.
    """
    admin_root = reverse("admin:index")
    if (
        candidate
        and candidate.startswith(admin_root)
        and candidate.isprintable()
        and url_has_allowed_host_and_scheme(candidate, allowed_hosts=None)
    ):
        return candidate
    return default


def _asked_at(question: dict) -> datetime | None:
    return parse_aware_datetime(question.get("askedAt"))


def answer(model_admin: SupervisorStateAdmin, request: HttpRequest, form: AnswerForm) -> None:
    contract_id = form.cleaned_data["contract_id"]
    question_id = form.cleaned_data["question_id"]
    text = form.cleaned_data["text"]
    try:
        record = clear_pending_question(contract_id, question_id, answer=text, actor=Actor.staff(request.user))
    except ServiceError as exc:
        model_admin.message_user(request, f"Not answered: {exc.message}", messages.ERROR)
        return
    supervisor_id, name = (
        SupervisorState.objects.filter(pk=record.supervisor_id).values_list("id", "contract__name").first()
    )
    log_entries(request, [(supervisor_id, name, f"Answered question {question_id}: {text}")])
    model_admin.message_user(request, f"{name}: answered “{record.question.get('question', '')}” with “{text}”.")
