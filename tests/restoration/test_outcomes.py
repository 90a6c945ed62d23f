"""One truth about outcomes: the command's text and exit code, its JSON, the log row and the dashboard agree.

Each case builds one supervisor that ends in one outcome, previews it with
``--dry-run`` (text), restores it (``--json``), then reads the restoration log
and the admin dashboard.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from supervisors.enums import ContractStatus, SupervisorStatus
from supervisors.models import RestorationLog, SupervisorState
from supervisors.services.restoration import plan as restoration_plan

from .conftest import make_checkpoint, make_working_supervisor

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("admin:supervisors_supervisorstate_dashboard")


@pytest.fixture(autouse=True)
def plain_http(settings):
    """The test client speaks plain HTTP; production settings would redirect it to HTTPS."""
    settings.SECURE_SSL_REDIRECT = False


def run(*args: str) -> tuple[str, str, int]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("restore_supervisors", *args, stdout=out, stderr=err)
        return out.getvalue(), err.getvalue(), 0
    except CommandError as exc:
        return out.getvalue(), str(exc), exc.returncode


def valid(monkeypatch) -> SupervisorState:
    return make_working_supervisor(state=SupervisorStatus.INTERRUPTED)[0]


def broken_with_checkpoint(monkeypatch) -> SupervisorState:
    supervisor = make_working_supervisor(state=SupervisorStatus.INTERRUPTED)[0]
    make_checkpoint(supervisor)
    SupervisorState.objects.filter(id=supervisor.id).update(conversation_history="lost")
    return supervisor


def broken_without_checkpoint(monkeypatch) -> SupervisorState:
    supervisor = make_working_supervisor(state=SupervisorStatus.INTERRUPTED)[0]
    SupervisorState.objects.filter(id=supervisor.id).update(conversation_history="lost")
    return supervisor


def archived_contract(monkeypatch) -> SupervisorState:
    supervisor = make_working_supervisor(state=SupervisorStatus.FAILED, error_message="the build broke")[0]
    supervisor.contract.status = ContractStatus.ARCHIVED
    supervisor.contract.save()
    return supervisor


def completed(monkeypatch) -> SupervisorState:
    return make_working_supervisor(state=SupervisorStatus.COMPLETED, pending=0)[0]


def planning_fails(monkeypatch) -> SupervisorState:
    def fail(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(restoration_plan, "decide", fail)
    return make_working_supervisor(state=SupervisorStatus.INTERRUPTED)[0]


CASES: list[tuple[str, Callable, int, str]] = [
    ("restored", valid, 0, SupervisorStatus.WAITING_FOR_TASKS),
    ("restored_from_checkpoint", broken_with_checkpoint, 0, SupervisorStatus.WAITING_FOR_TASKS),
    ("started_fresh", broken_without_checkpoint, 0, SupervisorStatus.WAITING_FOR_TASKS),
    ("needs_person", archived_contract, 3, SupervisorStatus.BLOCKED),
    ("skipped_completed", completed, 0, SupervisorStatus.COMPLETED),
    ("failed", planning_fails, 1, SupervisorStatus.INTERRUPTED),
]


@pytest.mark.parametrize(("outcome", "build", "exit_code", "final_state"), CASES, ids=[c[0] for c in CASES])
def test_every_surface_names_the_same_outcome(outcome, build, exit_code, final_state, admin_client, monkeypatch):
    supervisor = build(monkeypatch)
    contract = str(supervisor.contract_id)

    text, _, preview_code = run("--contract", contract, "--dry-run")
    assert preview_code == exit_code
    assert f"  {outcome}: 1\n" in text
    assert not RestorationLog.objects.exists()

    out, err, code = run("--contract", contract, "--json")
    assert code == exit_code, err
    summary = json.loads(out)
    assert summary["exitCode"] == exit_code
    assert summary["counts"][outcome] == 1 and sum(summary["counts"].values()) == 1
    assert [(s["contractId"], s["outcome"]) for s in summary["supervisors"]] == [(contract, outcome)]

    log = RestorationLog.objects.get(contract_id=supervisor.contract_id)
    assert log.outcome == outcome
    assert SupervisorState.objects.get(id=supervisor.id).state == final_state

    dashboard = admin_client.get(DASHBOARD)
    counts = dashboard.context["restorations_by_outcome"]
    assert counts[outcome] == 1 and sum(counts.values()) == 1
    assert f'<span data-outcome="{outcome}">{outcome}: 1</span>' in dashboard.content.decode()


def test_restoring_a_failed_supervisor_keeps_its_last_error_in_the_log(admin_client):
    supervisor = make_working_supervisor(state=SupervisorStatus.FAILED, error_message="OOM in the build", pending=0)[0]
    out, _, code = run("--contract", str(supervisor.contract_id), "--json")
    assert code == 0
    (line,) = json.loads(out)["supervisors"]
    assert line["previousErrorMessage"] == "OOM in the build" and line["errorMessage"] is None
    log = RestorationLog.objects.get()
    assert log.previous_error_message == "OOM in the build"
    assert SupervisorState.objects.get(id=supervisor.id).error_message is None
    page = admin_client.get(reverse("admin:supervisors_supervisorstate_change", args=[supervisor.pk]))
    assert "OOM in the build" in page.content.decode()


def test_dry_run_text_shows_what_each_supervisor_will_end_with():
    supervisor = make_working_supervisor(state=SupervisorStatus.BLOCKED, error_message="stuck", pending=1)[0]
    text, _, code = run("--contract", str(supervisor.contract_id), "--dry-run")
    assert code == 0
    assert "restored (Proceed), would end waiting_for_tasks; error message 'stuck' cleared" in text
    assert SupervisorState.objects.get(id=supervisor.id).state == SupervisorStatus.BLOCKED
