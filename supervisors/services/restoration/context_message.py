"""Step 8's text, the first thing a restored supervisor reads: where it was, what changed, what to do next.

Plain text a model can read (DESIGN.md step 8). It depends only on the
restored state, never on the clock, so the same state always gives the same
message. Long lists are summarised: a supervisor with 20 questions and 500
tasks gets every question it must act on (their text shortened), the first
tasks of each kind and counts for the rest.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from supervisors.enums import RecoveryAction, RestorationSource
from supervisors.services.validation import TaskFacts

#: Questions shown with their full text and choices; the rest are listed by id and opening words.
MAX_QUESTIONS_IN_FULL = 10
#: Tasks listed one per line in each group; the rest are counted.
MAX_TASKS_LISTED = 15
MAX_TEXT = 300
MAX_WARNINGS = 10

SOURCE_TEXT = {
    RestorationSource.DAEMON_RESTART: "after its daemon restarted",
    RestorationSource.TASK_REASSIGNMENT: "after its task was reassigned to another daemon",
    RestorationSource.MANUAL: "by hand by an operator",
}

ACTION_TEXT = {
    RecoveryAction.PROCEED: "Your saved state was valid and has been restored as it was.",
    RecoveryAction.USE_CHECKPOINT: (
        "Your saved state was inconsistent, so it was restored from an earlier checkpoint; "
        "anything you did after that checkpoint may need to be redone."
    ),
    RecoveryAction.START_FRESH: (
        "Your saved state could not be trusted and no valid checkpoint existed, so you start fresh: "
        "your conversation history was dropped; the tasks and questions below are what is still true."
    ),
    RecoveryAction.MANUAL_INTERVENTION: (
        "Your state cannot be restored automatically; you are blocked until an operator intervenes."
    ),
}


def _short(text: Any, limit: int = MAX_TEXT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _task_line(task_id: uuid.UUID, tasks: Mapping[uuid.UUID, TaskFacts]) -> str:
    task = tasks.get(task_id)
    if task is None:
        return f"  - {task_id}"
    return f"  - {task_id} {_short(task.name, 80)!r} ({task.status})"


def _task_group(title: str, ids: Sequence[uuid.UUID], tasks: Mapping[uuid.UUID, TaskFacts]) -> list[str]:
    if not ids:
        return []
    lines = [f"{title} ({len(ids)}):"]
    lines += [_task_line(t, tasks) for t in ids[:MAX_TASKS_LISTED]]
    rest = ids[MAX_TASKS_LISTED:]
    if rest:
        statuses = Counter(tasks[t].status if t in tasks else "unknown" for t in rest)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        lines.append(f"  - and {len(rest)} more ({summary})")
    return lines


def _question_lines(questions: Sequence[Mapping[str, Any]]) -> list[str]:
    if not questions:
        return ["No questions are pending."]
    lines = [
        f"Questions re-delivered to the human ({len(questions)}); "
        "wait for their answers before acting on what they decide:"
    ]
    for index, q in enumerate(questions[:MAX_QUESTIONS_IN_FULL], start=1):
        lines.append(
            f"  {index}. [{q.get('questionType', 'general')}] {_short(q.get('question', ''))} (id {q.get('id')})"
        )
        if q.get("choices"):
            lines.append(f"     choices: {' | '.join(_short(c, 80) for c in q['choices'][:10])}")
            if len(q["choices"]) > 10:
                lines.append(f"     and {len(q['choices']) - 10} more choices")
        if q.get("context"):
            lines.append(f"     context: {_short(q['context'], 200)}")
    rest = questions[MAX_QUESTIONS_IN_FULL:]
    if rest:
        lines.append(f"  and {len(rest)} more questions:")
        lines += [f"  - {_short(q.get('question', ''), 60)} (id {q.get('id')})" for q in rest]
    return lines


def _answer_lines(answers: Sequence[Mapping[str, Any]]) -> list[str]:
    """Answers the human gave that the daemon has not acknowledged: the agent must act on them."""
    if not answers:
        return []
    lines = [
        f"Answers from the human you have not acknowledged yet ({len(answers)}); act on them, "
        "then acknowledge each (POST answers/{questionId}/ack/):"
    ]
    for index, a in enumerate(answers[:MAX_QUESTIONS_IN_FULL], start=1):
        question = a.get("question") if isinstance(a.get("question"), Mapping) else {}
        by = f" by {a['answeredBy']}" if a.get("answeredBy") else ""
        lines.append(f"  {index}. {_short(question.get('question', ''))} (id {a.get('questionId')})")
        lines.append(f"     answer{by} at {a.get('answeredAt')}: {_short(a.get('answer', ''))}")
    if len(answers) > MAX_QUESTIONS_IN_FULL:
        lines.append(f"  and {len(answers) - MAX_QUESTIONS_IN_FULL} more answers: read pendingAnswers")
    return lines


def _capped(title: str, items: Sequence[str]) -> list[str]:
    lines = [title, *(f"  - {_short(i)}" for i in items[:MAX_WARNINGS])]
    if len(items) > MAX_WARNINGS:
        lines.append(f"  - and {len(items) - MAX_WARNINGS} more")
    return lines


def generate_restoration_context_message(
    *,
    source: str,
    restoration_count: int,
    previous_state: str,
    phase: str,
    progress: int | None,
    current_activity: str | None,
    recovery_action: str,
    questions: Sequence[Mapping[str, Any]],
    waiting_task_ids: Sequence[uuid.UUID],
    finished_task_ids: Sequence[uuid.UUID],
    answers: Sequence[Mapping[str, Any]] = (),
    spawned_task_ids: Sequence[uuid.UUID] = (),
    tasks: Mapping[uuid.UUID, TaskFacts] | None = None,
    checkpoint_reason: str | None = None,
    checkpoint_taken_at: datetime | None = None,
    last_activity: datetime | None = None,
    stale: bool = False,
    issues: Sequence[str] = (),
    warnings: Sequence[str] = (),
) -> str:
    """The restoration context message of the seed, for the agent to continue where it left off."""
    tasks = tasks or {}
    how = SOURCE_TEXT.get(source, f"(source: {source})")
    times = "time" if restoration_count == 1 else "times"
    lines = [
        "SUPERVISOR RESTORED",
        f"You are a supervisor that was restored {how}. You have now been restored {restoration_count} {times}.",
        f"Before the restoration you were in state {previous_state!r}"
        + (f", last active at {last_activity.isoformat()}" if last_activity else "")
        + (" (silent too long in an active state, so treated as interrupted)" if stale else "")
        + ".",
        f"Contract phase: {phase}. Progress: {progress if progress is not None else 0}%.",
        f"Last activity: {_short(current_activity)}" if current_activity else "Last activity: not recorded.",
        "",
        f"Recovery applied: {recovery_action}. {ACTION_TEXT.get(recovery_action, '')}".rstrip(),
    ]
    if checkpoint_reason:
        taken = f" taken at {checkpoint_taken_at.isoformat()}" if checkpoint_taken_at else ""
        lines.append(f"Checkpoint used: {checkpoint_reason}{taken}.")
    if issues:
        lines += _capped(f"Problems found in the saved state ({len(issues)}):", issues)
    lines.append("")
    lines += _question_lines(questions)
    lines += _answer_lines(answers)
    lines.append("")
    lines += _task_group("Tasks you are still waiting on", waiting_task_ids, tasks) or [
        "You are not waiting on any task."
    ]
    lines += _task_group("Tasks that finished while you were away; read their results", finished_task_ids, tasks)
    others = len(set(spawned_task_ids) - set(waiting_task_ids) - set(finished_task_ids))
    if others:
        lines.append(f"Other tasks you spawned earlier: {others} (not waited on).")
    if warnings:
        lines += ["", *_capped(f"Warnings ({len(warnings)}):", warnings)]
    lines += ["", _next_step(recovery_action, questions, waiting_task_ids, answers)]
    return "\n".join(lines)


def _next_step(
    recovery_action: str, questions: Sequence[Any], waiting_task_ids: Sequence[Any], answers: Sequence[Any]
) -> str:
    if recovery_action == RecoveryAction.MANUAL_INTERVENTION:
        return "Next: do nothing until an operator has fixed the problems above and restored you again."
    if answers:
        return "Next: act on the answers above and acknowledge them; do not ask those questions again."
    if questions:
        return "Next: wait for the answers to the pending questions; do not ask them again."
    if waiting_task_ids:
        return "Next: check the results of the finished tasks, then keep waiting on the running ones."
    return "Next: review the finished tasks and continue the work of the current phase."
