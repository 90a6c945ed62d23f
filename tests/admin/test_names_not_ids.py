"""Pages name the contract (its id stays copyable beside it), and times read as local time with their age."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from supervisors.enums import RestorationSource, SupervisorStatus
from supervisors.services.actors import Actor
from supervisors.services.questions import clear_pending_question
from supervisors.services.restoration import restore_supervisor
from supervisors.services.state import update_supervisor_phase
from tests.factories import make_contract, make_question, make_supervisor

pytestmark = pytest.mark.django_db


def answered_and_restored(name: str):
    question = make_question(f"Question of {name}?")
    supervisor = make_supervisor(
        make_contract(name), state=SupervisorStatus.WAITING_FOR_USER, pending_questions=[question]
    )
    clear_pending_question(supervisor.contract_id, question["id"], answer="yes", actor=Actor.system("test"))
    restore_supervisor(supervisor.contract_id, source=RestorationSource.MANUAL, actor=Actor.system("test"))
    update_supervisor_phase(supervisor.contract_id, "build")  # a checkpoint
    return supervisor


@pytest.mark.parametrize("model", ["questionanswer", "restorationlog", "supervisorcheckpoint"])
def test_record_lists_name_the_contract_in_fixed_queries(admin_client, model):
    first = answered_and_restored("Payments rewrite")
    url = reverse(f"admin:supervisors_{model}_changelist")
    admin_client.get(url)
    with CaptureQueriesContext(connection) as one:
        html = admin_client.get(url).content.decode()
    assert "Payments rewrite" in html and str(first.contract_id) in html
    assert "ago)" in html  # "2026-11-29 17:53 (0 minutes ago)"
    for n in range(5):
        answered_and_restored(f"Other {n}")
    with CaptureQueriesContext(connection) as six:
        admin_client.get(url)
    assert len(six) == len(one)


def test_the_supervisor_page_title_and_breadcrumbs_name_the_contract(admin_client):
    supervisor = make_supervisor(make_contract("Payments rewrite"))
    html = admin_client.get(reverse("admin:supervisors_supervisorstate_change", args=[supervisor.pk])).content.decode()
    title = html[html.index("<title>") : html.index("</title>")]
    assert "Supervisor of Payments rewrite" in title
    breadcrumbs = html[html.index('class="breadcrumbs"') : html.index("</div>", html.index('class="breadcrumbs"'))]
    assert "Supervisor of Payments rewrite" in breadcrumbs
    assert str(supervisor.contract_id) in html
