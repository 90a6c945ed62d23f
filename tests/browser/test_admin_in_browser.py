"""The admin in a real browser: log in, filter, open, restore with a reason, answer a question, permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from supervisors.models import QuestionAnswer, RestorationLog
from tests.admin.conftest import VIEW_ALL, staff_with

from .conftest import login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def staff_admin() -> User:
    return User.objects.create_superuser("boss", password="pw")


def test_login_filter_open_and_restore_through_the_confirmation_page(page, staff_admin, world):
    login(page, "boss")
    page.click("#content-main a[href='/admin/supervisors/supervisorstate/']")
    page.click("#changelist-filter a:text-is('Stale')")
    page.wait_for_url("**stale=yes")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "Alpha contract" in rows.first.inner_text()
    page.click("#result_list >> text=Alpha contract")
    page.wait_for_selector("#validation")
    page.click("text=Restore…")
    assert "You are about to restore 1 supervisor" in page.inner_text("#content-main")
    page.fill("textarea[name=reason]", "daemon-3 rebooted overnight")
    page.click("input[name=_confirm]")
    assert "Alpha contract: Restore: restored (Proceed)" in page.inner_text("ul.messagelist")
    assert "daemon-3 rebooted overnight" in page.inner_text("#restoration-log")
    assert RestorationLog.objects.get().actor_user == staff_admin


def test_answer_a_pending_question_whose_text_holds_a_script_tag(page, staff_admin, world):
    login(page, "boss")
    page.goto("/admin/supervisors/supervisorstate/questions/")
    text = page.inner_text(".sv-question-text")
    assert text == "Merge the <script>alert(1)</script> branch?"
    assert page.locator(".sv-question-text script").count() == 0
    page.check("input[name=choice][value=merge]")
    page.click("button:has-text('Answer')")
    assert "answered" in page.inner_text("ul.messagelist")
    assert "No question is waiting" in page.inner_text("#content-main")
    assert page.dialogs == []  # the script never ran
    assert QuestionAnswer.objects.get().answer == "merge"


def test_staff_without_restore_permission_have_no_restore_action(page, world):
    staff_with("viewer", *VIEW_ALL)
    login(page, "viewer")
    page.goto("/admin/supervisors/supervisorstate/")
    options = page.locator("select[name=action] option").all_inner_texts()
    assert any("Validate" in o for o in options)
    assert not any("Restore" in o or "fresh" in o for o in options)
    page.click("#result_list >> text=Alpha contract")
    assert page.locator("text=Restore…").count() == 0
    assert page.locator("text=Start fresh…").count() == 0
