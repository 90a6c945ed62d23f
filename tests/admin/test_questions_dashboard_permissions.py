"""Pending questions, the dashboard, and who may do what."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from supervisors.models import QuestionAnswer, RestorationLog
from tests.factories import make_contract, make_question, make_supervisor

pytestmark = pytest.mark.django_db

LIST = reverse("admin:supervisors_supervisorstate_changelist")
QUESTIONS = reverse("admin:supervisors_supervisorstate_questions")
DASHBOARD = reverse("admin:supervisors_supervisorstate_dashboard")


def test_questions_page_lists_oldest_first_and_escapes_question_text(admin_client, world):
    newer = make_question("Ship it?", askedAt=datetime(2026, 11, 2, tzinfo=UTC).isoformat())
    make_supervisor(make_contract("Delta contract"), state="waiting_for_user", pending_questions=[newer])
    html = admin_client.get(QUESTIONS).content.decode()
    assert html.index("Merge the") < html.index("Ship it?")
    assert "<script>alert(1)</script>" not in html
    assert "Merge the &lt;script&gt;alert(1)&lt;/script&gt; branch?" in html
    assert "Delta contract" in html and "Beta contract" in html


def test_answering_with_a_choice_uses_the_service_and_records_the_staff_user(admin_client, world):
    beta, question = world["beta"], world["question"]
    response = admin_client.post(
        QUESTIONS,
        {"contract_id": beta.contract_id, "question_id": question["id"], "choice": "merge", "next": QUESTIONS},
    )
    assert response.status_code == 302 and response["Location"] == QUESTIONS
    answer = QuestionAnswer.objects.get()
    assert answer.answer == "merge" and answer.answered_by_user.username == "admin"
    beta.refresh_from_db()
    assert beta.pending_questions == [] and beta.state == "working"
    assert LogEntry.objects.filter(object_id=str(beta.pk), change_message__contains="merge").exists()


def test_a_typed_answer_wins_and_a_second_answer_is_refused(admin_client, world):
    beta, question = world["beta"], world["question"]
    data = {"contract_id": beta.contract_id, "question_id": question["id"], "choice": "merge", "answer": "wait a day"}
    admin_client.post(QUESTIONS, data)
    admin_client.post(QUESTIONS, {**data, "answer": "again"})
    assert list(QuestionAnswer.objects.values_list("answer", flat=True)) == ["wait a day"]


def test_dashboard_counts_states_stale_questions_and_restorations(admin_client, world):
    admin_client.post(
        reverse("admin:supervisors_supervisorstate_restore", args=[world["alpha"].pk]),
        {"mode": "restore", "reason": "r"},
    )
    response = admin_client.get(DASHBOARD)
    context = response.context
    assert {row["state"]: row["count"] for row in context["by_state"]} == {
        "working": 1,
        "waiting_for_user": 1,
        "waiting_for_tasks": 1,
    }
    assert context["stale_count"] == 0  # Alpha was just restored: its activity is fresh
    assert context["questions"]["questions"] == 1
    assert context["restorations_total"] == 1
    assert 'class="sv-bar"' in response.content.decode()


def test_the_dashboard_reads_the_stored_figures_in_a_fixed_number_of_queries(admin_client, settings):
    for n in range(3):
        make_supervisor(make_contract(f"c{n}"), state="working")
    admin_client.get(DASHBOARD)  # no figures yet: computed once and stored
    with CaptureQueriesContext(connection) as few:
        admin_client.get(DASHBOARD)
    for n in range(60):
        make_supervisor(make_contract(f"more {n}"), state="failed")
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(DASHBOARD)
    assert len(many) == len(few)
    assert not [q["sql"] for q in many.captured_queries if "supervisor_states" in q["sql"]]
    assert response.context["total"] == 3  # the stored figures, not a scan per view ...
    assert "Supervisor figures computed at" in response.content.decode()
    settings.METRICS_SNAPSHOT_MAX_AGE_SECONDS = 0  # ... until they are too old: then computed again
    assert admin_client.get(DASHBOARD).context["total"] == 63


def test_staff_without_restore_permission_see_pages_but_no_restore(client, viewer, world):
    client.force_login(viewer)
    listing = client.get(LIST).content.decode()
    assert "Alpha contract" in listing
    assert "restore_selected" not in listing and "start_fresh_selected" not in listing
    assert "validate_selected" in listing
    page = client.get(reverse("admin:supervisors_supervisorstate_change", args=[world["alpha"].pk])).content.decode()
    assert "Restore…" not in page and "Start fresh…" not in page and "Validate" in page


def test_forged_restore_posts_are_refused(client, viewer, world):
    client.force_login(viewer)
    alpha = world["alpha"]
    url = reverse("admin:supervisors_supervisorstate_restore", args=[alpha.pk])
    assert client.post(url, {"mode": "restore", "reason": "x"}).status_code == 403
    assert client.get(url).status_code == 403
    redeliver = reverse("admin:supervisors_supervisorstate_redeliver", args=[world["beta"].pk])
    assert client.post(redeliver).status_code == 403
    client.post(
        LIST, {"action": "restore_selected", "post": "yes", "reason": "x", "_selected_action": [alpha.pk], "index": "0"}
    )
    assert not RestorationLog.objects.exists()
    alpha.refresh_from_db()
    assert alpha.restoration_count == 0


def test_answering_needs_the_answer_permission(client, viewer, answerer, world):
    data = {"contract_id": world["beta"].contract_id, "question_id": world["question"]["id"], "choice": "merge"}
    client.force_login(viewer)
    assert 'name="choice"' not in client.get(QUESTIONS).content.decode()
    assert client.post(QUESTIONS, data).status_code == 403
    assert not QuestionAnswer.objects.exists()
    client.force_login(answerer)
    assert client.post(QUESTIONS, data).status_code == 302
    assert QuestionAnswer.objects.get().answered_by_user == answerer


def test_corrections_need_the_change_permission(client, viewer, world):
    client.force_login(viewer)
    url = reverse("admin:supervisors_supervisorstate_correct", args=[world["gamma"].pk])
    assert client.get(url).status_code == 403


def test_admin_index_links_the_dashboard_for_those_who_may_see_it(admin_client, client):
    assert DASHBOARD in admin_client.get(reverse("admin:index")).content.decode()
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_user("plain", password="pw", is_staff=True))
    assert DASHBOARD not in client.get(reverse("admin:index")).content.decode()
    assert client.get(DASHBOARD).status_code == 403
