"""Restore, start fresh, restore from a checkpoint, validate, re-deliver: through the services, logged twice."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.urls import reverse

from supervisors.enums import RecoveryAction, SupervisorStatus
from supervisors.models import RestorationLog
from supervisors.services.state import update_supervisor_phase
from tests.factories import make_contract, make_supervisor

pytestmark = pytest.mark.django_db

LIST = reverse("admin:supervisors_supervisorstate_changelist")


def restore_url(supervisor) -> str:
    return reverse("admin:supervisors_supervisorstate_restore", args=[supervisor.pk])


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_restore_button_asks_for_a_reason_then_restores_and_logs(admin_client, world):
    alpha = world["alpha"]
    confirm = admin_client.get(restore_url(alpha), {"mode": "restore"})
    html = confirm.content.decode()
    assert "You are about to <strong>restore</strong> <strong>1</strong> supervisor" in html
    assert '<td data-outcome="restored">restored (Proceed)</td>' in html and 'name="reason"' in html
    assert 'value="Yes, restore 1 supervisor"' in html

    refused = admin_client.post(restore_url(alpha), {"mode": "restore", "reason": ""})
    assert refused.status_code == 200 and "This field is required" in refused.content.decode()
    assert not RestorationLog.objects.exists()

    done = admin_client.post(restore_url(alpha), {"mode": "restore", "reason": "daemon-3 rebooted"})
    assert done.status_code == 302
    log = RestorationLog.objects.get()
    assert log.reason == "daemon-3 rebooted" and log.actor_user.username == "admin" and log.source == "manual"
    alpha.refresh_from_db()
    assert alpha.restoration_count == 1
    assert any("Alpha contract: Restore: restored (Proceed)" in t for t in texts(done))
    entry = LogEntry.objects.get(object_id=str(alpha.pk))
    assert "daemon-3 rebooted" in entry.change_message and entry.user.username == "admin"


def test_list_action_with_select_across_restores_every_matching_supervisor(admin_client):
    for i in range(4):
        make_supervisor(make_contract(f"W{i}"), state=SupervisorStatus.WORKING)
    make_supervisor(make_contract("Idle one"), state=SupervisorStatus.IDLE)
    url = f"{LIST}?state__exact=working"
    first = admin_client.get(url).context["cl"].result_list[0]
    confirm = admin_client.post(
        url, {"action": "restore_selected", "select_across": "1", "index": "0", "_selected_action": [first.pk]}
    )
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "<strong>4</strong> supervisors" in html
    assert 'name="select_across" value="1"' in html
    fields = dict(confirm.context["hidden"])
    done = admin_client.post(url, {**fields, "reason": "night crash"})
    assert done.status_code == 302
    assert RestorationLog.objects.filter(reason="night crash", success=True).count() == 4
    assert not RestorationLog.objects.filter(contract_id__in=[]).exists()
    assert LogEntry.objects.count() == 4
    assert sum("Restore: restored (Proceed)" in t for t in texts(done)) == 4


def test_list_action_on_ticked_rows_only(admin_client, world):
    confirm = admin_client.post(
        LIST, {"action": "restore_selected", "index": "0", "_selected_action": [world["alpha"].pk, world["beta"].pk]}
    )
    assert "<strong>2</strong> supervisors" in confirm.content.decode()
    admin_client.post(
        LIST,
        {**dict(confirm.context["hidden"]), "_selected_action": [world["alpha"].pk, world["beta"].pk], "reason": "r"},
    )
    assert set(RestorationLog.objects.values_list("contract_id", flat=True)) == {
        world["alpha"].contract_id,
        world["beta"].contract_id,
    }


def test_start_fresh_requires_confirmation_and_drops_the_conversation(admin_client):
    supervisor = make_supervisor(conversation_history=[{"role": "user", "content": "hi"}], state="working")
    page = admin_client.get(restore_url(supervisor), {"mode": "fresh"})
    assert "started_fresh (StartFresh)" in page.content.decode()
    supervisor.refresh_from_db()
    assert supervisor.conversation_history  # nothing happened on GET
    admin_client.post(restore_url(supervisor), {"mode": "fresh", "reason": "poisoned context"})
    supervisor.refresh_from_db()
    assert supervisor.conversation_history == []
    assert RestorationLog.objects.get().recovery_action == RecoveryAction.START_FRESH


def test_restore_from_a_chosen_checkpoint(admin_client):
    supervisor = make_supervisor(make_contract(phase="plan"), state="working")
    update_supervisor_phase(supervisor.contract_id, "build")
    checkpoint = supervisor.checkpoints.get()
    page = admin_client.get(restore_url(supervisor), {"mode": "checkpoint", "checkpoint": checkpoint.pk})
    assert f"Checkpoint #{checkpoint.pk}" in page.content.decode()
    admin_client.post(restore_url(supervisor), {"mode": "checkpoint", "checkpoint": checkpoint.pk, "reason": "go back"})
    log = RestorationLog.objects.get()
    assert log.checkpoint_id == checkpoint.pk and log.recovery_action == RecoveryAction.USE_CHECKPOINT


def test_restoring_a_completed_supervisor_is_reported_not_done(admin_client):
    supervisor = make_supervisor(state=SupervisorStatus.COMPLETED)
    response = admin_client.post(restore_url(supervisor), {"mode": "restore", "reason": "try"}, follow=True)
    assert any("skipped" in t and "completed" in t for t in texts(response))
    supervisor.refresh_from_db()
    assert supervisor.restoration_count == 0


def test_validate_reports_each_supervisor(admin_client, world):
    response = admin_client.post(
        LIST, {"action": "validate_selected", "index": "0", "_selected_action": [world["gamma"].pk, world["alpha"].pk]}
    )
    messages = texts(response)
    assert any(m.startswith("Gamma contract: invalid, restoring would UseCheckpoint") for m in messages)
    assert any(m.startswith("Alpha contract: valid") for m in messages)
    assert LogEntry.objects.filter(change_message__startswith="Validated").count() == 2


def test_redeliver_pending_questions(admin_client, world):
    url = reverse("admin:supervisors_supervisorstate_redeliver", args=[world["beta"].pk])
    response = admin_client.post(url)
    assert response.status_code == 302
    assert "Beta contract: re-delivered 1 pending question(s)" in texts(response)
    assert LogEntry.objects.filter(object_id=str(world["beta"].pk)).exists()


def test_a_checkpoint_that_does_not_validate_is_flagged_and_refused(admin_client, world):
    gamma = world["gamma"]  # its pending task was never spawned; the checkpoint inherits that
    update_supervisor_phase(gamma.contract_id, "build")
    checkpoint = gamma.checkpoints.get()
    page = admin_client.get(restore_url(gamma), {"mode": "checkpoint", "checkpoint": checkpoint.pk})
    html = page.content.decode()
    assert '<td data-outcome="failed">failed</td>' in html and "does not validate" in html
    assert 'value="Yes, restore from checkpoint 0 supervisors"' in html
    response = admin_client.post(
        restore_url(gamma), {"mode": "checkpoint", "checkpoint": checkpoint.pk, "reason": "try"}, follow=True
    )
    assert any("failed" in t and "does not validate" in t for t in texts(response))
    gamma.refresh_from_db()
    assert gamma.restoration_count == 0 and gamma.pending_task_ids == [world["stray"].id]


def test_confirmation_previews_the_dry_run_and_counts_only_what_will_be_restored(admin_client, world):
    alpha = world["alpha"]
    archived = make_supervisor(make_contract("Archived one", status="archived"), state=SupervisorStatus.WORKING)
    done = make_supervisor(make_contract("Done one"), state=SupervisorStatus.COMPLETED)
    ids = [alpha.pk, archived.pk, done.pk]
    confirm = admin_client.post(LIST, {"action": "restore_selected", "index": "0", "_selected_action": ids})
    html = confirm.content.decode()
    assert "<strong>3</strong> supervisors" in html
    assert '<strong data-outcome="needs_person">needs_person: 1</strong>' in html
    assert '<strong data-outcome="skipped_completed">skipped_completed: 1</strong>' in html
    assert 'value="Yes, restore 1 supervisor"' in html
    assert not RestorationLog.objects.exists()  # the preview is a dry run
