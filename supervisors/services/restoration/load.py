"""Step 1: the rows a restoration works on, read under their locks. The protocol's only querying reads.

A batch reads the tasks, the checkpoints and the likely conversations in a
fixed number of queries (conversations of live rows are checked by the
database, never read), so the work per supervisor is Python, not round trips.
``plan`` and ``validate`` then never query; the one exception is
``Histories.get``, which reads a checkpoint's conversation the batch did not
expect to need (a checkpoint expected to apply turned out broken).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from supervisors.enums import RecoveryAction
from supervisors.models import Contract, SupervisorCheckpoint, SupervisorState
from supervisors.services.checkpoints import checkpoint_snapshot
from supervisors.services.conversations import snapshot_histories
from supervisors.services.validation import (
    AnswerFacts,
    StateValidationResult,
    ValidationWorld,
    load_answers,
    load_tasks,
    load_worlds,
    question_ids,
    state_findings,
)

from .options import RestoreOptions


class Histories:
    """Whole conversations of checkpoints, by snapshot id: prefetched per batch, read on a miss."""

    def __init__(self, known: Mapping[int, Any] | None = None) -> None:
        self._known: dict[int, Any] = dict(known or {})

    def get(self, conversation_id: int) -> Any:
        if conversation_id not in self._known:
            self._known.update(snapshot_histories([conversation_id]))
        return self._known[conversation_id]


@dataclass(frozen=True)
class Loaded:
    """What a batch restores and what it is judged against: locked rows, their worlds and checkpoints."""

    supervisors: tuple[SupervisorState, ...]
    worlds: Mapping[uuid.UUID, ValidationWorld]
    checkpoints: Mapping[uuid.UUID, list[SupervisorCheckpoint]] = field(default_factory=dict)
    histories: Histories = field(default_factory=Histories)


def lock_supervisor(contract_id: uuid.UUID) -> SupervisorState | None:
    """The contract's supervisor row, locked, with its contract and task (and the task's daemon) loaded."""
    return (
        SupervisorState.objects.select_for_update(of=("self",))
        .select_related("contract", "task", "task__daemon")
        .filter(contract_id=contract_id)
        .first()
    )


def lock_contract(contract_id: uuid.UUID) -> Contract | None:
    """The contract, locked: two restorations of a contract without state must not both create one."""
    return Contract.objects.select_for_update().filter(id=contract_id).first()


def worlds(supervisors: Sequence[SupervisorState]) -> Loaded:
    """The validation world of each locked supervisor (contract, tasks), in at most three queries."""
    return Loaded(supervisors=tuple(supervisors), worlds=load_worlds(supervisors, unacknowledged=True))


def checkpoints(loaded: Loaded, verdicts: Mapping[uuid.UUID, StateValidationResult], options: RestoreOptions) -> Loaded:
    """Add the checkpoints of the supervisors that may need one, their tasks and their likely conversations."""
    need = [
        s.id
        for s in loaded.supervisors
        if options.wants_checkpoint or verdicts[s.id].recovery_action == RecoveryAction.USE_CHECKPOINT
    ]
    by_supervisor = _checkpoints_of(need)
    _add_checkpoint_tasks(loaded.worlds, by_supervisor)
    _add_checkpoint_answers(loaded, by_supervisor)
    contract_ids = {s.id: s.contract_id for s in loaded.supervisors}
    histories = _likely_histories(need, loaded.worlds, by_supervisor, contract_ids, options.checkpoint_id)
    return replace(loaded, checkpoints=by_supervisor, histories=Histories(histories))


def state_without_conversation(checkpoint: SupervisorCheckpoint) -> dict[str, Any]:
    """A checkpoint's state columns, without reading its conversation (no query)."""
    detached = copy.copy(checkpoint)
    detached.conversation_id = None
    data = checkpoint_snapshot(detached)
    del data["conversation_history"]
    return data


def checkpoint_world(checkpoint: SupervisorCheckpoint) -> tuple[SupervisorState, ValidationWorld, dict[str, Any]]:
    """For judging one checkpoint: its supervisor (no lock), the world, and what it would put back."""
    supervisor = (
        SupervisorState.objects.select_related("contract")
        .defer("conversation_history")
        .get(id=checkpoint.supervisor_id)
    )
    world = load_worlds([supervisor])[supervisor.id]
    fields = checkpoint_snapshot(checkpoint)
    missing = set(fields["spawned_task_ids"]) | set(fields["pending_task_ids"])
    world.tasks.update(load_tasks(missing - world.tasks.keys()))  # type: ignore[attr-defined]
    extra = question_ids(fields["pending_questions"]) - question_ids(supervisor.pending_questions)
    world.answers.update(load_answers({supervisor.id: extra}, unacknowledged=False).get(supervisor.id, {}))
    return supervisor, world, fields


def questions_row(contract_id: uuid.UUID) -> SupervisorState | None:
    """The supervisor's pending questions, locked (for re-delivering them on their own)."""
    return (
        SupervisorState.objects.select_for_update()
        .only("id", "contract_id", "pending_questions")
        .filter(contract_id=contract_id)
        .first()
    )


def answers_of(supervisor: SupervisorState) -> dict[str, AnswerFacts]:
    """The supervisor's answers that matter to its pending questions (and those not acknowledged)."""
    return load_answers({supervisor.id: question_ids(supervisor.pending_questions)}).get(supervisor.id, {})


def _checkpoints_of(supervisor_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[SupervisorCheckpoint]]:
    """Every checkpoint of these supervisors, newest first, in one query (conversations not read)."""
    by_supervisor: dict[uuid.UUID, list[SupervisorCheckpoint]] = {s: [] for s in supervisor_ids}
    if supervisor_ids:
        for checkpoint in SupervisorCheckpoint.objects.filter(supervisor_id__in=supervisor_ids).order_by("-id"):
            by_supervisor[checkpoint.supervisor_id].append(checkpoint)
    return by_supervisor


def _add_checkpoint_tasks(
    worlds: Mapping[uuid.UUID, ValidationWorld], checkpoints: Mapping[uuid.UUID, list[SupervisorCheckpoint]]
) -> None:
    """Load the tasks checkpoints refer to that the live states did not (one query, usually none)."""
    if not worlds:
        return
    tasks = next(iter(worlds.values())).tasks
    wanted: set[uuid.UUID] = set()
    for items in checkpoints.values():
        for checkpoint in items:
            wanted.update(checkpoint.spawned_task_ids or [])
            wanted.update(checkpoint.pending_task_ids or [])
    missing = wanted - tasks.keys()
    if missing:
        tasks.update(load_tasks(missing))  # type: ignore[attr-defined]


def _add_checkpoint_answers(loaded: Loaded, checkpoints: Mapping[uuid.UUID, list[SupervisorCheckpoint]]) -> None:
    """Answers to questions only checkpoints carry (one query, usually none): restoring one must not re-ask them."""
    live = {s.id: question_ids(s.pending_questions) for s in loaded.supervisors}
    wanted = {}
    for supervisor_id, items in checkpoints.items():
        extra = set().union(*(question_ids(c.pending_questions) for c in items)) - live.get(supervisor_id, set())
        if extra:
            wanted[supervisor_id] = extra
    for supervisor_id, answers in load_answers(wanted, unacknowledged=False).items():
        loaded.worlds[supervisor_id].answers.update(answers)


def _likely_histories(
    need: Sequence[uuid.UUID],
    worlds: Mapping[uuid.UUID, ValidationWorld],
    checkpoints: Mapping[uuid.UUID, list[SupervisorCheckpoint]],
    contract_ids: Mapping[uuid.UUID, uuid.UUID],
    wanted_id: int | None,
) -> dict[int, Any]:
    """The whole conversations of the checkpoints the batch will most likely apply, in two queries.

    For each supervisor, the newest checkpoint whose state (all but the
    conversation) validates, or the one asked for. Only those conversations
    are read: a supervisor with 20 checkpoints costs one conversation, not 20.
    """
    snapshot_ids = set()
    for supervisor_id in need:
        for checkpoint in checkpoints.get(supervisor_id, []):
            if wanted_id is not None and checkpoint.id != wanted_id:
                continue
            issues, _ = state_findings(
                state_without_conversation(checkpoint), worlds[supervisor_id], contract_id=contract_ids[supervisor_id]
            )
            if wanted_id is not None or not issues:
                if checkpoint.conversation_id is not None:
                    snapshot_ids.add(checkpoint.conversation_id)
                break
    return snapshot_histories(snapshot_ids)
