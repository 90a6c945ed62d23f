"""Reading a supervisor's timeline in a real browser after a question, its answer and a restore."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from supervisors.services.questions import add_supervisor_pending_question
from tests.factories import make_question

from .conftest import login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def staff_admin() -> User:
    return User.objects.create_superuser("boss", password="pw")


def test_read_a_timeline_after_a_question_an_answer_and_a_restore(page, staff_admin, world):
    alpha = world["alpha"]
    add_supervisor_pending_question(alpha.contract_id, make_question("Deploy on Friday?", choices=["yes", "no"]))
    login(page, "boss")
    page.goto("/admin/supervisors/supervisorstate/questions/")
    page.locator("#content-main .sv-question", has_text="Deploy on Friday?").locator(
        "input[name=choice][value=no]"
    ).check()
    page.locator("#content-main .sv-question", has_text="Deploy on Friday?").locator(
        "button:has-text('Answer')"
    ).click()
    assert "answered" in page.inner_text("ul.messagelist")
    page.goto(f"/admin/supervisors/supervisorstate/{alpha.pk}/change/")
    page.click("text=Restore…")
    page.fill("textarea[name=reason]", "daemon-3 rebooted")
    page.click("input[name=_confirm]")
    assert "Restored" in page.inner_text("#recent-events")
    page.click(".sv-toolbar a:text-is('Timeline')")
    page.wait_for_url("**/timeline/")
    assert page.inner_text("h1") == "Timeline of Alpha contract"
    rows = page.locator("#timeline tbody tr").all_inner_texts()
    assert len(rows) == 3
    assert "Restored (manual): restored" in rows[0] and "daemon-3 rebooted" in rows[0] and "staff:boss" in rows[0]
    assert "Answered by staff:boss: “Deploy on Friday?”" in rows[1]
    assert "Asked “Deploy on Friday?”" in rows[2]
    assert all("ago" in row for row in rows)
    # Only the questions, then a bad page number: an empty page with a message, not an error.
    page.check("#timeline-filter input[value=question_asked]")
    page.check("#timeline-filter input[value=question_answered]")
    page.click("#timeline-filter button")
    assert len(page.locator("#timeline tbody tr").all_inner_texts()) == 2
    page.goto(f"/admin/supervisors/supervisorstate/{alpha.pk}/timeline/?page=-3")
    assert "is not a page number" in page.inner_text(".errornote")
    assert page.locator("#timeline").count() == 0
