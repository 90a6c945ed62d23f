"""The conversation's delta form: new messages plus the length the daemon believes stored (issue 12).

``POST supervisor/conversation/`` and ``conversationAppend`` on the save points
(spawned task, phase, question asked, question answered, PATCH). Every test
reads the row back: a status code alone proves nothing about the history.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from supervisors.models import SupervisorCheckpoint, SupervisorEvent, SupervisorState
from supervisors.services.conversations import snapshot_messages
from tests.api.conftest import url
from tests.factories import make_question, make_task

pytestmark = pytest.mark.django_db

HISTORY = [
    {"role": "user", "content": "Implement it.", "snake_key": {"nested_key": 1, "camelKey": [None, True]}},
    {"role": "assistant", "content": [{"type": "text", "text": "On it."}], "tool_calls": []},
]
NEW = [
    {"role": "assistant", "content": "Spawning the tests — ünïcode ✓", "tool_calls": [{"id": "c1", "args": {}}]},
    {"role": "tool", "content": "214 passed", "tool_call_id": "c1"},
]


def stored(supervisor: SupervisorState) -> list:
    return SupervisorState.objects.get(pk=supervisor.pk).conversation_history


@pytest.fixture
def talking(supervisor) -> SupervisorState:
    """The daemon's supervisor with a two-message conversation."""
    SupervisorState.objects.filter(pk=supervisor.pk).update(conversation_history=HISTORY)
    return supervisor


def append(client, supervisor, expected: int, messages: list, **headers):
    body = {"expectedLength": expected, "messages": messages}
    return client.post(url(supervisor.contract_id, "conversation/"), body, format="json", headers=headers)


def test_append_adds_the_messages_at_the_end_untouched_and_answers_the_new_length(alpha, talking):
    response = append(alpha.client, talking, 2, NEW)

    assert response.status_code == 200, response.json()
    assert response.json() == {"conversationLength": 4}
    assert stored(talking) == [*HISTORY, *NEW]
    assert response.headers["ETag"] == alpha.client.get(url(talking.contract_id)).headers["ETag"]


def test_appends_in_a_row_each_name_the_length_the_previous_one_left(alpha, supervisor):
    for length in range(5):
        response = append(alpha.client, supervisor, length, [{"role": "user", "content": f"message {length}"}])
        assert response.json() == {"conversationLength": length + 1}

    assert [m["content"] for m in stored(supervisor)] == [f"message {n}" for n in range(5)]


@pytest.mark.parametrize("expected", [0, 1, 3, 1000])
def test_a_wrong_length_is_409_with_the_stored_length_and_changes_nothing(alpha, talking, expected):
    before = SupervisorState.objects.get(pk=talking.pk).updated_at

    response = append(alpha.client, talking, expected, NEW)

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "conversation_length_mismatch"
    assert body["conversationLength"] == 2
    assert "expectedLength" in body["fields"]
    assert stored(talking) == HISTORY
    assert SupervisorState.objects.get(pk=talking.pk).updated_at == before


def test_a_daemon_that_missed_an_append_resynchronises_from_the_409(alpha, talking):
    append(alpha.client, talking, 2, NEW[:1])
    refused = append(alpha.client, talking, 2, NEW[1:])  # this daemon still believes 2

    length = refused.json()["conversationLength"]
    history = alpha.client.get(url(talking.contract_id), {"include": "conversationHistory"}).json()
    assert len(history["conversationHistory"]) == length == 3
    assert append(alpha.client, talking, length, NEW[1:]).status_code == 200
    assert stored(talking) == [*HISTORY, *NEW]


@pytest.mark.parametrize(
    "body",
    [
        {"expectedLength": "2", "messages": NEW},
        {"expectedLength": -1, "messages": NEW},
        {"expectedLength": True, "messages": NEW},
        {"expectedLength": 2.0, "messages": NEW},
        {"expectedLength": 2**31, "messages": NEW},
        {"messages": NEW},
        {"expectedLength": 2},
        {"expectedLength": 2, "messages": []},
        {"expectedLength": 2, "messages": {"role": "user"}},
        {"expectedLength": 2, "messages": "hello"},
        {"expectedLength": 2, "messages": [1]},
        {"expectedLength": 2, "messages": [{"content": "no role"}]},
        {"expectedLength": 2, "messages": [{"role": ""}]},
        {"expectedLength": 2, "messages": [{"role": "user", "content": "nul \u0000 here"}]},
        {"expectedLength": 2, "messages": NEW, "conversationHistory": []},
        [{"role": "user"}],
    ],
)
def test_bad_input_is_400_and_changes_nothing(alpha, talking, body):
    response = alpha.client.post(url(talking.contract_id, "conversation/"), body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert stored(talking) == HISTORY


def test_deeply_nested_messages_are_refused(alpha, talking):
    deep: dict = {"role": "user"}
    node = deep
    for _ in range(150):
        node["x"] = {}
        node = node["x"]

    response = append(alpha.client, talking, 2, [deep])

    assert response.status_code == 400
    assert stored(talking) == HISTORY


def test_an_append_past_the_message_limit_is_refused(alpha, talking, settings):
    settings.SUPERVISOR_MAX_CONVERSATION_MESSAGES = 3

    response = append(alpha.client, talking, 2, NEW)

    assert response.status_code == 400
    assert "messages" in response.json()["fields"]
    assert stored(talking) == HISTORY


def test_a_body_over_the_size_limit_is_413_and_changes_nothing(alpha, talking, settings):
    settings.API_MAX_BODY_BYTES = 10_000

    response = append(alpha.client, talking, 2, [{"role": "user", "content": "x" * 20_000}])

    assert response.status_code == 413
    assert stored(talking) == HISTORY


def test_a_stored_history_that_is_not_an_array_is_a_conflict_only_a_full_save_repairs(alpha, supervisor):
    SupervisorState.objects.filter(pk=supervisor.pk).update(conversation_history={"not": "a list"})

    response = append(alpha.client, supervisor, 0, NEW)

    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert stored(supervisor) == {"not": "a list"}


def test_another_daemons_supervisor_is_not_found(beta, talking):
    assert append(beta.client, talking, 2, NEW).status_code == 404
    assert stored(talking) == HISTORY


def test_an_older_epoch_is_superseded_and_changes_nothing(alpha, talking):
    SupervisorState.objects.filter(pk=talking.pk).update(restoration_count=4)

    response = append(alpha.client, talking, 2, NEW, **{"Supervisor-Epoch": "3"})

    assert response.status_code == 409
    assert response.json()["code"] == "superseded"
    assert stored(talking) == HISTORY
    assert append(alpha.client, talking, 2, NEW, **{"Supervisor-Epoch": "4"}).status_code == 200


def test_if_match_makes_the_append_conditional_on_the_version(alpha, talking):
    etag = alpha.client.get(url(talking.contract_id)).headers["ETag"]
    alpha.client.post(url(talking.contract_id, "heartbeat/"), {"state": "working", "progress": 5}, format="json")

    stale = append(alpha.client, talking, 2, NEW, **{"If-Match": etag})
    fresh = append(
        alpha.client, talking, 2, NEW, **{"If-Match": alpha.client.get(url(talking.contract_id)).headers["ETag"]}
    )

    assert stale.status_code == 412
    assert fresh.status_code == 200
    assert stored(talking) == [*HISTORY, *NEW]


def test_an_append_is_not_a_save_point(alpha, talking):
    checkpoints = SupervisorCheckpoint.objects.count()
    events = SupervisorEvent.objects.count()

    append(alpha.client, talking, 2, NEW)

    assert SupervisorCheckpoint.objects.count() == checkpoints
    assert SupervisorEvent.objects.count() == events


def test_staff_with_the_change_permission_may_append(staff, talking):
    assert append(staff, talking, 2, NEW).status_code == 200
    assert stored(talking) == [*HISTORY, *NEW]


# --- save points in the delta form ------------------------------------------------------------


def with_append(body: dict, expected: int, messages: list = NEW) -> dict:
    return {**body, "conversationAppend": {"expectedLength": expected, "messages": messages}}


def newest_checkpoint_history(supervisor: SupervisorState) -> list:
    checkpoint = SupervisorCheckpoint.objects.filter(supervisor=supervisor).order_by("-id").first()
    return snapshot_messages(checkpoint.conversation_id)


def test_spawn_with_an_append_spawns_and_appends_and_its_checkpoint_holds_the_messages(alpha, talking):
    worker = make_task(talking.contract, name="tests")

    response = alpha.client.post(
        url(talking.contract_id, "spawned-tasks/"), with_append({"taskId": str(worker.id)}, 2), format="json"
    )

    assert response.status_code == 200, response.json()
    row = SupervisorState.objects.get(pk=talking.pk)
    assert row.conversation_history == [*HISTORY, *NEW]
    assert worker.id in row.spawned_task_ids
    assert newest_checkpoint_history(talking) == [*HISTORY, *NEW]
    event = SupervisorEvent.objects.filter(supervisor=talking).order_by("-id").first()
    assert event.details["messagesAppended"] == 2 and event.details["conversationLength"] == 4


def test_a_save_point_with_a_wrong_length_does_not_happen_at_all(alpha, talking):
    worker = make_task(talking.contract, name="tests")
    checkpoints = SupervisorCheckpoint.objects.count()

    spawn = alpha.client.post(
        url(talking.contract_id, "spawned-tasks/"), with_append({"taskId": str(worker.id)}, 5), format="json"
    )
    phase = alpha.client.post(url(talking.contract_id, "phase/"), with_append({"phase": "review"}, 1), format="json")

    assert spawn.status_code == phase.status_code == 409
    assert spawn.json()["conversationLength"] == phase.json()["conversationLength"] == 2
    assert "conversationAppend.expectedLength" in spawn.json()["fields"]
    row = SupervisorState.objects.get(pk=talking.pk)
    assert row.conversation_history == HISTORY
    assert worker.id not in row.spawned_task_ids
    assert row.phase != "review"
    assert SupervisorCheckpoint.objects.count() == checkpoints


def test_phase_change_with_an_append(alpha, talking):
    response = alpha.client.post(url(talking.contract_id, "phase/"), with_append({"phase": "review"}, 2), format="json")

    assert response.status_code == 200
    assert response.json()["phase"] == "review"
    assert stored(talking) == [*HISTORY, *NEW]
    assert newest_checkpoint_history(talking) == [*HISTORY, *NEW]


def test_question_asked_with_an_append_and_a_retried_ask_does_not_append_twice(alpha, talking):
    question = make_question()
    question.pop("askedAt")
    body = with_append(question, 2)

    first = alpha.client.post(url(talking.contract_id, "questions/"), body, format="json")
    retried = alpha.client.post(url(talking.contract_id, "questions/"), body, format="json")

    assert (first.status_code, retried.status_code) == (201, 200)
    row = SupervisorState.objects.get(pk=talking.pk)
    assert row.conversation_history == [*HISTORY, *NEW]
    assert [q["id"] for q in row.pending_questions] == [question["id"]]


def test_question_answered_with_an_append(staff, alpha, talking):
    question = make_question()
    SupervisorState.objects.filter(pk=talking.pk).update(pending_questions=[question], state="waiting_for_user")

    response = staff.post(
        url(talking.contract_id, f"questions/{question['id']}/answer/"),
        with_append({"answer": "yes"}, 2),
        format="json",
    )

    assert response.status_code == 200, response.json()
    row = SupervisorState.objects.get(pk=talking.pk)
    assert row.pending_questions == []
    assert row.conversation_history == [*HISTORY, *NEW]


def test_patch_with_an_append_changes_the_fields_and_appends(alpha, talking):
    response = alpha.client.patch(url(talking.contract_id), with_append({"progress": 60}, 2), format="json")

    assert response.status_code == 200
    row = SupervisorState.objects.get(pk=talking.pk)
    assert (row.progress, row.conversation_history) == (60, [*HISTORY, *NEW])


def test_patch_with_a_history_and_an_append_appends_after_the_history_sent(alpha, talking):
    fits = alpha.client.patch(
        url(talking.contract_id), with_append({"conversationHistory": HISTORY[:1]}, 1), format="json"
    )
    assert fits.status_code == 200
    assert stored(talking) == [HISTORY[0], *NEW]

    misfit = alpha.client.patch(
        url(talking.contract_id), with_append({"conversationHistory": HISTORY}, 5), format="json"
    )
    assert misfit.status_code == 409
    assert stored(talking) == [HISTORY[0], *NEW]


@pytest.mark.parametrize(
    "append_value",
    [
        {"expectedLength": -1, "messages": NEW},
        {"expectedLength": 2, "messages": []},
        {"expectedLength": 2, "messages": [{"role": 3}]},
        {"expectedLength": 2, "messages": NEW, "extra": 1},
        [],
        None,
    ],
)
def test_a_save_point_with_a_bad_append_is_400_and_changes_nothing(alpha, talking, append_value):
    response = alpha.client.post(
        url(talking.contract_id, "phase/"), {"phase": "review", "conversationAppend": append_value}, format="json"
    )

    assert response.status_code == 400
    row = SupervisorState.objects.get(pk=talking.pk)
    assert row.conversation_history == HISTORY and row.phase != "review"


def test_full_put_keeps_replacing_the_history(alpha, talking):
    body = {"taskId": str(talking.task_id), "phase": "plan", "state": "working", "conversationHistory": NEW}

    assert alpha.client.put(url(talking.contract_id), body, format="json").status_code == 200
    assert stored(talking) == NEW
    assert append(alpha.client, talking, 2, HISTORY).json() == {"conversationLength": 4}
    assert stored(talking) == [*NEW, *HISTORY]


def test_the_history_is_not_read_into_python_to_append(alpha, talking):
    with CaptureQueriesContext(connection) as queries:
        append(alpha.client, talking, 2, NEW)

    selects = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]
    assert selects
    assert not [sql for sql in selects if '"conversation_history"' in sql]  # only its length is selected


def test_a_retried_spawn_does_not_append_its_messages_twice(alpha, talking):
    worker = make_task(talking.contract, name="tests")
    body = with_append({"taskId": str(worker.id)}, 2)

    first = alpha.client.post(url(talking.contract_id, "spawned-tasks/"), body, format="json")
    retried = alpha.client.post(url(talking.contract_id, "spawned-tasks/"), body, format="json")

    assert (first.status_code, retried.status_code) == (200, 200)
    assert stored(talking) == [*HISTORY, *NEW]
