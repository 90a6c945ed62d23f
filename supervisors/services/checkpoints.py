"""Checkpoints: a snapshot of a supervisor's state at each save point but the heartbeat.

How storage stays bounded
-------------------------
* Retention: at most ``SUPERVISOR_CHECKPOINT_RETENTION`` (default 20)
  checkpoints per supervisor; older ones are pruned in the same transaction
  that takes a new one, except the newest checkpoint that is self-consistent
  (see :func:`checkpoint_issues`), which is kept even when it is older, so a
  run of bad saves can never prune the last good state away.
* The conversation history is not copied into each checkpoint. It lives in a
  :class:`ConversationSnapshot` keyed by (supervisor, digest of the history),
  and checkpoints point at it. Most save points (task spawned, question asked
  or answered, phase changed) do not change the history, so their checkpoints
  share one snapshot. Snapshots that no retained checkpoint refers to are
  deleted with the pruning. Storage per supervisor is therefore at most
  ``retention x (small state row) + D x (history size)``, where D is the
  number of *distinct* histories among the retained checkpoints (D <= retention,
  and typically 1 or 2), independent of how many checkpoints were ever taken.
* The digest is computed by the database from the stored column, and a new
  snapshot is written with ``INSERT ... SELECT`` from the supervisor's row: the
  history never travels to Python to take a checkpoint, so a save point on a
  supervisor with a 5 MB conversation moves kilobytes, not megabytes.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from supervisors import validators
from supervisors.enums import SavePoint, SupervisorStatus
from supervisors.models import RestorationLog, SupervisorCheckpoint, SupervisorState
from supervisors.validators import validate_pending_questions

from .conversations import collect_unused_snapshots, snapshot_messages, snapshot_of_current_history
from .hot_cursor import hot_cursor

#: The state columns a checkpoint copies (the conversation goes through a snapshot).
CHECKPOINT_FIELDS = (
    "state",
    "phase",
    "current_activity",
    "progress",
    "error_message",
    "spawned_task_ids",
    "pending_task_ids",
    "pending_questions",
)


def retention() -> int:
    return max(1, int(getattr(settings, "SUPERVISOR_CHECKPOINT_RETENTION", 20)))


#: ``SupervisorStatus.values`` builds a new list at each access.
_STATES = tuple(SupervisorStatus.values)

#: Columns the new checkpoint hands back (its task id lists stay in the database).
_RETURNED = ("id", "state", "phase", "current_activity", "progress", "error_message", "pending_questions")


def _task_facts_sql() -> str:
    """SQL over a checkpoint row: (pending tasks all spawned?, number of pending tasks)."""
    if connection.vendor == "postgresql":
        # EXCEPT hashes; ``<@`` on arrays compares every pair (quadratic in the task count).
        return (
            "NOT EXISTS (SELECT unnest(pending_task_ids) EXCEPT SELECT unnest(spawned_task_ids)), "
            "cardinality(pending_task_ids)"
        )
    return (
        "NOT EXISTS (SELECT 1 FROM json_each(pending_task_ids) p "
        "WHERE p.value NOT IN (SELECT q.value FROM json_each(spawned_task_ids) q)), "
        "json_array_length(pending_task_ids)"
    )


def take_checkpoint(supervisor: SupervisorState, reason: SavePoint | str) -> SupervisorCheckpoint:
    """Store the supervisor's state as it is now, with the save point as reason, and prune.

    Call it inside the save point's transaction, after the row is written and
    while its lock is held: the checkpoint then shows exactly what the save
    point committed, or nothing if it rolls back. The state is copied by the
    database from the row (``INSERT ... SELECT``), not from ``supervisor``: the
    conversation and the task id lists, which grow with the supervisor's life,
    never travel to Python and back. The returned checkpoint has its task id
    lists deferred (read on first access).
    """
    if reason == SavePoint.HEARTBEAT:
        raise ValueError("Heartbeats do not take checkpoints.")
    snapshot_id = snapshot_of_current_history(supervisor)
    columns = ", ".join(CHECKPOINT_FIELDS)
    now = timezone.now()
    created_at = SupervisorCheckpoint._meta.get_field("created_at").get_db_prep_value(now, connection)
    pk = SupervisorState._meta.pk.get_db_prep_value(supervisor.pk, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SupervisorCheckpoint._meta.db_table} "
            f"(supervisor_id, reason, created_at, conversation_id, {columns}) "
            f"SELECT id, %s, %s, %s, {columns} FROM {SupervisorState._meta.db_table} WHERE id = %s "
            f"RETURNING {', '.join(_RETURNED)}, {_task_facts_sql()}",
            [str(reason), created_at, snapshot_id, pk],
        )
        *values, pending_all_spawned, pending_count = cursor.fetchone()
    data = dict(zip(_RETURNED, values, strict=True))
    if isinstance(data["pending_questions"], str):
        data["pending_questions"] = json.loads(data["pending_questions"])
    names = [*_RETURNED, "supervisor_id", "reason", "created_at", "conversation_id"]
    checkpoint = SupervisorCheckpoint.from_db(
        connection.alias, names, [*data.values(), supervisor.pk, str(reason), now, snapshot_id]
    )
    issues = _issues(
        data["state"], data["progress"], data["pending_questions"], bool(pending_all_spawned), pending_count
    )
    prune_checkpoints(supervisor, newest_is_consistent=not issues)
    return checkpoint


def _issues(
    state: Any, progress: Any, questions: Any, pending_all_spawned: bool | list[str], pending_count: int
) -> list[str]:
    issues: list[str] = []
    if state not in _STATES:
        issues.append(f"state: unknown value {state!r}")
    if isinstance(progress, bool) or not isinstance(progress, int) or not 0 <= progress <= 100:
        issues.append(f"progress: {progress!r} is outside 0..100")
    try:
        validate_pending_questions(questions)
    except ValidationError as exc:
        issues.append(f"pending_questions: {'; '.join(exc.messages)}")
    if isinstance(pending_all_spawned, list):
        if pending_all_spawned:
            issues.append(f"pending_task_ids: never spawned: {', '.join(pending_all_spawned)}")
    elif not pending_all_spawned:
        issues.append("pending_task_ids: some were never spawned")
    if state == SupervisorStatus.WAITING_FOR_USER and not questions:
        issues.append("state: waiting_for_user with no pending question")
    if state == SupervisorStatus.WAITING_FOR_TASKS and not pending_count:
        issues.append("state: waiting_for_tasks with no pending task")
    return issues


def checkpoint_issues(checkpoint: SupervisorCheckpoint | dict[str, Any]) -> list[str]:
    """What makes a checkpoint's own state inconsistent, without looking at the world.

    These are the findings of the restoration's decision table that depend on
    the checkpoint alone (a state value, a progress, the questions, pending
    tasks that were never spawned, a waiting state with nothing to wait for).
    Whether its tasks still exist is the restoration's business at the time it
    is used; pruning relies on this to keep the newest good checkpoint.
    """
    data = checkpoint if isinstance(checkpoint, dict) else {f: getattr(checkpoint, f) for f in CHECKPOINT_FIELDS}
    spawned = set(data["spawned_task_ids"] or [])
    pending = list(data["pending_task_ids"] or [])
    never = [str(t) for t in pending if t not in spawned]
    return _issues(data["state"], data["progress"], data["pending_questions"], never, len(pending))


_CHECKPOINTS = SupervisorCheckpoint._meta.db_table
_LOGS = RestorationLog._meta.db_table

#: PostgreSQL: prune in one statement. The boundary is the ``retention()``-th newest checkpoint
#: (``skip``: retention - 1 rows); older ones go but ``protected`` (0: none), the restoration logs
#: pointing at them are unlinked (SET_NULL; Django's foreign keys are checked at commit), and the answer
#: is (checkpoints deleted, how many of them held a snapshot that no kept checkpoint holds). The outer
#: SELECT sees the table as before the delete, hence the kept ones named by id.
_PRUNE_SQL = (
    f"WITH boundary AS (SELECT id FROM {_CHECKPOINTS} WHERE supervisor_id = %(supervisor)s "
    f"ORDER BY id DESC OFFSET %(skip)s LIMIT 1), "
    f"unlinked AS (UPDATE {_LOGS} SET checkpoint_id = NULL WHERE supervisor_id = %(supervisor)s "
    f"AND checkpoint_id < (SELECT id FROM boundary) AND checkpoint_id <> %(protected)s), "
    f"gone AS (DELETE FROM {_CHECKPOINTS} WHERE supervisor_id = %(supervisor)s "
    f"AND id < (SELECT id FROM boundary) AND id <> %(protected)s RETURNING conversation_id) "
    f"SELECT count(*), count(*) FILTER (WHERE g.conversation_id IS NOT NULL AND NOT EXISTS ("
    f"SELECT 1 FROM {_CHECKPOINTS} k WHERE k.supervisor_id = %(supervisor)s AND k.conversation_id = g.conversation_id "
    f"AND (k.id >= (SELECT id FROM boundary) OR k.id = %(protected)s))) FROM gone g"
)

#: PostgreSQL: a checkpoint whose questions are not an array of at most MAX_PENDING_QUESTIONS cannot be
#: consistent (validate_pending_questions refuses it before looking at an element), so the search for the
#: newest consistent one skips it in the database instead of decoding and checking its JSON.
_PLAUSIBLE_SQL = (
    "CASE WHEN jsonb_typeof(pending_questions) = 'array' THEN jsonb_array_length(pending_questions) <= %s "
    "ELSE false END"
)


def prune_checkpoints(supervisor: SupervisorState, *, newest_is_consistent: bool = False) -> int:
    """Keep the newest ``retention()`` checkpoints and the newest self-consistent one; returns how many went.

    A bounded number of small queries whatever the history. When the
    checkpoint just taken is known to be consistent (``newest_is_consistent``,
    the usual case) nothing else is read; otherwise checkpoints are searched
    newest first for the newest consistent one, which is kept even outside the
    window. On PostgreSQL the window's boundary, the restoration logs'
    unlinking and the delete are then one statement (:data:`_PRUNE_SQL`), which
    is all a usual save point pays for pruning. Snapshots are collected only
    when a pruned checkpoint held one that no kept checkpoint holds: most save
    points share the conversation snapshot of the checkpoints before them, so
    pruning one frees nothing.
    """
    keep = retention()
    pk = SupervisorState._meta.pk.get_db_prep_value(supervisor.pk, connection)
    if connection.vendor == "postgresql":
        protected = 0 if newest_is_consistent else _newest_consistent_id(supervisor, keep)
        with hot_cursor() as cursor:
            cursor.execute(_PRUNE_SQL, {"supervisor": pk, "skip": keep - 1, "protected": protected})
            deleted, freeing = cursor.fetchone()
        if freeing:
            collect_unused_snapshots(supervisor)
        return deleted
    window = list(
        SupervisorCheckpoint.objects.filter(supervisor=supervisor)
        .order_by("-id")
        .values_list("id", flat=True)[: keep + 1]
    )
    if len(window) <= keep:
        return 0
    boundary = window[keep - 1]
    protected = 0 if newest_is_consistent else _newest_consistent_id(supervisor, keep)
    # Restoration logs keep their row but lose the link to a pruned checkpoint
    # (SET_NULL). Both statements are plain SQL on purpose: Django's deletion
    # collector would first read every doomed row.
    RestorationLog.objects.filter(supervisor=supervisor, checkpoint_id__lt=boundary).exclude(
        checkpoint_id=protected
    ).update(checkpoint=None)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {_CHECKPOINTS} WHERE supervisor_id = %s AND id < %s AND id <> %s RETURNING conversation_id",
            [pk, boundary, protected],
        )
        held = [row[0] for row in cursor.fetchall()]
    snapshots = {snapshot_id for snapshot_id in held if snapshot_id is not None}
    kept = SupervisorCheckpoint.objects.filter(supervisor=supervisor, conversation_id__in=snapshots)
    if snapshots and len(snapshots) > kept.values("conversation_id").distinct().count():
        collect_unused_snapshots(supervisor)
    return len(held)


def _newest_consistent_id(supervisor: SupervisorState, chunk: int) -> int:
    """The id of the supervisor's newest self-consistent checkpoint; 0 (no checkpoint has it) when none is."""
    candidates = SupervisorCheckpoint.objects.filter(supervisor=supervisor)
    if connection.vendor == "postgresql":
        plausible = RawSQL(_PLAUSIBLE_SQL, [validators.MAX_PENDING_QUESTIONS], output_field=BooleanField())
        candidates = candidates.alias(plausible=plausible).filter(plausible=True)
    for row in candidates.order_by("-id").values("id", *CHECKPOINT_FIELDS).iterator(chunk_size=chunk):
        if not checkpoint_issues(row):
            return row["id"]
    return 0


def checkpoint_snapshot(checkpoint: SupervisorCheckpoint) -> dict[str, Any]:
    """What restoring from this checkpoint would put back: the state columns and the conversation."""
    data = {field: getattr(checkpoint, field) for field in CHECKPOINT_FIELDS}
    data["spawned_task_ids"] = list(data["spawned_task_ids"] or [])
    data["pending_task_ids"] = list(data["pending_task_ids"] or [])
    data["pending_questions"] = list(data["pending_questions"] or [])
    if checkpoint.conversation_id is None:
        data["conversation_history"] = []
    else:
        data["conversation_history"] = snapshot_messages(checkpoint.conversation_id)
    return data
