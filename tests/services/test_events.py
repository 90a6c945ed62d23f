"""A supervisor's events: each service function records exactly one, with who did it, in its own transaction.

What a user notices: the timeline says what happened, by whom, in the order
it happened; a change that failed leaves nothing behind; heartbeats add
nothing; old events go once a supervisor has more than the retention.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from supervisors.enums import ActorKind, DaemonStatus, EventKind, RestorationSource, SupervisorStatus
from supervisors.models import SupervisorCheckpoint, SupervisorEvent, SupervisorState
from supervisors.services.actors import Actor
from supervisors.services.claims import claim_orphaned_supervisors
from supervisors.services.errors import InvalidInput, NotFound
from supervisors.services.events import NewEvent, prune_supervisor_events, record_events
from supervisors.services.ownership import Fence
from supervisors.services.questions import (
    acknowledge_answer,
    add_supervisor_pending_question,
    clear_pending_question,
    remove_supervisor_pending_question,
)
from supervisors.services.restoration import redeliver_pending_questions, restore_supervisor
from supervisors.services.state import (
    add_supervisor_spawned_task,
    save_supervisor_state_full,
    update_supervisor_detailed_state,
    update_supervisor_heartbeat_state,
    update_supervisor_phase,
)
from supervisors.services.watchdog import run_watchdog
from tests.factories import make_contract, make_daemon, make_question, make_supervisor, make_task

pytestmark = pytest.mark.django_db


def events_of(supervisor: SupervisorState) -> list[SupervisorEvent]:
    return list(SupervisorEvent.objects.filter(supervisor=supervisor).order_by("sequence"))


def only_event(supervisor: SupervisorState) -> SupervisorEvent:
    events = events_of(supervisor)
    assert len(events) == 1, [e.kind for e in events]
    return events[0]


@pytest.fixture
def daemon():
    d = make_daemon("daemon-7")
    d.__class__.objects.filter(pk=d.pk).update(status=DaemonStatus.CONNECTED, last_heartbeat_at=timezone.now())
    return d


@pytest.fixture
def supervisor(daemon):
    return make_supervisor(make_contract("Billing rewrite", phase="plan"), daemon=daemon, state="working")


@pytest.fixture
def boss():
    return User.objects.create_superuser("boss", password="pw")


def test_phase_change_records_from_and_to_with_the_daemon_named(supervisor, daemon):
    update_supervisor_phase(supervisor.contract_id, "build", fence=Fence(daemon_id=daemon.id))
    event = only_event(supervisor)
    assert event.kind == EventKind.PHASE_CHANGED
    assert event.details == {"from": "plan", "to": "build"}
    assert (event.actor_kind, event.actor_label, event.actor_daemon_id) == ("daemon", "daemon:daemon-7", daemon.id)
    assert event.contract_id == supervisor.contract_id and event.sequence == 1


def test_a_task_spawned_is_recorded(supervisor, daemon):
    task = make_task(supervisor.contract, name="tests")
    add_supervisor_spawned_task(supervisor.contract_id, task.id, fence=Fence(daemon_id=daemon.id))
    event = only_event(supervisor)
    assert event.kind == EventKind.TASK_SPAWNED
    assert event.details == {"taskId": str(task.id), "waiting": True, "new": True}


def test_full_save_records_created_then_saved(daemon):
    contract = make_contract("Fresh")
    task = make_task(contract, name="sup", is_supervisor=True, daemon=daemon)
    fields = dict(
        contract_id=contract.id,
        task_id=task.id,
        phase="plan",
        conversation_history=[{"role": "user", "content": "secret plan"}],
        pending_task_ids=[],
        spawned_task_ids=[],
        pending_questions=[],
    )
    save_supervisor_state_full(state="working", fence=Fence(daemon_id=daemon.id), **fields)
    save_supervisor_state_full(state="idle", fence=Fence(daemon_id=daemon.id), **fields)
    supervisor = SupervisorState.objects.get(contract=contract)
    created, saved = events_of(supervisor)
    assert (created.kind, saved.kind) == (EventKind.CREATED, EventKind.STATE_SAVED)
    assert saved.details["stateBefore"] == "working" and saved.details["state"] == "idle"
    assert "secret plan" not in str(created.details) + str(saved.details)  # never conversation content


def test_question_asked_answered_acknowledged_each_once_with_who(supervisor, daemon, boss):
    fence = Fence(daemon_id=daemon.id)
    question = make_question("Ship it?")
    add_supervisor_pending_question(supervisor.contract_id, question, fence=fence)
    add_supervisor_pending_question(supervisor.contract_id, question, fence=fence)  # idempotent re-ask: no event
    clear_pending_question(supervisor.contract_id, question["id"], answer="yes", actor=Actor.staff(boss))
    acknowledge_answer(supervisor.contract_id, question["id"], fence=fence)
    acknowledge_answer(supervisor.contract_id, question["id"], fence=fence)  # a repeat: no event
    asked, answered, acked = events_of(supervisor)
    assert asked.kind == EventKind.QUESTION_ASKED and asked.details["question"] == "Ship it?"
    assert asked.actor_label == "daemon:daemon-7"
    assert answered.kind == EventKind.QUESTION_ANSWERED
    assert (answered.actor_kind, answered.actor_user, answered.details["answeredBy"]) == ("staff", boss, "staff:boss")
    assert "yes" not in answered.details.values()  # the answer itself stays in the answers table
    assert acked.kind == EventKind.ANSWER_ACKNOWLEDGED and acked.details == {"questionId": question["id"]}
    assert [e.sequence for e in (asked, answered, acked)] == [1, 2, 3]


def test_withdrawn_question_is_recorded(supervisor, daemon):
    question = make_question()
    add_supervisor_pending_question(supervisor.contract_id, question)
    remove_supervisor_pending_question(supervisor.contract_id, question["id"], actor=Actor.for_daemon(daemon))
    assert [e.kind for e in events_of(supervisor)] == [EventKind.QUESTION_ASKED, EventKind.QUESTION_WITHDRAWN]


def test_staff_correction_is_a_corrected_event_naming_the_fields(supervisor, boss):
    update_supervisor_detailed_state(supervisor.contract_id, {"state": "idle"}, actor=Actor.staff(boss))
    event = only_event(supervisor)
    assert event.kind == EventKind.CORRECTED
    assert event.details == {"fields": ["state"], "state": {"from": "working", "to": "idle"}}
    assert event.actor_user == boss


def test_a_daemons_partial_update_is_state_updated(supervisor, daemon):
    update_supervisor_detailed_state(supervisor.contract_id, {"progress": 50}, fence=Fence(daemon_id=daemon.id))
    assert only_event(supervisor).kind == EventKind.STATE_UPDATED


def test_heartbeats_write_no_event(supervisor, daemon):
    for progress in (10, 20, 30):
        update_supervisor_heartbeat_state(
            supervisor.contract_id, state="working", current_activity="x", progress=progress, daemon_id=daemon.id
        )
    assert events_of(supervisor) == []


def test_a_refused_change_writes_no_event(supervisor):
    with pytest.raises(InvalidInput):
        update_supervisor_phase(supervisor.contract_id, "")
    with pytest.raises(NotFound):
        clear_pending_question(supervisor.contract_id, uuid.uuid4(), answer="x", actor=Actor.system())
    assert events_of(supervisor) == []


def test_a_rolled_back_save_writes_no_event(supervisor):
    with pytest.raises(RuntimeError), transaction.atomic():
        update_supervisor_phase(supervisor.contract_id, "build")
        assert len(events_of(supervisor)) == 1  # written with the change...
        raise RuntimeError("the caller's transaction fails after the save")
    assert events_of(supervisor) == []  # ...and gone with it
    assert SupervisorState.objects.get(pk=supervisor.pk).phase == "plan"


@pytest.mark.django_db(transaction=True)
def test_events_are_refused_outside_a_transaction(supervisor):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        record_events([NewEvent(supervisor.id, EventKind.RESTORED, Actor.system())])


def test_restoration_by_staff_is_recorded_with_outcome_and_reason(supervisor, boss):
    restore_supervisor(supervisor.contract_id, source="manual", actor=Actor.staff(boss), reason="daemon rebooted")
    event = only_event(supervisor)
    assert event.kind == EventKind.RESTORED
    assert event.details["outcome"] == "restored" and event.details["reason"] == "daemon rebooted"
    assert event.details["epoch"] == 1 and event.details["restorationLogId"] is not None
    assert event.actor_user == boss


def test_restoring_a_checkpoint_by_staff_is_its_own_kind(supervisor, boss):
    update_supervisor_phase(supervisor.contract_id, "build")
    checkpoint = SupervisorCheckpoint.objects.filter(supervisor=supervisor).get()
    restore_supervisor(
        supervisor.contract_id, source="manual", actor=Actor.staff(boss), checkpoint_id=checkpoint.id, reason="back"
    )
    event = events_of(supervisor)[-1]
    assert event.kind == EventKind.CHECKPOINT_RESTORED and event.details["checkpointId"] == checkpoint.id


def test_restoration_redelivers_questions_in_one_more_event(supervisor):
    add_supervisor_pending_question(supervisor.contract_id, make_question())
    restore_supervisor(supervisor.contract_id, source="daemon_restart", actor=Actor.command("restore"))
    kinds = [e.kind for e in events_of(supervisor)]
    assert kinds == [EventKind.QUESTION_ASKED, EventKind.RESTORED, EventKind.QUESTIONS_REDELIVERED]
    redeliver_pending_questions(supervisor.contract_id, actor=Actor.command("x"))
    assert events_of(supervisor)[-1].details["count"] == 1


def test_refused_restoration_of_a_completed_supervisor_is_recorded(supervisor):
    SupervisorState.objects.filter(pk=supervisor.pk).update(state=SupervisorStatus.COMPLETED)
    with pytest.raises(Exception, match="completed"):
        restore_supervisor(supervisor.contract_id, source="manual", actor=Actor.command("x"))
    assert only_event(supervisor).kind == EventKind.RESTORATION_REFUSED


def test_takeover_names_the_daemon_it_left_and_the_one_it_went_to(supervisor, daemon):
    daemon.__class__.objects.filter(pk=daemon.pk).update(last_heartbeat_at=timezone.now() - timedelta(hours=1))
    other = make_daemon("daemon-9")
    restore_supervisor(
        supervisor.contract_id,
        source=RestorationSource.TASK_REASSIGNMENT,
        actor=Actor.for_daemon(other),
        assign_to_daemon=other,
    )
    event = only_event(supervisor)
    assert event.kind == EventKind.TAKEN_OVER
    assert (event.details["fromDaemon"], event.details["toDaemon"]) == ("daemon-7", "daemon-9")
    assert event.actor_label == "daemon:daemon-9"


def test_a_claim_is_recorded_as_claimed_by_the_daemon(supervisor, daemon):
    daemon.__class__.objects.filter(pk=daemon.pk).update(last_heartbeat_at=timezone.now() - timedelta(hours=1))
    claimer = make_daemon("claimer")
    claim_orphaned_supervisors(claimer.id, capacity=5, actor=Actor.for_daemon(claimer))
    event = only_event(supervisor)
    assert event.kind == EventKind.CLAIMED
    assert (event.details["fromDaemon"], event.details["toDaemon"]) == ("daemon-7", "claimer")
    assert (event.actor_kind, event.actor_daemon_id) == (ActorKind.DAEMON, claimer.id)


def test_watchdog_interrupts_with_the_reason_then_finds_the_silence_once(supervisor, daemon, settings):
    settings.SUPERVISOR_STALE_AFTER_SECONDS = 60
    stale = make_supervisor(make_contract("Quiet"), daemon=daemon, state="working")
    SupervisorState.objects.filter(pk=stale.pk).update(last_activity=timezone.now() - timedelta(minutes=5))
    run_watchdog()
    run_watchdog()
    assert [e.kind for e in events_of(stale)] == [EventKind.STALE]  # once per silence, not every run
    assert events_of(supervisor) == []
    daemon.__class__.objects.filter(pk=daemon.pk).update(last_heartbeat_at=timezone.now() - timedelta(hours=1))
    run_watchdog()
    event = only_event(supervisor)
    assert event.kind == EventKind.INTERRUPTED and event.actor_label == "watchdog"
    assert event.details["reason"].startswith("daemon daemon-7 gone since ")
    assert event.details["daemon"] == "daemon-7"
    assert [e.kind for e in events_of(stale)] == [EventKind.STALE, EventKind.INTERRUPTED]


def test_a_new_silence_after_a_heartbeat_is_a_new_stale_episode(supervisor, daemon, settings):
    settings.SUPERVISOR_STALE_AFTER_SECONDS = 60
    for minutes in (5, 3):
        SupervisorState.objects.filter(pk=supervisor.pk).update(
            last_activity=timezone.now() - timedelta(minutes=minutes)
        )
        run_watchdog()
    assert [e.kind for e in events_of(supervisor)] == [EventKind.STALE, EventKind.STALE]


def test_retention_keeps_the_newest_events_of_each_supervisor(supervisor, settings):
    settings.SUPERVISOR_EVENTS_KEEP = 10
    small = make_supervisor(make_contract("Small"))
    with transaction.atomic():
        record_events([NewEvent(supervisor.id, EventKind.STATE_UPDATED, Actor.system(), {"n": i}) for i in range(25)])
        record_events([NewEvent(small.id, EventKind.STATE_UPDATED, Actor.system()) for _ in range(3)])
    with CaptureQueriesContext(connection) as queries:
        assert prune_supervisor_events() == 15
    assert len(queries) == 1
    kept = events_of(supervisor)
    assert [e.sequence for e in kept] == list(range(16, 26))
    assert [e.details["n"] for e in kept] == list(range(15, 25))
    assert len(events_of(small)) == 3
    update_supervisor_phase(supervisor.contract_id, "build")  # numbering goes on after pruning
    assert events_of(supervisor)[-1].sequence == 26


def test_one_statement_records_a_batch_and_numbers_each_supervisors_events(supervisor):
    other = make_supervisor(make_contract("Other"))
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        written = record_events(
            [NewEvent(s.id, EventKind.RESTORED, Actor.system()) for s in (supervisor, other, supervisor, other)]
        )
    assert written == 4 and len(queries) == 1
    assert [e.sequence for e in events_of(supervisor)] == [1, 2]
    assert [e.sequence for e in events_of(other)] == [1, 2]


@pytest.mark.postgres_only
def test_makima_deleting_a_supervisor_takes_its_events_and_a_deleted_daemon_leaves_the_label(supervisor, daemon):
    """makima deletes with SQL (no Django collector): the database's ON DELETE rules must do it."""
    update_supervisor_phase(supervisor.contract_id, "build", fence=Fence(daemon_id=daemon.id))
    event = only_event(supervisor)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM daemons WHERE id = %s", [daemon.pk])
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    event.refresh_from_db()
    assert event.actor_daemon_id is None and event.actor_label == "daemon:daemon-7"
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM supervisor_states WHERE id = %s", [supervisor.pk])
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert not SupervisorEvent.objects.filter(pk=event.pk).exists()


def test_the_prune_job_runs_on_the_scheduler(settings, supervisor, django_capture_on_commit_callbacks):
    from supervisors.services.scheduler import enqueue_due_jobs

    settings.SUPERVISOR_EVENTS_KEEP = 10
    with transaction.atomic():
        record_events([NewEvent(supervisor.id, EventKind.STATE_UPDATED, Actor.system()) for _ in range(12)])
    with django_capture_on_commit_callbacks(execute=True):  # the immediate backend runs the job at once
        assert "prune_supervisor_events" in enqueue_due_jobs()
    assert [e.sequence for e in events_of(supervisor)][:1] == [3]


def test_a_daemon_deleted_before_the_event_is_named_by_its_id(supervisor):
    gone = uuid.uuid4()
    with transaction.atomic():
        record_events([NewEvent(supervisor.id, EventKind.PHASE_CHANGED, Actor.for_daemon_id(gone))])
    event = only_event(supervisor)
    assert event.actor_daemon_id is None
    assert event.actor_label in (f"daemon:{gone}", f"daemon:{gone.hex}")  # SQLite keeps a UUID as 32 hex digits
