"""The plan step's decisions, as tables: pure functions, no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from supervisors.enums import SupervisorStatus
from supervisors.services.restoration import plan
from supervisors.services.validation import AnswerFacts, TaskFacts, ValidationWorld

CONTRACT = uuid.uuid4()
RUNNING, DONE, FAILED, INTERRUPTED = (uuid.uuid4() for _ in range(4))
TASKS = {
    t: TaskFacts(t, CONTRACT, None, f"task {status}", status, False)
    for t, status in [(RUNNING, "running"), (DONE, "done"), (FAILED, "failed"), (INTERRUPTED, "interrupted")]
}
WORLD = ValidationWorld(contract=None, supervisor_task=None, tasks=TASKS)
AT = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def question(qid: str, text: str = "Go?") -> dict:
    return {
        "id": qid,
        "question": text,
        "choices": [],
        "context": None,
        "questionType": "general",
        "askedAt": AT.isoformat(),
    }


def answer(qid: str, *, acknowledged: bool = False) -> AnswerFacts:
    return AnswerFacts(qid, question(qid), "yes", AT, "ops", acknowledged)


@pytest.mark.parametrize(
    ("questions", "waiting", "expected"),
    [
        ([{"id": "q"}], [], SupervisorStatus.WAITING_FOR_USER),
        ([{"id": "q"}], [RUNNING], SupervisorStatus.WAITING_FOR_USER),
        ([], [RUNNING], SupervisorStatus.WAITING_FOR_TASKS),
        ([], [], SupervisorStatus.WORKING),
    ],
)
def test_resume_state_asks_the_human_first_then_waits_on_tasks(questions, waiting, expected):
    assert plan.resume_state(questions, waiting) == expected


@pytest.mark.parametrize(
    ("pending", "waiting", "finished"),
    [
        ([RUNNING], [RUNNING], []),
        ([DONE, FAILED], [], [DONE, FAILED]),
        ([INTERRUPTED, DONE], [INTERRUPTED], [DONE]),  # interrupted tasks are resumed by makima: still waited on
        ([RUNNING, RUNNING, DONE], [RUNNING], [DONE]),  # duplicates once
        ([uuid.UUID(int=0)], [uuid.UUID(int=0)], []),  # unknown to the world: still waited on
    ],
)
def test_waiting_tasks_splits_finished_from_still_running(pending, waiting, finished):
    assert plan.waiting_tasks(pending, WORLD) == (waiting, finished)


Q1, Q2 = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.mark.parametrize(
    ("pending", "answers", "asked", "answered"),
    [
        ([question(Q1)], {}, [Q1], []),
        ([question(Q1), question(Q2)], {Q1: answer(Q1)}, [Q2], [Q1]),
        ([question(Q1)], {Q1: answer(Q1, acknowledged=True)}, [], [Q1]),
        ([question(Q1), question(Q1)], {}, [Q1], []),  # duplicates once
        ([{"id": "not a uuid"}], {}, [], []),  # malformed: cannot be answered, not re-delivered
        ("not a list", {}, [], []),
    ],
)
def test_questions_to_redeliver_never_asks_an_answered_question_again(pending, answers, asked, answered):
    questions, came_back = plan.questions_to_redeliver(pending, answers)
    assert [q["id"] for q in questions] == asked
    assert [a.question_id for a in came_back] == answered


def test_pending_answers_are_the_unacknowledged_ones_in_wire_form():
    answers = {Q1: answer(Q1), Q2: answer(Q2, acknowledged=True)}
    wire = {"questionId": Q1, "question": question(Q1), "answer": "yes", "answeredAt": AT.isoformat()}
    assert plan.pending_answers(answers) == ({**wire, "answeredBy": "ops"},)


def test_answered_warnings_say_what_happened_to_each_question():
    acked, pending = plan.answered_warnings([answer(Q1, acknowledged=True), answer(Q2)])
    assert Q1 in acked and "acknowledged before, so it is not asked again" in acked
    assert Q2 in pending and "its answer is delivered in pendingAnswers" in pending
