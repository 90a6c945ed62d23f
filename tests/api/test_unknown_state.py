"""A state makima stored that this service does not know: reported as `unknown`, kept verbatim in storedState.

makima writes supervisor_states itself; a newer makima (or a bug) can store a
state outside the enum. The schema declares `state` as the enum or `unknown`,
so a client generated from it parses every answer; the stored value is never
hidden (storedState, previousStoredState), and a resume repairs the row.
"""

from __future__ import annotations

import pytest

from supervisors.api.serializers import previous_state_fields
from supervisors.models import SupervisorState
from tests.api.conftest import url
from tests.factories import make_question

pytestmark = pytest.mark.django_db


@pytest.fixture
def bogus(supervisor) -> SupervisorState:
    """The row as another program may leave it: a state none of ours (written around the services)."""
    SupervisorState.objects.filter(pk=supervisor.pk).update(state="bogus", pending_questions=[make_question()])
    return supervisor


def test_a_state_outside_the_enum_reads_as_unknown_with_the_stored_value_beside_it(alpha, bogus):
    body = alpha.client.get(url(bogus.contract_id)).json()  # the autouse fixture validates it against the schema
    assert (body["state"], body["storedState"]) == ("unknown", "bogus")
    listed = alpha.client.get("/api/v1/supervisors/").json()
    assert [(s["state"], s["storedState"]) for s in listed] == [("unknown", "bogus")]
    overview = alpha.client.get("/api/v1/supervisors/pending-questions/").json()
    assert [(q["state"], q["storedState"]) for q in overview] == [("unknown", "bogus")]


def test_a_known_state_is_the_same_in_both_fields(alpha, supervisor):
    body = alpha.client.get(url(supervisor.contract_id)).json()
    assert body["state"] == body["storedState"] == supervisor.state


def test_resume_reports_the_unknown_previous_state_and_repairs_the_row(alpha, bogus):
    response = alpha.client.post(url(bogus.contract_id, "resume/"), {"source": "daemon_restart"}, format="json")
    assert response.status_code == 200, response.content
    context = response.json()
    assert (context["previousState"], context["previousStoredState"]) == ("unknown", "bogus")
    assert any("bogus" in issue or "state" in issue for issue in context["warnings"]) or context["recoveryAction"] != (
        "Proceed"
    )
    after = alpha.client.get(url(bogus.contract_id)).json()
    assert after["state"] == after["storedState"] != "unknown"


def test_a_fresh_start_has_no_previous_stored_state():
    """The protocol's fresh start (no row before it) reports previousState none, and nothing was stored."""
    assert previous_state_fields("none") == {"previousState": "none", "previousStoredState": None}
    assert previous_state_fields("idle") == {"previousState": "idle", "previousStoredState": "idle"}
