"""The needs-attention page and the list pages in a real browser at a laptop's width (1366 px)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse

from supervisors.enums import SupervisorStatus
from supervisors.models import RestorationLog, SupervisorState
from tests.factories import make_contract, make_supervisor

from .conftest import login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture
def boss() -> User:
    return User.objects.create_superuser("boss", password="pw")


def test_from_the_list_to_what_needs_attention_and_a_restore(page, boss, world):
    page.set_viewport_size(LAPTOP)
    login(page, "boss")
    page.goto("/admin/supervisors/supervisorstate/")
    page.click("text=Needing attention")
    page.wait_for_selector("#attention")
    rows = page.locator("#attention tbody tr")
    assert rows.count() == 3
    # The world's supervisor tasks run on no daemon: each row says so, in words.
    assert all("has no daemon" in text for text in rows.all_inner_texts())
    gamma = rows.filter(has_text="Gamma contract")
    assert "Saved state invalid" in gamma.inner_text()  # its pending task was never spawned
    rows.filter(has_text="Alpha contract").locator("text=Restore…").click()
    page.fill("textarea[name=reason]", "its daemon is gone")
    page.click("input[name=_confirm]")
    assert "Alpha contract: Restore: restored" in page.inner_text("ul.messagelist")
    assert RestorationLog.objects.get().reason == "its daemon is gone"


def test_every_list_page_fits_a_1366_pixel_screen(page, boss, world):
    page.set_viewport_size(LAPTOP)
    login(page, "boss")
    urls = [reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist") for m in admin.site._registry]
    urls += [
        reverse("admin:supervisors_supervisorstate_attention"),
        reverse("admin:supervisors_supervisorstate_questions"),
    ]
    too_wide = {}
    for url in urls:
        page.goto(url)
        # The page itself, and any box that scrolls sideways inside it (Django wraps result tables in one).
        overflow = page.evaluate(
            """() => Math.max(document.documentElement.scrollWidth - window.innerWidth,
                ...[...document.querySelectorAll('#content *')].filter(e => getComputedStyle(e).overflowX !== 'visible')
                    .map(e => e.scrollWidth - e.clientWidth))"""
        )
        if overflow > 0:
            too_wide[url] = overflow
    assert too_wide == {}


def test_the_conversation_opens_at_the_newest_and_a_search_finds_an_old_message(page, boss):
    history = [{"role": "user" if i % 2 else "assistant", "content": f"message number {i:03d}"} for i in range(80)]
    history[12]["content"] = "We agreed to keep the legacy importer"
    supervisor = make_supervisor(make_contract("Long talk"), conversation_history=history)
    login(page, "boss")
    page.goto(reverse("admin:supervisors_supervisorstate_change", args=[supervisor.pk]))
    assert "Page 4 of 4" in page.inner_text("#conversation")
    assert "message number 079" in page.inner_text("#conversation")
    page.fill("input[name=csearch]", "legacy IMPORTER")
    page.click(".sv-conversation-search input[type=submit]")
    page.click("#conversation-matches a:text-is('#12')")
    page.wait_for_url("**cpage=1**")
    opened = page.locator("#m-12")
    assert opened.get_attribute("open") is not None
    assert "We agreed to keep the legacy importer" in opened.inner_text()


def test_pages_refresh_themselves_keeping_selection_and_pausing_while_typing(page, boss, world):
    page.add_init_script("window.SV_LIVE_SECONDS = 0.5")
    login(page, "boss")
    # The list: select a row, let a daemon's write change it, see it change with the row still selected.
    page.goto("/admin/supervisors/supervisorstate/?o=1")
    alpha = world["alpha"]
    page.check(f"input.action-select[value='{alpha.pk}']")
    SupervisorState.objects.filter(pk=alpha.pk).update(state=SupervisorStatus.BLOCKED, error_message="disk full")
    row = page.locator("#result_list tbody tr", has=page.locator(f"input[value='{alpha.pk}']"))
    row.locator("text=Blocked").wait_for()
    assert page.is_checked(f"input.action-select[value='{alpha.pk}']")
    assert "1 of 3 selected" in page.inner_text(".action-counter")
    # A new supervisor does not jump into the rows under the pointer: a notice offers the reload.
    make_supervisor(make_contract("Newcomer"))
    page.locator("#sv-live-status", has_text="The list changed").wait_for()
    assert "Newcomer" not in page.inner_text("#result_list")
    # The needs-attention page picks up a failure without a reload...
    page.goto(reverse("admin:supervisors_supervisorstate_attention"))
    gamma = world["gamma"]
    SupervisorState.objects.filter(pk=gamma.pk).update(state=SupervisorStatus.FAILED, error_message="out of memory")
    page.locator("#attention", has_text="Failed: out of memory.").wait_for()
    # ...and stops refreshing while staff type in a form (the supervisor page's answer box).
    page.goto(reverse("admin:supervisors_supervisorstate_change", args=[world["beta"].pk]))
    page.fill("textarea[name=answer]", "half-typed answ")
    page.locator("#sv-live-status", has_text="paused while you fill in a form").wait_for()
    SupervisorState.objects.filter(pk=world["beta"].pk).update(phase="changed-meanwhile")
    page.wait_for_timeout(1500)
    assert "changed-meanwhile" not in page.inner_text("fieldset.module")
    assert page.input_value("textarea[name=answer]") == "half-typed answ"
