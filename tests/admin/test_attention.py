"""The needs-attention page: each "why" appears, worst first, in a fixed number of queries."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from supervisors.attention import KINDS, attention_counts
from supervisors.enums import ContractStatus, DaemonStatus, SupervisorStatus
from supervisors.models import SupervisorState
from tests.factories import make_contract, make_daemon, make_question, make_supervisor

pytestmark = pytest.mark.django_db

URL = "admin:supervisors_supervisorstate_attention"


@pytest.fixture
def fleet():
    now = timezone.now()
    alive = make_daemon("alive-1", last_heartbeat_at=now, status=DaemonStatus.CONNECTED)
    dead = make_daemon("dead-7", last_heartbeat_at=now - timedelta(hours=3))
    made = {
        "fine": make_supervisor(make_contract("Fine"), daemon=alive, state=SupervisorStatus.WORKING, last_activity=now),
        "done": make_supervisor(make_contract("Done"), daemon=dead, state=SupervisorStatus.COMPLETED),
        "manual": make_supervisor(make_contract("Bogus state"), daemon=alive, state="bogus", last_activity=now),
        "gone": make_supervisor(
            make_contract("On a dead daemon"), daemon=dead, state=SupervisorStatus.WORKING, last_activity=now
        ),
        "failed": make_supervisor(
            make_contract("Failed one"), daemon=alive, state=SupervisorStatus.FAILED, error_message="disk full"
        ),
        "blocked": make_supervisor(make_contract("Blocked one"), daemon=alive, state=SupervisorStatus.BLOCKED),
        "stale": make_supervisor(
            make_contract("Silent one"),
            daemon=alive,
            state=SupervisorStatus.WORKING,
            last_activity=now - timedelta(hours=2),
        ),
        "interrupted": make_supervisor(
            make_contract("Interrupted one"), daemon=alive, state=SupervisorStatus.INTERRUPTED, last_activity=now
        ),
        "waiting": make_supervisor(
            make_contract("Asks a human"),
            daemon=alive,
            state=SupervisorStatus.WAITING_FOR_USER,
            pending_questions=[make_question("Ship?", askedAt=(now - timedelta(minutes=42)).isoformat())],
            last_activity=now,
        ),
        "invalid": make_supervisor(
            make_contract("Bad pending task"),
            daemon=alive,
            state=SupervisorStatus.FAILED,
            error_message="lost",
            pending_task_ids=[uuid.uuid4()],
            last_activity=now - timedelta(days=1),
        ),
    }
    archived = make_contract("Archived contract", status=ContractStatus.ARCHIVED)
    made["archived"] = make_supervisor(archived, daemon=alive, state=SupervisorStatus.IDLE, last_activity=now)
    return made


def test_every_why_appears_worst_first_and_healthy_ones_do_not(admin_client, fleet):
    response = admin_client.get(reverse(URL))
    assert response.status_code == 200
    rows = [item["row"] for item in response.context["rows"]]
    names = [row.supervisor.contract.name for row in rows]
    assert "Fine" not in names and "Done" not in names
    assert [row.kind.key for row in rows] == [
        "manual",
        "manual",
        "daemon_gone",
        "failed",
        "failed",
        "blocked",
        "stale",
        "interrupted",
        "waiting",
    ]
    why = {row.supervisor.contract.name: row.why for row in rows}
    assert "'bogus' is not a state this service knows" in why["Bogus state"]
    assert "archived" in why["Archived contract"]
    assert why["On a dead daemon"].startswith("Daemon dead-7 gone, last heard 3")
    assert why["Failed one"] == "Failed: disk full."
    assert "no error message saved" in why["Blocked one"]
    assert why["Silent one"].startswith("Silent for 2")
    assert "claim it, or restore it" in why["Interrupted one"]
    assert why["Asks a human"] == "1 question(s) waiting for a human, the oldest asked 42\xa0minutes ago."
    # A saved state that fails validation says so first, with the recovery it implies.
    invalid = next(row for row in rows if row.supervisor.contract.name == "Bad pending task")
    assert invalid.why.startswith("Saved state invalid: ") and "recovery: Use checkpoint." in invalid.why
    # Within a kind, the longest silent first: the day-old failure before the fresh one.
    failed = [row.supervisor.contract.name for row in rows if row.kind.key == "failed"]
    assert failed == ["Bad pending task", "Failed one"]
    page = response.content.decode()
    assert "Daemon gone: 1" in page and "Needs manual intervention: 2" in page


def test_filtering_by_kind_and_hostile_parameters(admin_client, fleet):
    response = admin_client.get(reverse(URL), {"kind": "daemon_gone"})
    assert [i["row"].supervisor.contract.name for i in response.context["rows"]] == ["On a dead daemon"]
    for params in ({"kind": "nonsense"}, {"page": "99999999999999999999"}, {"page": "-1"}, {"kind": "x" * 5000}):
        response = admin_client.get(reverse(URL), params)
        assert response.status_code == 200, params
        assert response.context["rows"], params


def test_counts_agree_with_the_rows(fleet):
    counts = attention_counts()
    assert {k.key: counts[k] for k in KINDS} == {
        "manual": 2,
        "daemon_gone": 1,
        "failed": 2,
        "blocked": 1,
        "stale": 1,
        "interrupted": 1,
        "waiting": 1,
    }


def test_queries_do_not_grow_with_the_number_of_supervisors(admin_client, fleet):
    admin_client.get(reverse(URL))  # session, content types: warm
    with CaptureQueriesContext(connection) as small:
        admin_client.get(reverse(URL))
    dead = fleet["gone"].task.daemon
    for n in range(60):
        make_supervisor(
            make_contract(f"more {n}"),
            daemon=dead,
            state=SupervisorStatus.WAITING_FOR_TASKS,
            pending_questions=[make_question()],
            pending_task_ids=[uuid.uuid4()],
        )
    with CaptureQueriesContext(connection) as large:
        response = admin_client.get(reverse(URL))
    assert len(response.context["rows"]) == 50
    assert len(large) == len(small), [q["sql"][:120] for q in large.captured_queries]


def test_viewers_without_permission_are_refused(client, fleet):
    from django.contrib.auth.models import User

    User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(User.objects.get(username="nobody"))
    assert client.get(reverse(URL)).status_code == 403
    assert SupervisorState.objects.count() == 11
