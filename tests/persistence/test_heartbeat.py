"""The heartbeat is one UPDATE of the heartbeat columns; the conversation is never loaded without need."""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from supervisors.models import HEARTBEAT_COLUMNS, SupervisorCheckpoint, SupervisorState
from supervisors.services.errors import Conflict, InvalidInput, NotFound
from supervisors.services.questions import add_supervisor_pending_question
from supervisors.services.state import (
    HeartbeatItem,
    add_supervisor_spawned_task,
    update_supervisor_heartbeat_state,
    update_supervisor_heartbeat_states,
    update_supervisor_phase,
)
from tests.factories import make_contract, make_daemon, make_question, make_supervisor, make_task

pytestmark = pytest.mark.django_db

HISTORY = [{"role": "user", "content": "word " * 1000}] * 20


def set_columns(sql: str) -> set[str]:
    """The column names assigned in an UPDATE's SET clause."""
    match = re.search(r"\bSET\b(.*?)\bWHERE\b", sql, flags=re.S | re.I)
    assert match, sql
    return set(re.findall(r"(?:^|,)\s*\"(\w+)\"\s*=", match.group(1)))


def test_heartbeat_is_one_update_of_the_heartbeat_columns_only():
    supervisor = make_supervisor(conversation_history=HISTORY, pending_questions=[make_question()])
    with CaptureQueriesContext(connection) as captured:
        assert update_supervisor_heartbeat_state(
            supervisor.contract_id, state="working", current_activity="testing", progress=42
        )
    statements = [
        q["sql"] for q in captured.captured_queries if not q["sql"].upper().startswith(("SAVEPOINT", "RELEASE"))
    ]
    assert len(statements) == 1, statements
    sql = statements[0]
    assert sql.upper().startswith("UPDATE")
    assert set_columns(sql) == set(HEARTBEAT_COLUMNS)
    assert "conversation_history" not in sql
    assert "pending_questions" not in sql
    row = SupervisorState.objects.get(pk=supervisor.pk)
    assert (row.state, row.current_activity, row.progress) == ("working", "testing", 42)
    assert row.conversation_history == HISTORY
    assert not SupervisorCheckpoint.objects.exists()


def test_heartbeat_scoped_to_a_daemon_is_still_one_statement():
    mine, theirs = make_daemon("mine"), make_daemon("theirs")
    supervisor = make_supervisor(daemon=mine)
    with CaptureQueriesContext(connection) as captured:
        assert update_supervisor_heartbeat_state(
            supervisor.contract_id, state="working", current_activity=None, progress=1, daemon_id=mine.id
        )
    assert len(captured.captured_queries) == 1
    assert set_columns(captured.captured_queries[0]["sql"]) == set(HEARTBEAT_COLUMNS)
    with pytest.raises(NotFound):  # not theirs: the same answer as for no supervisor at all
        update_supervisor_heartbeat_state(
            supervisor.contract_id, state="working", current_activity=None, progress=2, daemon_id=theirs.id
        )
    assert SupervisorState.objects.get(pk=supervisor.pk).progress == 1
    with pytest.raises(NotFound):
        update_supervisor_heartbeat_state(uuid.uuid4(), state="working", current_activity=None, progress=2)


def test_heartbeat_at_an_old_epoch_is_superseded_and_changes_nothing():
    daemon = make_daemon("owner")
    supervisor = make_supervisor(daemon=daemon)
    SupervisorState.objects.filter(pk=supervisor.pk).update(restoration_count=4, progress=7)
    with pytest.raises(Conflict) as refused:
        update_supervisor_heartbeat_state(
            supervisor.contract_id, state="working", current_activity=None, progress=50, daemon_id=daemon.id, epoch=3
        )
    assert refused.value.code == "superseded"
    assert SupervisorState.objects.get(pk=supervisor.pk).progress == 7
    assert update_supervisor_heartbeat_state(
        supervisor.contract_id, state="working", current_activity=None, progress=50, daemon_id=daemon.id, epoch=4
    )
    assert SupervisorState.objects.get(pk=supervisor.pk).progress == 50


@pytest.mark.parametrize(("state", "progress"), [("asleep", 5), ("working", 101), ("working", -3), ("working", "5")])
def test_heartbeat_refuses_bad_values_without_a_query(supervisor, state, progress):
    with CaptureQueriesContext(connection) as captured, pytest.raises(InvalidInput):
        update_supervisor_heartbeat_state(supervisor.contract_id, state=state, current_activity=None, progress=progress)
    assert captured.captured_queries == []


def test_batch_heartbeat_updates_many_supervisors_in_one_statement():
    daemon = make_daemon()
    mine = [make_supervisor(make_contract(name=f"c{i}"), daemon=daemon) for i in range(5)]
    other = make_supervisor(make_contract(name="other"), daemon=make_daemon("other"))
    items = [HeartbeatItem(s.contract_id, "working", f"step {i}", 10 * i) for i, s in enumerate([*mine, other])]
    with CaptureQueriesContext(connection) as captured:
        updated = update_supervisor_heartbeat_states(items, daemon_id=daemon.id)
    assert updated == 5
    assert len(captured.captured_queries) == 1
    assert set_columns(captured.captured_queries[0]["sql"]) == set(HEARTBEAT_COLUMNS)
    for i, supervisor in enumerate(mine):
        row = SupervisorState.objects.get(pk=supervisor.pk)
        assert (row.state, row.current_activity, row.progress) == ("working", f"step {i}", 10 * i)
    assert SupervisorState.objects.get(pk=other.pk).progress == 0


def test_batch_heartbeat_refuses_a_bad_item_and_writes_nothing(supervisor):
    items = [
        HeartbeatItem(supervisor.contract_id, "working", None, 50),
        HeartbeatItem(uuid.uuid4(), "working", None, 500),
    ]
    with pytest.raises(InvalidInput) as caught:
        update_supervisor_heartbeat_states(items)
    assert "items[1].progress" in caught.value.fields
    assert SupervisorState.objects.get(pk=supervisor.pk).progress == 0
    # One contract twice is one heartbeat, the later item's.
    assert update_supervisor_heartbeat_states([items[0], HeartbeatItem(supervisor.contract_id, "idle", None, 70)]) == 1
    assert SupervisorState.objects.get(pk=supervisor.pk).progress == 70


def loads_conversation(queries) -> bool:
    """Whether any query brought the conversation column back to Python (the ORM names it table.column).

    A prepared statement of the hot cursor is logged without its text (psycopg keeps none): those are
    fixed statements (digests, prunes, the task owner) that never select the column.
    """
    return any('"supervisor_states"."conversation_history"' in (q["sql"] or "") for q in queries)


def test_save_points_that_do_not_need_the_conversation_never_load_it(supervisor):
    task = make_task(supervisor.contract)
    with CaptureQueriesContext(connection) as captured:
        add_supervisor_spawned_task(supervisor.contract_id, task.id)
        add_supervisor_pending_question(supervisor.contract_id, make_question())
        update_supervisor_phase(supervisor.contract_id, "execute")
    assert not loads_conversation(captured.captured_queries)


def test_save_point_query_count_does_not_grow_with_history(supervisor, django_assert_num_queries, settings):
    """Spawning the 12th and the 40th task costs the same queries, pruning included."""
    settings.SUPERVISOR_CHECKPOINT_RETENTION = 5
    tasks = [make_task(supervisor.contract, name=f"t{i}") for i in range(41)]
    for task in tasks[:11]:
        add_supervisor_spawned_task(supervisor.contract_id, task.id)
    with CaptureQueriesContext(connection) as early:
        add_supervisor_spawned_task(supervisor.contract_id, tasks[11].id)
    for task in tasks[12:40]:
        add_supervisor_spawned_task(supervisor.contract_id, task.id)
    with django_assert_num_queries(len(early.captured_queries)):
        add_supervisor_spawned_task(supervisor.contract_id, tasks[40].id)
    assert SupervisorCheckpoint.objects.filter(supervisor=supervisor).count() == 5


def test_batch_heartbeat_carries_nulls_quotes_and_unicode_exactly():
    """The items travel as arrays (PostgreSQL) or one JSON array (SQLite): values come back as sent."""
    daemon = make_daemon()
    first, second = (make_supervisor(make_contract(name=f"c{i}"), daemon=daemon) for i in range(2))
    awkward = 'it\'s "quoted", 100% \\ done; ünïcode ✓ ) AS v WHERE 1=1 --'
    items = [
        HeartbeatItem(str(first.contract_id), "waiting_for_user", None, 0),
        HeartbeatItem(second.contract_id, "working", awkward, 100),
    ]
    assert update_supervisor_heartbeat_states(items) == 2
    rows = {s.pk: s for s in SupervisorState.objects.filter(pk__in=[first.pk, second.pk])}
    assert (rows[first.pk].state, rows[first.pk].current_activity, rows[first.pk].progress) == (
        "waiting_for_user",
        None,
        0,
    )
    assert (rows[second.pk].current_activity, rows[second.pk].progress) == (awkward, 100)


def test_daemon_heartbeat_with_its_supervisors_marks_the_daemon_and_writes_only_its_own():
    from supervisors.models import Daemon
    from supervisors.services.errors import NotFound
    from supervisors.services.state import record_daemon_and_supervisor_heartbeats

    daemon, other = make_daemon("mine"), make_daemon("other")
    mine = make_supervisor(make_contract(name="mine"), daemon=daemon)
    theirs = make_supervisor(make_contract(name="theirs"), daemon=other)
    at, updated = record_daemon_and_supervisor_heartbeats(daemon.id, items=[])
    assert updated == set()
    assert Daemon.objects.get(pk=daemon.pk).last_heartbeat_at == at
    items = [HeartbeatItem(s.contract_id, "working", "x", 9) for s in (mine, theirs)]
    at, updated = record_daemon_and_supervisor_heartbeats(daemon.id, status="disconnected", items=items)
    assert updated == {mine.contract_id}
    assert Daemon.objects.values_list("status", "last_heartbeat_at").get(pk=daemon.pk) == ("disconnected", at)
    assert SupervisorState.objects.get(pk=mine.pk).progress == 9
    assert SupervisorState.objects.get(pk=theirs.pk).progress == 0
    with pytest.raises(NotFound):
        record_daemon_and_supervisor_heartbeats(uuid.uuid4(), items=items[:1])
    _, written = record_daemon_and_supervisor_heartbeats(daemon.id, items=[items[0], items[0]])
    assert len(written) == 1


@pytest.mark.django_db
def test_heartbeat_refuses_an_activity_longer_than_every_other_surface_accepts():
    """The fast path of the heartbeat applies the same length limit as PUT, PATCH and the API."""
    from supervisors.services.errors import InvalidInput
    from supervisors.services.state import update_supervisor_heartbeat_state
    from supervisors.validators import MAX_TEXT_LENGTH
    from tests.factories import make_supervisor

    supervisor = make_supervisor(current_activity="before")
    with pytest.raises(InvalidInput) as excinfo:
        update_supervisor_heartbeat_state(
            supervisor.contract_id, state="working", current_activity="x" * (MAX_TEXT_LENGTH + 1), progress=1
        )
    assert "current_activity" in excinfo.value.fields
    supervisor.refresh_from_db()
    assert supervisor.current_activity == "before"


@pytest.mark.django_db(transaction=True)
def test_heartbeats_survive_a_reconnect_of_the_database_connection():
    """The hot path keeps one cursor per connection: a new connection must get a new cursor."""
    supervisor = make_supervisor(make_contract("Reconnect"))
    for progress, reconnect in ((10, False), (20, True), (30, False), (40, True)):
        if reconnect:
            connection.close()  # as CONN_MAX_AGE expiring, or a server restart noticed by Django
        assert update_supervisor_heartbeat_state(
            supervisor.contract_id, state="working", current_activity=None, progress=progress
        )
        supervisor.refresh_from_db()
        assert supervisor.progress == progress
