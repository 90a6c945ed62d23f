"""Admin restores over more than a page become restore jobs: queued at once, followed, cancelled, never a 500.

The job is run here by calling what a worker calls (``run_restore_job``);
tests/jobs/ runs real worker processes.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from supervisors.enums import SupervisorStatus
from supervisors.models import RestorationLog, RestoreJob, RestoreJobItem, SupervisorEvent, SupervisorState
from supervisors.services.restore_jobs import run_restore_job
from tests.admin.conftest import VIEW_ALL, staff_with
from tests.factories import make_contract, make_daemon, make_supervisor

pytestmark = pytest.mark.django_db

LIST = reverse("admin:supervisors_supervisorstate_changelist")
DAEMONS = reverse("admin:supervisors_daemon_changelist")
JOBS = reverse("admin:supervisors_restorejob_changelist")


@pytest.fixture(autouse=True)
def small_page(settings):
    settings.ADMIN_LIST_PER_PAGE = 3


def job_url(job: RestoreJob) -> str:
    return reverse("admin:supervisors_restorejob_change", args=[job.pk])


def cancel_url(job_id: int) -> str:
    return reverse("admin:supervisors_restorejob_cancel", args=[job_id])


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def working(n: int, prefix: str = "W", **kwargs) -> list[SupervisorState]:
    return [make_supervisor(make_contract(f"{prefix}{i}"), state=SupervisorStatus.WORKING, **kwargs) for i in range(n)]


def select_all(client, action: str, **extra):
    first = client.get(f"{LIST}?state__exact=working").context["cl"].result_list[0]
    data = {"action": action, "select_across": "1", "index": "0", "_selected_action": [first.pk], **extra}
    return client.post(f"{LIST}?state__exact=working", data)


def test_more_than_a_page_is_queued_and_the_request_lands_on_the_job_page(admin_client):
    rows = working(5)
    make_supervisor(make_contract("Idle"), state=SupervisorStatus.IDLE)
    confirm = select_all(admin_client, "restore_selected")
    html = confirm.content.decode()
    assert "this runs as a <strong>background job</strong>" in html
    token = confirm.context["form"]["token"].value()
    done = select_all(admin_client, "restore_selected", post="yes", reason="rack 4 lost power", token=str(token))
    job = RestoreJob.objects.get()
    assert done.status_code == 302 and done.url == job_url(job)
    assert (job.kind, job.total, job.status, job.reason) == ("restore", 5, "queued", "rack 4 lost power")
    assert not RestorationLog.objects.exists()  # nothing restored in the request
    page = admin_client.get(job_url(job))
    html = page.content.decode()
    assert f"Queued restore job #{job.pk}" in " ".join(texts(page))
    assert 'data-status="queued"' in html and '<meta http-equiv="refresh"' in html
    assert '<strong data-count="remaining">5</strong>' in html
    assert "Cancel this job" in html

    run_restore_job(job.pk, chunk_size=2)
    html = admin_client.get(job_url(job)).content.decode()
    assert 'data-status="done"' in html and '<meta http-equiv="refresh"' not in html
    assert '<strong data-count="done">5</strong>' in html and '<strong data-count="remaining">0</strong>' in html
    assert "W0" in html and "restored (Proceed), restoration #1" in html
    assert "Cancel this job" not in html
    assert [s.restoration_count for s in SupervisorState.objects.filter(pk__in=[r.pk for r in rows])] == [1] * 5
    log = RestorationLog.objects.first()
    assert log.actor_user.username == "admin" and log.reason == f"rack 4 lost power (restore job #{job.pk})"
    listing = admin_client.get(JOBS).content.decode()
    assert f"#{job.pk}" in listing and "Done" in listing


def test_a_page_or_less_still_runs_in_the_request(admin_client):
    working(3)
    done = select_all(admin_client, "restore_selected", post="yes", reason="small")
    assert done.status_code == 302 and not RestoreJob.objects.exists()
    assert RestorationLog.objects.count() == 3


def test_start_fresh_over_more_than_a_page_is_a_start_fresh_job(admin_client):
    working(4)
    select_all(admin_client, "start_fresh_selected", post="yes", reason="bad conversations")
    job = RestoreJob.objects.get()
    assert job.kind == "fresh"
    run_restore_job(job.pk)
    assert set(RestorationLog.objects.values_list("outcome", flat=True)) == {"started_fresh"}


def test_submitting_the_same_confirmation_twice_queues_one_job(admin_client):
    working(4)
    token = str(uuid.uuid4())
    first = select_all(admin_client, "restore_selected", post="yes", reason="once", token=token)
    second = select_all(admin_client, "restore_selected", post="yes", reason="once", token=token)
    job = RestoreJob.objects.get()
    assert first.url == second.url == job_url(job)
    page = admin_client.get(second.url)
    assert any("already submitted" in t for t in texts(page))
    assert RestoreJobItem.objects.count() == 4


def test_tampered_posts_get_a_clear_answer_and_change_nothing(admin_client):
    working(4)
    bad_token = select_all(admin_client, "restore_selected", post="yes", reason="x", token="not-a-uuid")
    assert bad_token.status_code == 200 and "This confirmation page was damaged" in bad_token.content.decode()
    nul = select_all(admin_client, "restore_selected", post="yes", reason="nul \x00 byte")
    assert nul.status_code == 200
    assert not RestoreJob.objects.exists()
    assert admin_client.get(reverse("admin:supervisors_restorejob_change", args=["nonsense"])).status_code == 404
    assert admin_client.get(reverse("admin:supervisors_restorejob_change", args=[999_999])).status_code == 404
    assert admin_client.post(cancel_url(999_999)).status_code == 404
    assert admin_client.get(cancel_url(1)).status_code == 405
    assert (
        admin_client.get(reverse("admin:supervisors_restorejob_change", args=[1]) + "?page=x&status=zzz").status_code
        == 404
    )
    forged_ids = admin_client.post(
        DAEMONS,
        {
            "action": "restore_daemons_supervisors",
            "index": "0",
            "_selected_action": ["nonsense"],
            "post": "yes",
            "reason": "x",
        },
    )
    assert forged_ids.status_code == 302 and not RestoreJob.objects.exists()
    assert "The selection was not understood" in " ".join(texts(admin_client.get(forged_ids.url)))
    forged_list = admin_client.post(LIST, {"action": "restore_selected", "index": "0", "_selected_action": ["x"]})
    assert forged_list.status_code == 302


def test_cancel_keeps_what_is_done_skips_the_rest_and_a_second_cancel_is_explained(admin_client):
    working(6)
    select_all(admin_client, "restore_selected", post="yes", reason="go")
    job = RestoreJob.objects.get()
    run_restore_job(job.pk, chunk_size=2, slice_seconds=0)  # one chunk, then hands over
    cancelled = admin_client.post(cancel_url(job.pk))
    assert cancelled.status_code == 302
    page = admin_client.get(cancelled.url)
    assert any("cancelled: no further supervisor" in t for t in texts(page))
    html = page.content.decode()
    assert 'data-status="cancelled"' in html and '<strong data-count="skipped">4</strong>' in html
    again = admin_client.post(cancel_url(job.pk))
    assert any("already finished (cancelled)" in t for t in texts(admin_client.get(again.url)))
    assert RestorationLog.objects.count() == 2
    skipped = admin_client.get(job_url(job) + "?status=skipped").content.decode()
    assert skipped.count('data-item-status="skipped"') == 4 and "cancelled by staff:admin" in skipped


def test_every_supervisor_of_a_daemon_from_its_page(admin_client):
    daemon = make_daemon("rack-4")
    working(5, prefix="D", daemon=daemon)
    other = working(1, prefix="O")
    url = reverse("admin:supervisors_daemon_supervisors", args=[daemon.pk, "interrupt"])
    page = admin_client.get(reverse("admin:supervisors_daemon_change", args=[daemon.pk])).content.decode()
    assert "Mark its supervisors interrupted…" in page and "Restore its supervisors…" in page
    confirm = admin_client.get(url).content.decode()
    assert "mark interrupted</strong> <strong>5</strong>" in confirm and "interrupted: 5" in confirm
    done = admin_client.post(url, {"post": "yes", "reason": "rack 4 is down"})
    job = RestoreJob.objects.get()
    assert done.url == job_url(job) and job.daemon == daemon and job.kind == "interrupt"
    run_restore_job(job.pk)
    assert set(SupervisorState.objects.filter(task__daemon=daemon).values_list("state", flat=True)) == {"interrupted"}
    assert SupervisorState.objects.get(pk=other[0].pk).state == "working"
    restore = admin_client.post(
        reverse("admin:supervisors_daemon_supervisors", args=[daemon.pk, "restore"]), {"post": "yes", "reason": "up"}
    )
    job = RestoreJob.objects.get(kind="restore")
    assert restore.url == job_url(job)
    run_restore_job(job.pk)
    assert set(SupervisorState.objects.filter(task__daemon=daemon).values_list("state", flat=True)) == {"working"}
    assert (
        admin_client.get(reverse("admin:supervisors_daemon_supervisors", args=[daemon.pk, "explode"])).status_code
        == 404
    )


def test_a_small_daemon_is_marked_interrupted_in_the_request(admin_client):
    daemon = make_daemon("small")
    rows = [*working(2, prefix="S", daemon=daemon), make_supervisor(daemon=daemon, state="waiting_for_user")]
    url = reverse("admin:supervisors_daemon_supervisors", args=[daemon.pk, "interrupt"])
    done = admin_client.post(url, {"post": "yes", "reason": "gone"})
    assert done.status_code == 302 and not RestoreJob.objects.exists()
    states = [SupervisorState.objects.get(pk=r.pk).state for r in rows]
    assert states == ["interrupted", "interrupted", "waiting_for_user"]
    assert any("marked interrupted (was working)" in t for t in texts(admin_client.get(done.url)))
    events = SupervisorEvent.objects.filter(kind="interrupted")
    assert sorted(events.values_list("supervisor_id", flat=True)) == sorted(r.pk for r in rows[:2])
    timeline = admin_client.get(reverse("admin:supervisors_supervisorstate_timeline", args=[rows[0].pk]))
    assert "Marked interrupted by staff: gone." in timeline.content.decode()


def test_the_daemon_list_acts_on_every_supervisor_of_the_selected_daemons(admin_client):
    a, b = make_daemon("a"), make_daemon("b")
    working(3, prefix="A", daemon=a)
    working(2, prefix="B", daemon=b)
    data = {"action": "restore_daemons_supervisors", "index": "0", "_selected_action": [a.pk, b.pk]}
    confirm = admin_client.post(DAEMONS, data)
    assert "You are about to <strong>restore</strong> <strong>5</strong>" in confirm.content.decode()
    done = admin_client.post(DAEMONS, {**data, "post": "yes", "reason": "both racks"})
    job = RestoreJob.objects.get()
    assert done.url == job_url(job) and job.total == 5 and "daemons a, b" in job.description


def test_staff_without_the_restore_permission_see_no_jobs_and_cannot_cancel(client, admin_client):
    working(4)
    select_all(admin_client, "restore_selected", post="yes", reason="go")
    job = RestoreJob.objects.get()
    daemon = make_daemon("x")
    viewer = staff_with("viewer", *VIEW_ALL)
    client.force_login(viewer)
    assert client.get(job_url(job)).status_code == 403
    assert client.post(cancel_url(job.pk)).status_code == 403
    assert client.get(reverse("admin:supervisors_daemon_supervisors", args=[daemon.pk, "restore"])).status_code == 403
    page = client.get(reverse("admin:supervisors_daemon_change", args=[daemon.pk])).content.decode()
    assert "Restore its supervisors" not in page
    options = client.get(DAEMONS).content.decode()
    assert "restore_daemons_supervisors" not in options
    forged = client.post(
        DAEMONS,
        {
            "action": "restore_daemons_supervisors",
            "index": "0",
            "_selected_action": [daemon.pk],
            "post": "yes",
            "reason": "forged",
        },
    )
    assert forged.status_code in (200, 302) and RestoreJob.objects.count() == 1
    job.refresh_from_db()
    assert job.status == "queued"
