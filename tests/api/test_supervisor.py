"""The supervisor endpoints: read, save, update (with ETag/If-Match), heartbeat, spawned tasks, phase, validation."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from supervisors.models import SupervisorCheckpoint, SupervisorState
from tests.api.conftest import url
from tests.factories import make_contract, make_question, make_task

pytestmark = pytest.mark.django_db

HISTORY = [
    {"role": "user", "content": "hi", "snake_case_key": {"nested_key": 1, "camelKey": [None, True]}},
    {"role": "assistant", "content": [{"type": "text", "text": "hello"}], "tool_calls": []},
]


def full_state(task_id, **overrides):
    body = {
        "taskId": str(task_id),
        "phase": "plan",
        "state": "working",
        "conversationHistory": HISTORY,
        "pendingTaskIds": [],
        "spawnedTaskIds": [],
        "pendingQuestions": [],
        "currentActivity": "planning",
        "progress": 10,
        "errorMessage": None,
    }
    body.update(overrides)
    return body


def test_get_returns_camel_case_state_and_etag_without_history(alpha, supervisor):
    response = alpha.client.get(url(supervisor.contract_id))
    assert response.status_code == 200
    body = response.json()
    assert body["contractId"] == str(supervisor.contract_id)
    assert body["taskId"] == str(supervisor.task_id)
    assert {"state", "phase", "currentActivity", "progress", "spawnedTaskIds", "pendingTaskIds"} <= set(body)
    assert "conversationHistory" not in body
    assert response["ETag"].startswith('"')


def test_put_then_get_round_trips_free_json_untouched(alpha, supervisor):
    response = alpha.client.put(url(supervisor.contract_id), full_state(supervisor.task_id), format="json")
    assert response.status_code == 200, response.content
    got = alpha.client.get(url(supervisor.contract_id) + "?include=conversationHistory").json()
    assert got["conversationHistory"] == HISTORY
    assert got["state"] == "working" and got["progress"] == 10 and got["currentActivity"] == "planning"


def test_put_creates_a_supervisor_for_a_task_on_this_daemon(alpha):
    contract = make_contract("New")
    task = make_task(contract, is_supervisor=True, daemon=alpha.daemon)
    response = alpha.client.put(url(contract.id), full_state(task.id), format="json")
    assert response.status_code == 201, response.content
    assert SupervisorState.objects.get(contract=contract).task_id == task.id


def test_put_cannot_create_a_supervisor_on_another_daemons_task(alpha, beta):
    contract = make_contract("Theirs")
    task = make_task(contract, is_supervisor=True, daemon=beta.daemon)
    response = alpha.client.put(url(contract.id), full_state(task.id), format="json")
    assert response.status_code == 404
    assert not SupervisorState.objects.filter(contract=contract).exists()


def test_put_with_questions_stores_them_camel_case(alpha, supervisor):
    question = make_question()
    body = full_state(supervisor.task_id, state="waiting_for_user", pendingQuestions=[question])
    response = alpha.client.put(url(supervisor.contract_id), body, format="json")
    assert response.status_code == 200, response.content
    supervisor.refresh_from_db()
    assert supervisor.pending_questions[0]["id"] == question["id"]
    assert supervisor.pending_questions[0]["questionType"] == "general"


def test_patch_changes_only_given_fields(alpha, supervisor):
    response = alpha.client.patch(url(supervisor.contract_id), {"progress": 42, "currentActivity": "x"}, format="json")
    assert response.status_code == 200, response.content
    supervisor.refresh_from_db()
    assert (supervisor.progress, supervisor.current_activity, supervisor.state) == (42, "x", "initializing")


def test_if_match_current_etag_succeeds_and_stale_one_is_412(alpha, supervisor):
    etag = alpha.client.get(url(supervisor.contract_id))["ETag"]
    first = alpha.client.patch(url(supervisor.contract_id), {"progress": 1}, format="json", HTTP_IF_MATCH=etag)
    assert first.status_code == 200, first.content
    assert first["ETag"] != etag
    stale = alpha.client.patch(url(supervisor.contract_id), {"progress": 2}, format="json", HTTP_IF_MATCH=etag)
    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    put = alpha.client.put(
        url(supervisor.contract_id), full_state(supervisor.task_id), format="json", HTTP_IF_MATCH=etag
    )
    assert put.status_code == 412
    supervisor.refresh_from_db()
    assert supervisor.progress == 1


def test_heartbeat_updates_state_in_at_most_two_queries(alpha, supervisor):
    body = {"state": "working", "currentActivity": "coding", "progress": 55}
    alpha.client.post(url(supervisor.contract_id, "heartbeat/"), body, format="json")  # warms the key cache
    with CaptureQueriesContext(connection) as queries:
        response = alpha.client.post(url(supervisor.contract_id, "heartbeat/"), body, format="json")
    assert response.status_code == 200, response.content
    assert len(queries) <= 2, [q["sql"] for q in queries]
    supervisor.refresh_from_db()
    assert (supervisor.state, supervisor.current_activity, supervisor.progress) == ("working", "coding", 55)


def statements(queries) -> list[str | None]:
    """What a request sent the database, without the savepoints of the test's own transaction."""
    return [q["sql"] for q in queries if not (q["sql"] or "").upper().startswith(("SAVEPOINT", "RELEASE"))]


@pytest.mark.parametrize("kind", ["put", "ask"])
def test_a_save_point_past_the_retention_window_is_nine_statements(alpha, supervisor, settings, kind):
    """Issue 12: a PUT was 19 statements and a question 15 (checks one by one, a prune and a snapshot scan each time).

    Now the contract, ownership and task checks of a PUT are one statement, the
    row's version comes with the checkpoint's digest, a prune is one statement,
    and snapshots are only scanned when the pruned checkpoint held one that no
    kept checkpoint holds (here they all share one). One of the nine is the
    API's rate counter.
    """
    settings.SUPERVISOR_CHECKPOINT_RETENTION = 2

    def save():
        if kind == "put":
            return alpha.client.put(url(supervisor.contract_id), full_state(supervisor.task_id), format="json")
        return alpha.client.post(url(supervisor.contract_id, "questions/"), make_question(), format="json")

    for _ in range(3):
        assert save().status_code in (200, 201)
    with CaptureQueriesContext(connection) as queries:
        response = save()
    assert response.status_code == (200 if kind == "put" else 201), response.content
    assert SupervisorCheckpoint.objects.filter(supervisor=supervisor).count() == 2
    sent = statements(queries)
    assert len(sent) <= (9 if connection.vendor == "postgresql" else 12), sent


def test_heartbeat_with_a_cold_key_cache_is_still_two_queries(alpha, supervisor):
    """The first request of a process (or after API_KEY_CACHE_SECONDS) looks the key up and counts it at once.

    PostgreSQL: one statement for key, counter and the daemon's lease, one UPDATE.
    SQLite cannot put writes in a CTE, so there the counter and the lease are
    statements of their own (local, round-trip free).
    """
    body = {"state": "working", "progress": 5}
    with CaptureQueriesContext(connection) as queries:
        response = alpha.client.post(url(supervisor.contract_id, "heartbeat/"), body, format="json")
    assert response.status_code == 200
    assert len(queries) <= (2 if connection.vendor == "postgresql" else 4), [q["sql"] for q in queries]
    supervisor.refresh_from_db()
    assert supervisor.progress == 5


def test_heartbeat_takes_no_checkpoint(alpha, supervisor):
    alpha.client.post(url(supervisor.contract_id, "heartbeat/"), {"state": "idle", "progress": 0}, format="json")
    assert not SupervisorCheckpoint.objects.filter(supervisor=supervisor).exists()


@pytest.mark.parametrize(
    "body,field",
    [
        ({"state": "sleeping", "progress": 1}, "state"),
        ({"state": "working", "progress": 101}, "progress"),
        ({"state": "working", "progress": "lots"}, "progress"),
        ({"state": "working", "progress": 1, "currentActivty": "typo"}, "currentActivty"),
        ({"progress": 1}, "state"),
        ({"state": ["working"], "progress": 1}, "state"),
    ],
)
def test_heartbeat_bad_input_is_400_naming_the_field_and_writes_nothing(alpha, supervisor, body, field):
    response = alpha.client.post(url(supervisor.contract_id, "heartbeat/"), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    supervisor.refresh_from_db()
    assert supervisor.state == "initializing"


def test_unknown_contract_is_404(alpha):
    response = alpha.client.post(url(uuid.uuid4(), "heartbeat/"), {"state": "idle", "progress": 0}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("bad", ["not-a-uuid", "1234", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"])
def test_malformed_uuid_in_path_is_404_in_the_error_shape(alpha, bad):
    response = alpha.client.get(url(bad))
    assert response.status_code == 404
    assert set(response.json()) == {"code", "message", "fields"}


def test_spawned_task_and_phase_are_save_points(alpha, supervisor):
    task = make_task(supervisor.contract, name="child")
    response = alpha.client.post(url(supervisor.contract_id, "spawned-tasks/"), {"taskId": str(task.id)}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["spawnedTaskIds"] == [str(task.id)]
    assert response.json()["pendingTaskIds"] == [str(task.id)]
    response = alpha.client.post(url(supervisor.contract_id, "phase/"), {"phase": "execute"}, format="json")
    assert response.status_code == 200
    assert response.json()["phase"] == "execute"
    assert SupervisorCheckpoint.objects.filter(supervisor=supervisor).count() == 2


def test_spawned_task_of_another_contract_is_a_bad_reference(alpha, supervisor):
    foreign = make_task(make_contract("Other"), name="foreign")
    response = alpha.client.post(
        url(supervisor.contract_id, "spawned-tasks/"), {"taskId": str(foreign.id)}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "bad_reference", response.content
    assert "taskId" in response.json()["fields"]
    supervisor.refresh_from_db()
    assert supervisor.spawned_task_ids == []


def test_spawned_task_with_malformed_uuid_is_400(alpha, supervisor):
    response = alpha.client.post(url(supervisor.contract_id, "spawned-tasks/"), {"taskId": "nope"}, format="json")
    assert response.status_code == 400
    assert "taskId" in response.json()["fields"]


def test_validation_reports_without_changing_anything(alpha, supervisor):
    SupervisorState.objects.filter(pk=supervisor.pk).update(state="waiting_for_user")
    response = alpha.client.get(url(supervisor.contract_id, "validation/"))
    assert response.status_code == 200
    body = response.json()
    assert body["isValid"] is False
    assert body["recoveryAction"] == "UseCheckpoint"
    assert body["issues"]
    supervisor.refresh_from_db()
    assert supervisor.state == "waiting_for_user"


def test_supervisors_list_filters(alpha, supervisor, staff, other_supervisor):
    SupervisorState.objects.filter(pk=other_supervisor.pk).update(state="working")
    rows = staff.get("/api/v1/supervisors/?state=working").json()
    assert [r["contractId"] for r in rows] == [str(other_supervisor.contract_id)]
    assert staff.get("/api/v1/supervisors/?state=bogus").status_code == 400
    assert len(staff.get("/api/v1/supervisors/?stale=false").json()) == 2


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)  # each write its own transaction, as in production (xmin is per transaction)
def test_etag_sees_a_write_by_another_program_that_leaves_updated_at_alone(alpha, supervisor):
    """makima writes supervisor_states directly and need not touch updated_at: If-Match still notices."""
    from django.db import connection as db

    etag = alpha.client.get(url(supervisor.contract_id))["ETag"]
    with db.cursor() as cursor:
        cursor.execute("UPDATE supervisor_states SET progress = 77 WHERE id = %s", [supervisor.pk])
    assert alpha.client.get(url(supervisor.contract_id))["ETag"] != etag
    stale = alpha.client.patch(url(supervisor.contract_id), {"progress": 2}, format="json", HTTP_IF_MATCH=etag)
    assert stale.status_code == 412
    assert "If-Match" in stale.json()["fields"]
    supervisor.refresh_from_db()
    assert supervisor.progress == 77


def test_a_question_id_listed_twice_is_one_question_the_later_listing(alpha, supervisor):
    """The schema cannot say "ids distinct", so a save listing one id twice is accepted, the later one winning."""
    first = make_question(text="Deploy?")
    later = {**first, "question": "Deploy to staging?"}
    other = make_question(text="Merge?")
    body = {"taskId": str(supervisor.task_id), "phase": "plan", "state": "waiting_for_user"}
    response = alpha.client.put(
        url(supervisor.contract_id), {**body, "pendingQuestions": [first, other, later]}, format="json"
    )
    assert response.status_code == 200, response.content
    questions = response.json()["pendingQuestions"]
    assert [(q["id"], q["question"]) for q in questions] == [
        (first["id"], "Deploy to staging?"),
        (other["id"], "Merge?"),
    ]
    response = alpha.client.patch(url(supervisor.contract_id), {"pendingQuestions": [other, other]}, format="json")
    assert [q["id"] for q in response.json()["pendingQuestions"]] == [other["id"]]
