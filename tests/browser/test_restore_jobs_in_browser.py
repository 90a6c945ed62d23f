"""A restore over more than a page in a real browser: select all, confirm, land on the job's page, watch it finish.

The job goes to the database queue and a real ``manage.py db_worker``
process (started and stopped here) runs it; the job page reloads itself
until the job is done.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from supervisors.models import RestorationLog, RestoreJob, SupervisorState
from tests.services.test_jobs import DATABASE_BACKEND, start_worker, stop
from tests.services.test_watchdog import fleet, live_daemon

from .conftest import login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_select_more_than_a_page_restore_and_follow_the_job_to_its_result(page, settings):
    settings.TASKS = DATABASE_BACKEND
    User.objects.create_superuser("boss", password="pw")
    rows = fleet(live_daemon(), ["interrupted"] * 60, "rack4-")
    login(page, "boss")
    page.goto("/admin/supervisors/supervisorstate/?state__exact=interrupted")
    page.check("#action-toggle")  # the 50 rows of this page
    page.click(".actions .question a")  # then all 60 across pages
    page.select_option("select[name=action]", "restore_selected")
    page.click("button[name=index]")
    assert "You are about to restore 60 supervisors" in page.inner_text(".sv-confirm-count")
    assert "background job" in page.inner_text("#content-main")
    page.fill("textarea[name=reason]", "rack 4 lost power")
    page.click("input[name=_confirm]")
    page.wait_for_url(re.compile(r".*/admin/supervisors/restorejob/\d+/change/$"))
    job = RestoreJob.objects.get()
    assert "Queued restore job" in page.inner_text("ul.messagelist")
    assert page.get_attribute("#job-status", "data-status") == "queued"
    assert page.inner_text("[data-count=remaining]") == "60"

    worker = start_worker()
    try:
        # The page reloads itself every two seconds while the job runs.
        page.wait_for_selector("#job-status[data-status=done]", timeout=60_000)
    finally:
        output = stop(worker)
    assert worker.returncode == 0, output
    assert page.inner_text("[data-count=done]") == "60"
    assert page.inner_text("[data-count=remaining]") == "0"
    results = page.locator("#job-results tbody tr")
    assert results.count() == 50  # the first page of per-supervisor results
    assert "rack4-" in results.first.inner_text() and "restored (Proceed)" in results.first.inner_text()
    assert page.locator("input[name=_cancel]").count() == 0
    page.click("#job-results .paginator a:has-text('next')")
    assert page.locator("#job-results tbody tr").count() == 10
    assert (
        list(SupervisorState.objects.filter(pk__in=[r.pk for r in rows]).values_list("restoration_count", flat=True))
        == [1] * 60
    )
    assert RestorationLog.objects.filter(reason=f"rack 4 lost power (restore job #{job.pk})").count() == 60
