"""The admin in a real browser: log in, filter, open, restore with a reason, answer a question, permissions."""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.mark.skipif(not os.environ.get("ADMIN_SCREENSHOTS"), reason="set ADMIN_SCREENSHOTS=1 to refresh docs/*.png")
def test_screenshots_for_the_docs(browser, live_http, staff_admin, world):
    """Not a check: refreshes docs/admin-*.png from a small, varied world."""
    from datetime import timedelta

    from django.utils import timezone

    from supervisors.enums import RestorationSource
    from supervisors.models import SupervisorState
    from supervisors.services.actors import Actor
    from supervisors.services.restoration import restore_supervisor
    from supervisors.services.state import update_supervisor_phase
    from tests.factories import make_contract, make_question, make_supervisor

    docs = Path(__file__).resolve().parents[2] / "docs"
    docs.mkdir(exist_ok=True)
    now = timezone.now()
    samples = [
        ("Billing export", "working", 72, "Writing the CSV exporter", 30),
        ("Search index", "working", 15, "Re-indexing 40,000 documents", 3 * 3600),
        ("Login page", "waiting_for_tasks", 55, "Waiting on 2 test tasks", 60),
        ("Docs overhaul", "blocked", 30, "Needs a decision on the style guide", 600),
        ("Payment retries", "failed", 80, "Tests failed after the merge", 1200),
        ("Mobile layout", "completed", 100, "Done", 7200),
        ("Data migration", "initializing", 0, "Loading the contract", 4000),
        ("API rate limits", "interrupted", 45, "Daemon went away", 900),
    ]
    for name, state, progress, activity, age in samples:
        make_supervisor(
            make_contract(name, phase="build"),
            state=state,
            progress=progress,
            current_activity=activity,
            error_message="daemon-2 stopped answering" if state in ("blocked", "failed") else None,
            last_activity=now - timedelta(seconds=age),
        )
    make_supervisor(
        make_contract("Release notes", phase="review"),
        state="waiting_for_user",
        progress=90,
        current_activity="Asking which version to tag",
        pending_questions=[
            make_question(
                "Tag this release as 2.4.0 or 3.0.0?",
                choices=["2.4.0", "3.0.0"],
                context="Breaking API change in /v1/tasks",
            )
        ],
    )
    gamma = world["gamma"]
    SupervisorState.objects.filter(pk=gamma.pk).update(
        conversation_history=[
            {
                "role": "user" if i % 2 else "assistant",
                "content": f"Step {i}: " + "checked the failing test and the parser. " * 6,
            }
            for i in range(80)
        ]
    )
    update_supervisor_phase(gamma.contract_id, "plan")
    for supervisor in SupervisorState.objects.filter(state__in=["working", "interrupted"])[:3]:
        restore_supervisor(
            supervisor.contract_id, source=RestorationSource.DAEMON_RESTART, actor=Actor.system("daemon-2")
        )
    restore_supervisor(
        world["alpha"].contract_id,
        source=RestorationSource.MANUAL,
        actor=Actor.staff(staff_admin),
        reason="night crash",
    )
    SupervisorState.objects.filter(pk=world["alpha"].pk).update(last_activity=now - timedelta(hours=2))

    context = browser.new_context(base_url=live_http.url, viewport={"width": 1600, "height": 900})
    page = context.new_page()
    login(page, "boss")
    page.goto("/admin/supervisors/supervisorstate/")
    page.click("#toggle-nav-sidebar")  # more room for the columns; the admin remembers it
    page.screenshot(path=str(docs / "admin-list.png"), full_page=True)
    page.goto(f"/admin/supervisors/supervisorstate/{gamma.pk}/change/")
    page.locator("details.sv-message").nth(1).evaluate("d => d.open = true")
    page.screenshot(path=str(docs / "admin-supervisor.png"), full_page=True)
    page.goto("/admin/supervisors/supervisorstate/dashboard/")
    page.screenshot(path=str(docs / "admin-dashboard.png"), full_page=True)
    page.goto("/admin/supervisors/supervisorstate/questions/")
    page.screenshot(path=str(docs / "admin-questions.png"), full_page=True)
    page.goto(f"/admin/supervisors/supervisorstate/{gamma.pk}/restore/?mode=restore")
    page.screenshot(path=str(docs / "admin-restore-confirmation.png"), full_page=True)
    context.close()
