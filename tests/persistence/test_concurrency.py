"""No lost updates: real threads, each on its own PostgreSQL connection, in committed transactions.

These tests run with ``transaction=True``: the per-test transaction of an
ordinary test would hide locking (every thread would need its own connection
to see the others' rows anyway).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest
from django.db import connection

from supervisors.models import QuestionAnswer, SupervisorState
from supervisors.services.actors import Actor
from supervisors.services.errors import NotFound
from supervisors.services.questions import add_supervisor_pending_question, clear_pending_question
from supervisors.services.state import (
    add_supervisor_spawned_task,
    save_supervisor_state,
    save_supervisor_state_full,
    update_supervisor_detailed_state,
    update_supervisor_heartbeat_state,
)
from tests.factories import make_contract, make_question, make_supervisor, make_task

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

#: Threads at once; each holds a connection, so stay well under max_connections (100).
WORKERS = 16


def run_threads(*targets: Callable[[], None]) -> None:
    """Run each target on its own thread, all started together; re-raise the first failure."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def body(target: Callable[[], None]) -> None:
        try:
            barrier.wait()
            target()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def run_all(calls: list[Callable[[], object]]) -> Callable[[], None]:
    def run() -> None:
        for call in calls:
            call()

    return run


def test_fifty_concurrent_spawns_leave_fifty_ids():
    supervisor = make_supervisor()
    tasks = [make_task(supervisor.contract, name=f"t{i}") for i in range(50)]
    per_thread = [tasks[i::WORKERS] for i in range(WORKERS)]

    def spawn_all(batch):
        return lambda: [add_supervisor_spawned_task(supervisor.contract_id, t.id) for t in batch]

    run_threads(*[spawn_all(batch) for batch in per_thread])

    row = SupervisorState.objects.get(pk=supervisor.pk)
    assert len(row.spawned_task_ids) == 50
    assert set(row.spawned_task_ids) == {t.id for t in tasks}
    assert set(row.pending_task_ids) == {t.id for t in tasks}


def test_thirty_questions_asked_while_fifteen_are_answered():
    supervisor = make_supervisor()
    questions = [make_question(f"Question {i}?") for i in range(30)]
    answered = questions[::2]
    staff = Actor.system("test")

    def ask(question):
        return lambda: add_supervisor_pending_question(supervisor.contract_id, question)

    def answer(question):
        def run():
            for _ in range(10_000):  # until the asker's commit makes it pending
                try:
                    return clear_pending_question(supervisor.contract_id, question["id"], answer="ok", actor=staff)
                except NotFound:
                    continue
            raise AssertionError(f"question {question['id']} never became pending")

        return run

    calls = [ask(q) for q in questions] + [answer(q) for q in answered]
    chunks = [calls[i::WORKERS] for i in range(WORKERS)]
    # Each thread takes an interleaved slice: askers and answerers run side by side.
    run_threads(*[run_all(chunk) for chunk in chunks])

    row = SupervisorState.objects.get(pk=supervisor.pk)
    pending_ids = {q["id"] for q in row.pending_questions}
    assert pending_ids == {q["id"] for q in questions[1::2]}
    assert len(row.pending_questions) == 15
    answers = QuestionAnswer.objects.filter(supervisor=supervisor)
    assert answers.count() == 15
    assert {str(a.question_id) for a in answers} == {q["id"] for q in answered}


def test_full_saves_racing_heartbeats_lose_neither():
    supervisor = make_supervisor()
    contract, task = supervisor.contract, supervisor.task
    rounds = 40

    def full_saves():
        for i in range(1, rounds + 1):
            save_supervisor_state_full(
                contract_id=contract.id,
                task_id=task.id,
                phase=f"phase-{i}",
                state="working",
                conversation_history=[{"role": "user", "content": str(n)} for n in range(i)],
                pending_task_ids=[],
                spawned_task_ids=[],
                pending_questions=[],
                current_activity=f"save {i}",
                progress=i,
            )

    heartbeats_seen: list[int] = []

    def heartbeats():
        for j in range(1, rounds + 1):
            assert update_supervisor_heartbeat_state(
                contract.id, state="working", current_activity=f"beat {j}", progress=50 + j
            )
            heartbeats_seen.append(50 + j)

    run_threads(full_saves, heartbeats)

    row = SupervisorState.objects.get(pk=supervisor.pk)
    # The full save's own columns are the last save's: no heartbeat wrote them back.
    assert row.phase == f"phase-{rounds}"
    assert len(row.conversation_history) == rounds
    # The heartbeat columns are whichever writer committed last, and consistent with each other.
    assert (row.progress, row.current_activity) in {(rounds, f"save {rounds}"), (50 + rounds, f"beat {rounds}")}


def test_partial_updates_racing_heartbeats_keep_both_columns():
    supervisor = make_supervisor()
    rounds = 40

    def patches():
        for i in range(1, rounds + 1):
            update_supervisor_detailed_state(
                supervisor.contract_id, {"conversation_history": [{"role": "assistant", "content": "x" * i}]}
            )

    def heartbeats():
        for j in range(1, rounds + 1):
            update_supervisor_heartbeat_state(
                supervisor.contract_id, state="working", current_activity=f"beat {j}", progress=j
            )

    run_threads(patches, heartbeats)

    row = SupervisorState.objects.get(pk=supervisor.pk)
    assert row.conversation_history == [{"role": "assistant", "content": "x" * rounds}]
    assert (row.progress, row.current_activity) == (rounds, f"beat {rounds}")


def test_two_first_full_saves_of_one_contract_make_one_row():
    """Racing first saves leave one row, and exactly one of them says it created it (the API's one 201)."""
    contract = make_contract()
    task = make_task(contract, is_supervisor=True)
    created: list[bool] = []

    def save(i):
        return lambda: created.append(save_one(i).created)

    def save_one(i):
        return save_supervisor_state(
            contract_id=contract.id,
            task_id=task.id,
            phase="plan",
            state="working",
            conversation_history=[],
            pending_task_ids=[],
            spawned_task_ids=[],
            pending_questions=[],
            progress=i,
        )

    run_threads(*[save(i) for i in range(8)])
    assert SupervisorState.objects.filter(contract=contract).count() == 1
    assert SupervisorState.objects.get(contract=contract).progress in range(8)
    assert sorted(created) == [False] * 7 + [True]


def test_concurrent_answers_to_one_question_record_one_answer():
    supervisor = make_supervisor()
    _, question, _ = add_supervisor_pending_question(supervisor.contract_id, make_question())
    outcomes: list[str] = []

    def answer(text):
        def run():
            try:
                clear_pending_question(supervisor.contract_id, question["id"], answer=text, actor=Actor.system())
                outcomes.append("answered")
            except Exception as exc:
                outcomes.append(type(exc).__name__)

        return run

    run_threads(*[answer(f"answer {i}") for i in range(6)])
    assert sorted(outcomes) == ["Conflict"] * 5 + ["answered"]
    assert QuestionAnswer.objects.filter(supervisor=supervisor).count() == 1
    assert uuid.UUID(question["id"])
