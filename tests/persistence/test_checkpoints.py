"""Checkpoints: one per save point, bounded retention, the newest good one kept, conversations stored once."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from supervisors import validators
from supervisors.enums import SavePoint
from supervisors.models import ConversationSnapshot, RestorationLog, SupervisorCheckpoint, SupervisorState
from supervisors.services.checkpoints import checkpoint_issues, checkpoint_snapshot, take_checkpoint
from supervisors.services.conversations import stored_bytes
from supervisors.services.questions import add_supervisor_pending_question
from supervisors.services.state import (
    add_supervisor_spawned_task,
    update_supervisor_detailed_state,
    update_supervisor_heartbeat_state,
    update_supervisor_phase,
)
from tests.factories import make_question, make_task

pytestmark = pytest.mark.django_db

BIG = [{"role": "user", "content": "lorem ipsum " * 5000}]


def test_each_save_point_but_the_heartbeat_takes_a_checkpoint(supervisor, tasks):
    add_supervisor_spawned_task(supervisor.contract_id, tasks[0].id)
    add_supervisor_pending_question(supervisor.contract_id, make_question())
    update_supervisor_phase(supervisor.contract_id, "execute")
    update_supervisor_heartbeat_state(supervisor.contract_id, state="working", current_activity=None, progress=3)
    reasons = list(
        SupervisorCheckpoint.objects.filter(supervisor=supervisor).order_by("id").values_list("reason", flat=True)
    )
    assert reasons == [SavePoint.TASK_SPAWNED, SavePoint.QUESTION_ASKED, SavePoint.PHASE_CHANGED]
    with pytest.raises(ValueError):
        take_checkpoint(supervisor, SavePoint.HEARTBEAT)


def test_checkpoint_snapshot_is_what_the_state_was(supervisor, tasks):
    update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": BIG, "progress": 30})
    add_supervisor_spawned_task(supervisor.contract_id, tasks[0].id)
    update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": [], "progress": 60})
    spawned = SupervisorCheckpoint.objects.get(supervisor=supervisor, reason=SavePoint.TASK_SPAWNED)
    snapshot = checkpoint_snapshot(spawned)
    assert snapshot["conversation_history"] == BIG
    assert snapshot["progress"] == 30
    assert snapshot["spawned_task_ids"] == [tasks[0].id]
    assert snapshot["pending_task_ids"] == [tasks[0].id]
    assert snapshot["state"] == "initializing"


def test_unchanged_conversation_is_stored_once(supervisor):
    update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": BIG})
    for i in range(10):
        update_supervisor_phase(supervisor.contract_id, f"phase {i}")
    assert SupervisorCheckpoint.objects.filter(supervisor=supervisor).count() == 11
    assert ConversationSnapshot.objects.filter(supervisor=supervisor).count() == 1
    update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": [*BIG, {"role": "assistant"}]})
    assert ConversationSnapshot.objects.filter(supervisor=supervisor).count() == 2


def test_retention_keeps_the_newest_and_drops_unused_conversations(supervisor, settings):
    settings.SUPERVISOR_CHECKPOINT_RETENTION = 4
    for i in range(10):
        update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": [{"role": "user", "n": i}]})
    kept = SupervisorCheckpoint.objects.filter(supervisor=supervisor).order_by("id")
    assert kept.count() == 4
    assert [checkpoint_snapshot(c)["conversation_history"][0]["n"] for c in kept] == [6, 7, 8, 9]
    # Only the conversations the kept checkpoints use are stored.
    assert ConversationSnapshot.objects.filter(supervisor=supervisor).count() == 4


def test_a_pruned_conversation_goes_only_when_no_kept_checkpoint_holds_it(supervisor, settings):
    """Pruning collects snapshots only when it freed one: a shared one stays while a kept checkpoint holds it."""
    settings.SUPERVISOR_CHECKPOINT_RETENTION = 2
    first, rewritten = [{"role": "user", "n": 1}], [{"role": "user", "n": 2}]
    update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": first})
    update_supervisor_phase(supervisor.contract_id, "a")
    update_supervisor_phase(supervisor.contract_id, "b")  # prunes a checkpoint holding `first`; one still does
    assert ConversationSnapshot.objects.filter(supervisor=supervisor).count() == 1
    update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": rewritten})
    assert ConversationSnapshot.objects.filter(supervisor=supervisor).count() == 2  # "b" still holds `first`
    update_supervisor_phase(supervisor.contract_id, "c")  # prunes "b": nothing holds `first` any more
    assert ConversationSnapshot.objects.filter(supervisor=supervisor).count() == 1
    kept = SupervisorCheckpoint.objects.filter(supervisor=supervisor).order_by("id")
    assert [checkpoint_snapshot(c)["conversation_history"] for c in kept] == [rewritten, rewritten]


def test_default_retention_is_twenty(supervisor):
    for i in range(25):
        update_supervisor_phase(supervisor.contract_id, f"p{i}")
    assert SupervisorCheckpoint.objects.filter(supervisor=supervisor).count() == 20


def test_pruning_never_drops_the_newest_consistent_checkpoint(supervisor, settings):
    settings.SUPERVISOR_CHECKPOINT_RETENTION = 3
    update_supervisor_detailed_state(supervisor.contract_id, {"state": "working", "progress": 77})
    good = SupervisorCheckpoint.objects.filter(supervisor=supervisor).latest("id")
    assert checkpoint_issues(good) == []
    # A row makima (or a bug) left inconsistent: waiting for the user with no question.
    SupervisorState.objects.filter(pk=supervisor.pk).update(state="waiting_for_user")
    for i in range(6):
        update_supervisor_phase(supervisor.contract_id, f"p{i}")
    kept = list(SupervisorCheckpoint.objects.filter(supervisor=supervisor).order_by("id"))
    assert len(kept) == 4
    assert kept[0].pk == good.pk
    assert all(checkpoint_issues(c) for c in kept[1:])
    # Once a consistent one is in the window again, the old one may go.
    update_supervisor_detailed_state(supervisor.contract_id, {"state": "working"})
    update_supervisor_phase(supervisor.contract_id, "again")
    assert not SupervisorCheckpoint.objects.filter(pk=good.pk).exists()
    assert SupervisorCheckpoint.objects.filter(supervisor=supervisor).count() == 3


def test_checkpoints_with_too_many_questions_never_push_out_the_consistent_one(supervisor, settings):
    """The search for the newest consistent checkpoint skips these in SQL on PostgreSQL: same verdict."""
    settings.SUPERVISOR_CHECKPOINT_RETENTION = 3
    update_supervisor_detailed_state(supervisor.contract_id, {"state": "working", "progress": 77})
    good = SupervisorCheckpoint.objects.filter(supervisor=supervisor).latest("id")
    too_many = [make_question(f"q{i}") for i in range(validators.MAX_PENDING_QUESTIONS + 1)]
    SupervisorState.objects.filter(pk=supervisor.pk).update(state="waiting_for_user", pending_questions=too_many)
    for i in range(6):
        update_supervisor_phase(supervisor.contract_id, f"p{i}")
    kept = list(SupervisorCheckpoint.objects.filter(supervisor=supervisor).order_by("id"))
    assert [c.pk for c in kept[:1]] == [good.pk] and len(kept) == 4
    assert all(checkpoint_issues(c) for c in kept[1:])
    # Back under the limit: the newest is consistent again and the old one goes.
    SupervisorState.objects.filter(pk=supervisor.pk).update(pending_questions=too_many[:1])
    for i in range(3):
        update_supervisor_phase(supervisor.contract_id, f"q{i}")
    assert not SupervisorCheckpoint.objects.filter(pk=good.pk).exists()
    assert SupervisorCheckpoint.objects.filter(supervisor=supervisor).count() == 3


def test_pruning_unlinks_restoration_logs(supervisor, settings):
    settings.SUPERVISOR_CHECKPOINT_RETENTION = 2
    update_supervisor_phase(supervisor.contract_id, "one")
    first = SupervisorCheckpoint.objects.get(supervisor=supervisor)
    log = RestorationLog.objects.create(
        supervisor=supervisor,
        contract_id=supervisor.contract_id,
        started_at=first.created_at,
        source="manual",
        actor_kind="system",
        recovery_action="UseCheckpoint",
        checkpoint=first,
        success=True,
    )
    update_supervisor_phase(supervisor.contract_id, "two")
    update_supervisor_phase(supervisor.contract_id, "three")
    log.refresh_from_db()
    assert log.checkpoint_id is None


def test_checkpoint_copies_the_conversation_inside_the_database(supervisor, django_capture_on_commit_callbacks):
    """The history is hashed and copied by SQL: no query returns it to Python."""
    from django.test.utils import CaptureQueriesContext

    SupervisorState.objects.filter(pk=supervisor.pk).update(conversation_history=BIG)
    with CaptureQueriesContext(connection) as captured:
        update_supervisor_phase(supervisor.contract_id, "execute")
    assert not any('"supervisor_states"."conversation_history"' in q["sql"] for q in captured.captured_queries)
    checkpoint = SupervisorCheckpoint.objects.get(supervisor=supervisor)
    assert checkpoint_snapshot(checkpoint)["conversation_history"] == BIG
    assert checkpoint.conversation.message_count == 1
    assert checkpoint.conversation.size_bytes > 50_000


def test_checkpoints_vanish_with_their_supervisor(supervisor, tasks):
    add_supervisor_spawned_task(supervisor.contract_id, tasks[0].id)
    supervisor.contract.delete()
    assert not SupervisorCheckpoint.objects.exists()
    assert not ConversationSnapshot.objects.exists()
    assert make_task  # factories stay importable for other tests


def message(i: int) -> dict:
    return {"role": "assistant" if i % 2 else "user", "content": f"message {i} " + "x" * 2000}


def test_a_growing_conversation_is_stored_about_once(supervisor, settings):
    """30 save points, each adding a message: storage stays near one copy of the newest history."""
    settings.SUPERVISOR_CHECKPOINT_RETENTION = 5
    history: list[dict] = []
    for i in range(30):
        history = [*history, message(i)]
        update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": history})
    checkpoints = list(SupervisorCheckpoint.objects.filter(supervisor=supervisor).order_by("id"))
    assert [len(checkpoint_snapshot(c)["conversation_history"]) for c in checkpoints] == [26, 27, 28, 29, 30]
    assert checkpoint_snapshot(checkpoints[-1])["conversation_history"] == history
    assert checkpoint_snapshot(checkpoints[0])["conversation_history"] == history[:26]
    snapshots = ConversationSnapshot.objects.filter(supervisor=supervisor)
    assert snapshots.count() <= 5 + 1  # the retained checkpoints' snapshots and at most one root
    one_copy = len(json.dumps(history).encode())
    assert stored_bytes(supervisor) < 1.2 * one_copy  # not 5 copies


def test_a_rewritten_conversation_starts_afresh_and_the_old_chain_goes(supervisor, settings):
    settings.SUPERVISOR_CHECKPOINT_RETENTION = 3
    history = [message(i) for i in range(3)]
    for i in range(3, 6):
        history = [*history, message(i)]
        update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": history})
    summary = [{"role": "system", "content": "summary of the work so far"}]
    for i in range(4):
        summary = [*summary, message(100 + i)]
        update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": summary})
    kept = list(SupervisorCheckpoint.objects.filter(supervisor=supervisor).order_by("id"))
    assert [checkpoint_snapshot(c)["conversation_history"] for c in kept] == [summary[:3], summary[:4], summary]
    assert all(
        s["messages"][0]["content"] != message(0)["content"]
        for s in ConversationSnapshot.objects.filter(supervisor=supervisor).values("messages")
        if s["messages"]
    )


def test_going_back_to_an_older_conversation_reuses_its_snapshot(supervisor):
    first = [message(0)]
    second = [message(0), message(1)]
    update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": first})
    update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": second})
    update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": first})
    update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": [*first, message(7)]})
    histories = [
        checkpoint_snapshot(c)["conversation_history"]
        for c in SupervisorCheckpoint.objects.filter(supervisor=supervisor).order_by("id")
    ]
    assert histories == [first, second, first, [*first, message(7)]]
    assert ConversationSnapshot.objects.filter(supervisor=supervisor).count() == 3


def test_a_history_that_is_not_a_list_is_still_checkpointed_as_it_is(supervisor):
    """makima may have stored anything; the checkpoint keeps it for the restoration to judge."""
    SupervisorState.objects.filter(pk=supervisor.pk).update(conversation_history={"not": "a list"})
    update_supervisor_phase(supervisor.contract_id, "execute")
    SupervisorState.objects.filter(pk=supervisor.pk).update(conversation_history=[message(1)])
    update_supervisor_phase(supervisor.contract_id, "review")
    histories = [
        checkpoint_snapshot(c)["conversation_history"]
        for c in SupervisorCheckpoint.objects.filter(supervisor=supervisor).order_by("id")
    ]
    assert histories == [{"not": "a list"}, [message(1)]]


def test_many_histories_are_read_in_two_queries(supervisor, settings, django_assert_num_queries):
    from supervisors.services.conversations import snapshot_histories

    settings.SUPERVISOR_CHECKPOINT_RETENTION = 6
    history: list[dict] = []
    for i in range(6):
        history = [*history, message(i)]
        update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": history})
    ids = list(
        SupervisorCheckpoint.objects.filter(supervisor=supervisor)
        .order_by("id")
        .values_list("conversation_id", flat=True)
    )
    with django_assert_num_queries(2):
        histories = snapshot_histories(ids)
    assert [len(histories[i]) for i in ids] == [1, 2, 3, 4, 5, 6]
    assert histories[ids[-1]] == history


def test_reading_a_snapshot_always_gives_the_whole_history(supervisor):
    """Code that reads ``snapshot.messages`` (the admin, a restoration) never gets only a tail."""
    history: list[dict] = []
    for i in range(3):
        history = [*history, message(i)]
        update_supervisor_detailed_state(supervisor.contract_id, {"conversation_history": history})
    newest = SupervisorCheckpoint.objects.filter(supervisor=supervisor).latest("id")
    snapshot = ConversationSnapshot.objects.only("id", "messages").get(id=newest.conversation_id)
    assert snapshot.messages == history
    stored = ConversationSnapshot.objects.filter(id=newest.conversation_id).values_list("messages", flat=True)[0]
    assert stored == [message(2)]  # what the row holds: only the tail
