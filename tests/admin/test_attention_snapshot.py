"""The needs-attention page's stored answer: read through its index, refreshed by a job, rows re-checked live."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from supervisors import jobs
from supervisors.attention import attention_queryset, refresh_attention
from supervisors.enums import DaemonStatus, SupervisorStatus
from supervisors.models import MetricsSnapshot, SupervisorAttention, SupervisorState
from tests.concurrency import run_together
from tests.factories import make_contract, make_daemon, make_supervisor

URL = "admin:supervisors_supervisorstate_attention"


def stored() -> list[tuple]:
    return list(
        SupervisorAttention.objects.order_by("severity", "since", "supervisor_id").values_list(
            "supervisor_id", "severity"
        )
    )


def computed() -> list[tuple]:
    return list(attention_queryset().values_list("id", "attention"))


def names(response) -> list[str]:
    return [item["row"].supervisor.contract.name for item in response.context["rows"]]


@pytest.fixture
def alive():
    return make_daemon("alive-1", last_heartbeat_at=timezone.now(), status=DaemonStatus.CONNECTED)


@pytest.mark.django_db
def test_the_page_reads_the_stored_answer_and_rechecks_its_rows_live(
    admin_client, settings, alive, django_capture_on_commit_callbacks
):
    settings.ATTENTION_MAX_AGE_SECONDS = 3600
    settings.ATTENTION_REFRESH_SECONDS = 3600
    failed = make_supervisor(make_contract("Failed one"), daemon=alive, state=SupervisorStatus.FAILED)
    make_supervisor(make_contract("Blocked one"), daemon=alive, state=SupervisorStatus.BLOCKED)
    first = admin_client.get(reverse(URL))  # no stored answer yet: the page computes it
    assert names(first) == ["Failed one", "Blocked one"]
    assert MetricsSnapshot.objects.filter(name="attention").exists()

    # After the refresh: one supervisor recovers, another fails.
    SupervisorState.objects.filter(pk=failed.pk).update(state=SupervisorStatus.WORKING, last_activity=timezone.now())
    make_supervisor(make_contract("Newly failed"), daemon=alive, state=SupervisorStatus.FAILED)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        second = admin_client.get(reverse(URL))
    assert names(second) == ["Blocked one"]  # the recovered one is gone at once; the new one waits for a refresh
    assert second.context["resolved"] == 1
    assert "1 supervisor listed then no longer needs attention" in second.content.decode()
    assert callbacks == []  # not due: no refresh asked for

    settings.ATTENTION_REFRESH_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        admin_client.get(reverse(URL))  # due: the page asks the job (run at once by the test backend)
    assert len(callbacks) == 1
    assert names(admin_client.get(reverse(URL))) == ["Newly failed", "Blocked one"]
    assert stored() == computed()


@pytest.mark.django_db
def test_the_refresh_job_runs_once_for_jobs_queued_together(settings, alive):
    settings.ATTENTION_REFRESH_SECONDS = 60
    make_supervisor(make_contract("Failed one"), daemon=alive, state=SupervisorStatus.FAILED)
    results = [jobs.refresh_attention.call() for _ in range(3)]
    assert results[0]["supervisors"] == 1
    assert results[1:] == [{"skipped": 1}, {"skipped": 1}]
    assert stored() == computed()


@pytest.mark.django_db
def test_a_refresh_follows_every_change_and_a_deleted_supervisor_drops_out(alive):
    now = timezone.now()
    waiting = make_supervisor(make_contract("Waits"), daemon=alive, state=SupervisorStatus.WAITING_FOR_USER)
    quiet = make_supervisor(
        make_contract("Quiet"), daemon=alive, state=SupervisorStatus.WORKING, last_activity=now - timedelta(hours=1)
    )
    doomed = make_supervisor(make_contract("Doomed"), daemon=alive, state=SupervisorStatus.BLOCKED)
    make_supervisor(make_contract("Fine"), daemon=alive, state=SupervisorStatus.WORKING, last_activity=now)
    snapshot = refresh_attention()
    assert {k.key: n for k, n in snapshot.counts.items() if n} == {"waiting": 1, "stale": 1, "blocked": 1}
    assert stored() == computed()

    SupervisorState.objects.filter(pk=waiting.pk).update(state=SupervisorStatus.FAILED)
    SupervisorState.objects.filter(pk=quiet.pk).update(last_activity=timezone.now())  # a heartbeat
    doomed.delete()  # no constraint: makima deletes supervisors directly
    snapshot = refresh_attention()
    assert {k.key: n for k, n in snapshot.counts.items() if n} == {"failed": 1}
    assert stored() == computed() == [(waiting.pk, 3)]


@pytest.mark.django_db
@pytest.mark.postgres_only
def test_a_refresh_with_nothing_changed_writes_no_row(alive):
    for n in range(20):
        make_supervisor(make_contract(f"Failed {n}"), daemon=alive, state=SupervisorStatus.FAILED)
    refresh_attention()
    with connection.cursor() as cursor:
        cursor.execute("SELECT supervisor_id, xmin::text FROM supervisor_attention ORDER BY 1")
        before = cursor.fetchall()
        refresh_attention()
        cursor.execute("SELECT supervisor_id, xmin::text FROM supervisor_attention ORDER BY 1")
        assert cursor.fetchall() == before  # same row versions: nothing rewritten


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_and_heartbeats_leave_the_stored_answer_right(alive):
    """Refreshes from the job and from pages at once, while supervisors change: no deadlock, no lost row."""
    now = timezone.now()
    rows = [
        make_supervisor(
            make_contract(f"s{n}"),
            daemon=alive,
            state=SupervisorStatus.WORKING,
            last_activity=now - timedelta(hours=1) if n % 2 else now,
        )
        for n in range(60)
    ]
    for round_ in range(8):
        states = [SupervisorStatus.FAILED, SupervisorStatus.WORKING, SupervisorStatus.BLOCKED][round_ % 3]

        def change(round_: int = round_, states: str = states) -> None:
            for row in rows[round_ % 2 :: 2]:
                SupervisorState.objects.filter(pk=row.pk).update(state=states, last_activity=timezone.now())

        run_together(refresh_attention, refresh_attention, change, refresh_attention)
        refresh_attention()  # after the dust settles, one more pass must agree with the table
        assert stored() == computed(), round_
