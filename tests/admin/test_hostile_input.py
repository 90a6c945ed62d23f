"""Staff with a bad link or bad form input get a clear page or a form error, never a 500.

Every registered admin list is walked with hostile querystrings; the forms get NUL, deep nesting and impossible times.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import reverse

from supervisors.enums import SupervisorStatus
from supervisors.models import SupervisorState
from supervisors.services.questions import MAX_ANSWER_LENGTH
from supervisors.validators import clean_pending_question
from tests.admin.test_page import form_data
from tests.factories import make_contract, make_daemon, make_question, make_supervisor

pytestmark = pytest.mark.django_db

HOSTILE_VALUES = [
    "\x00",
    "a\x00b",
    "99999999999",
    "-99999999999999999999999",
    "1e400",
    "%ED%A0%80",  # a lone surrogate as UTF-8 bytes: invalid Unicode
    "%FF%FE",  # not UTF-8 at all
    "%",
    "x" * 20_000,
    "[" * 50_000,
    "2024-02-30",
    "null",
]


def changelists():
    for model in admin.site._registry:
        opts = model._meta
        if opts.app_label in ("supervisors", "django_tasks_database", "auth", "axes"):
            yield f"admin:{opts.app_label}_{opts.model_name}_changelist"


def hostile_params(model_admin):
    names = {"q", "o", "p", "e", "_to_field", "all", "year", "month", "day"}
    for spec in model_admin.list_filter:
        names.add(spec if isinstance(spec, str) else getattr(spec, "parameter_name", "x"))
    if model_admin.date_hierarchy:
        field = model_admin.date_hierarchy
        names |= {f"{field}__year", f"{field}__month", f"{field}__day"}
    for spec in model_admin.list_filter:
        if isinstance(spec, str):
            names |= {f"{spec}__exact", f"{spec}__isnull", f"{spec}__in"}
    return sorted(names)


@pytest.mark.parametrize("url_name", sorted(changelists()))
def test_hostile_list_querystrings_are_never_a_500(admin_client, url_name):
    model = next(m for m in admin.site._registry if url_name.endswith(f"_{m._meta.model_name}_changelist"))
    url = reverse(url_name)
    admin_client.raise_request_exception = False
    failures = []
    for name in hostile_params(admin.site._registry[model]):
        for value in HOSTILE_VALUES:
            encoded = value if value.startswith("%") and len(value) > 1 else quote(value, safe="")
            response = admin_client.get(f"{url}?{quote(name)}={encoded}")
            if response.status_code >= 500:
                failures.append((name, value[:20], response.status_code))
    assert failures == [], failures


def test_a_nul_in_a_filter_is_a_400_page_that_names_it_and_offers_the_clean_list(admin_client, world):
    url = reverse("admin:supervisors_supervisorstate_changelist")
    response = admin_client.get(f"{url}?state=%00")
    assert response.status_code == 400
    body = response.content.decode()
    assert "&#x27;state&#x27; carries a NUL character" in body
    assert f'href="{url}"' in body
    assert admin_client.get(f"{url}?state=working").context["cl"].result_count == 1


def test_a_year_beyond_the_calendar_in_the_date_hierarchy_is_a_400_page(admin_client):
    url = reverse("admin:supervisors_restorationlog_changelist")
    response = admin_client.get(f"{url}?started_at__year=99999999999")
    assert response.status_code == 400
    assert "out of range" in response.content.decode()
    assert admin_client.get(f"{url}?started_at__year=2026").status_code == 200


def test_a_search_longer_than_anyone_types_is_a_400_page_on_every_list(admin_client):
    for url_name in changelists():
        response = admin_client.get(reverse(url_name), {"q": "[" * 50_000})
        assert response.status_code == 400, url_name
        assert "Search text is limited to 1,000 characters" in response.content.decode()


def test_view_site_is_not_offered_because_there_is_no_site(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert "View site" not in response.content.decode()


IMPOSSIBLE_TIMES = ["2026-02-30T12:00:00Z", "2026-11-01T25:00:00Z", "2026-11-01T12:00:00", 12, None]


@pytest.mark.parametrize("asked_at", IMPOSSIBLE_TIMES)
def test_a_question_with_an_impossible_asked_time_does_not_break_any_page(admin_client, asked_at):
    """makima writes ``askedAt`` itself: 30 February must read as "no time", on every page that shows questions."""
    question = make_question("Ship it?", askedAt=asked_at)
    supervisor = make_supervisor(
        make_contract("Impossible time"), state=SupervisorStatus.WAITING_FOR_USER, pending_questions=[question]
    )
    for url in (
        reverse("admin:supervisors_supervisorstate_change", args=[supervisor.pk]),
        reverse("admin:supervisors_supervisorstate_questions"),
        reverse("admin:supervisors_supervisorstate_dashboard"),
        reverse("admin:supervisors_supervisorstate_changelist"),
    ):
        assert admin_client.get(url).status_code == 200, url
    validate = admin_client.post(
        reverse("admin:supervisors_supervisorstate_validate", args=[supervisor.pk]), follow=True
    )
    assert validate.status_code == 200
    assert "askedAt" in validate.content.decode()
    assert "Ship it?" in admin_client.get(reverse("admin:supervisors_supervisorstate_questions")).content.decode()
    # The validator names the field instead of raising: restoring such a supervisor is a reported outcome.
    with pytest.raises(ValidationError) as raised:
        clean_pending_question(question)
    assert "askedAt" in raised.value.message_dict


def test_a_correction_nested_fifty_thousand_deep_is_a_form_error_and_changes_nothing(admin_client, world):
    beta = world["beta"]
    url = reverse("admin:supervisors_supervisorstate_correct", args=[beta.pk])
    data = form_data(admin_client.get(url).context["form"])
    data["pending_questions"] = "[" * 50_000 + "]" * 50_000
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "nested too deeply" in " ".join(response.context["form"].errors["pending_questions"])
    assert SupervisorState.objects.get(pk=beta.pk).pending_questions == beta.pending_questions


#: Values no field of these forms may accept (a phase is free text up to 50 characters, so nothing shorter).
HOSTILE_FORM_VALUES = ["\x00", "a\x00b", "x" * 2_000_000, "9" * 60, "-" + "9" * 60, "[" * 50_000]


def _snapshot(supervisor_pk) -> tuple:
    row = SupervisorState.objects.get(pk=supervisor_pk)
    return (row.updated_at, row.restoration_count, row.state, row.phase, row.pending_questions)


@pytest.mark.parametrize("value", HOSTILE_FORM_VALUES, ids=lambda v: repr(v[:6]))
def test_hostile_values_in_every_supervisor_form_are_refused_and_change_nothing(admin_client, world, value):
    """Each field of the correction, answer, restore and key forms, one at a time: a form error or a message."""
    beta, question = world["beta"], world["question"]
    before = _snapshot(beta.pk)
    correct_url = reverse("admin:supervisors_supervisorstate_correct", args=[beta.pk])
    correction = form_data(admin_client.get(correct_url).context["form"])
    for field in ("state", "phase", "progress", "spawned_task_ids", "pending_task_ids", "pending_questions"):
        response = admin_client.post(correct_url, {**correction, field: value})
        assert response.status_code == 200, field
        assert response.context["form"].errors, field
    questions_url = reverse("admin:supervisors_supervisorstate_questions")
    answer = {"contract_id": str(beta.contract_id), "question_id": question["id"], "answer": "yes", "next": ""}
    # An answer is free text: only a NUL or more than MAX_ANSWER_LENGTH characters is hostile there.
    text_fields = ("answer", "choice") if "\x00" in value or len(value) > MAX_ANSWER_LENGTH else ()
    for field in ("contract_id", "question_id", *text_fields):
        response = admin_client.post(questions_url, {**answer, "answer": "", "choice": "yes", field: value})
        assert response.status_code == 302, field
        assert SupervisorState.objects.get(pk=beta.pk).pending_questions == [question], field
    response = admin_client.post(questions_url, {**answer, "contract_id": "not-a-uuid", "next": value})
    assert response["Location"] == questions_url
    assert _snapshot(beta.pk) == before
    restore_url = reverse("admin:supervisors_supervisorstate_restore", args=[world["alpha"].pk])
    reason_is_hostile = "\x00" in value or len(value) > 2000  # a reason is free text up to 2,000 characters
    for params in (
        {"reason": value if reason_is_hostile else "\x00"},
        {"reason": "ok", "mode": value},
        {"reason": "ok", "mode": "checkpoint", "checkpoint": value},
    ):
        response = admin_client.post(restore_url, params, follow=True)
        assert response.status_code in (200, 404), params
        if params.get("mode") == value:
            assert "unknown restore mode" in response.content.decode()
    assert SupervisorState.objects.get(pk=world["alpha"].pk).restoration_count == world["alpha"].restoration_count
    daemon = make_daemon("hostile")
    issue_url = reverse("admin:supervisors_daemon_issue_key", args=[daemon.pk])
    key_name = value if "\x00" in value or len(value) > 100 else "\x00"  # a key's name: free text up to 100
    assert admin_client.post(issue_url, {"name": key_name}).status_code == 200
    assert not daemon.api_keys.exists()


HOSTILE_IDS = ["not-an-id", "%00", "a%00b", "9" * 40, "-1", "%ED%A0%80", "%FF", "0" * 5000]


@pytest.mark.parametrize("url_name", sorted(changelists()))
def test_hostile_object_ids_in_admin_paths_are_never_a_500(admin_client, url_name):
    """A mangled id in a pasted link: a redirect with "does not exist", a 404 or a 400 page, whatever the model."""
    admin_client.raise_request_exception = False
    base = reverse(url_name)
    suffixes = ["change/", "delete/", "history/"]
    if url_name == "admin:supervisors_supervisorstate_changelist":
        suffixes += ["restore/", "restore/?mode=checkpoint&checkpoint=99999999999999999999", "correct/"]
    if url_name == "admin:supervisors_daemon_changelist":
        suffixes += ["issue-key/"]
    failures = []
    for object_id in HOSTILE_IDS:
        for suffix in suffixes:
            response = admin_client.get(f"{base}{object_id}/{suffix}")
            if response.status_code >= 500:
                failures.append((object_id[:12], suffix, response.status_code))
    assert failures == [], failures
