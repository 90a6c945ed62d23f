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

from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from supervisors.enums import SavePoint, SupervisorStatus
from supervisors.models import ConversationSnapshot, SupervisorCheckpoint, SupervisorState
from supervisors.validators import validate_pending_questions

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


def _history_digest_sql() -> str:
    if connection.vendor == "postgresql":
        return "encode(sha256(convert_to(conversation_history::text, 'UTF8')), 'hex')"
    return "SHA256(conversation_history)"


def _snapshot_insert_sql() -> str:
    table = ConversationSnapshot._meta.db_table
    source = SupervisorState._meta.db_table
    if connection.vendor == "postgresql":
        count = (
            "CASE WHEN jsonb_typeof(conversation_history) = 'array' "
            "THEN jsonb_array_length(conversation_history) ELSE 0 END"
        )
        size = "octet_length(conversation_history::text)"
    else:
        count = (
            "CASE WHEN json_type(conversation_history) = 'array' "
            "THEN json_array_length(conversation_history) ELSE 0 END"
        )
        size = "length(CAST(conversation_history AS BLOB))"
    return (
        f"INSERT INTO {table} (supervisor_id, digest, messages, message_count, size_bytes, created_at) "
        f"SELECT id, %s, conversation_history, {count}, {size}, %s FROM {source} WHERE id = %s "
        f"ON CONFLICT (supervisor_id, digest) DO NOTHING"
    )


def conversation_snapshot_id(supervisor: SupervisorState) -> int:
    """The snapshot holding the supervisor's current history, created if this history is new.

    Runs under the supervisor's row lock (the caller's transaction), so the
    history cannot change between the digest and the copy.
    """
    pk = SupervisorState._meta.pk.get_db_prep_value(supervisor.pk, connection)
    table = SupervisorState._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_history_digest_sql()} FROM {table} WHERE id = %s", [pk])
        (digest,) = cursor.fetchone()
        existing = ConversationSnapshot.objects.filter(supervisor=supervisor, digest=digest).values_list(
            "id", flat=True
        )
        found = list(existing)
        if found:
            return found[0]
        cursor.execute(_snapshot_insert_sql(), [digest, timezone.now(), pk])
    return ConversationSnapshot.objects.filter(supervisor=supervisor, digest=digest).values_list("id", flat=True)[0]


def take_checkpoint(supervisor: SupervisorState, reason: SavePoint | str) -> SupervisorCheckpoint:
    """Store the supervisor's state as it is now, with the save point as reason, and prune.

    Call it inside the save point's transaction, after the row is written and
    while its lock is held: the checkpoint then shows exactly what the save
    point committed, or nothing if it rolls back. ``supervisor`` may have its
    conversation deferred; the history is taken from the row in the database.
    """
    if reason == SavePoint.HEARTBEAT:
        raise ValueError("Heartbeats do not take checkpoints.")
    snapshot_id = conversation_snapshot_id(supervisor)
    checkpoint = SupervisorCheckpoint.objects.create(
        supervisor=supervisor,
        reason=reason,
        conversation_id=snapshot_id,
        **{field: getattr(supervisor, field) for field in CHECKPOINT_FIELDS},
    )
    prune_checkpoints(supervisor)
    return checkpoint


def checkpoint_issues(checkpoint: SupervisorCheckpoint | dict[str, Any]) -> list[str]:
    """What makes a checkpoint's own state inconsistent, without looking at the world.

    These are the findings of the restoration's decision table that depend on
    the checkpoint alone (a state value, a progress, the questions, pending
    tasks that were never spawned, a waiting state with nothing to wait for).
    Whether its tasks still exist is the restoration's business at the time it
    is used; pruning relies on this to keep the newest good checkpoint.
    """
    data = checkpoint if isinstance(checkpoint, dict) else {f: getattr(checkpoint, f) for f in CHECKPOINT_FIELDS}
    issues: list[str] = []
    if data["state"] not in SupervisorStatus.values:
        issues.append(f"state: unknown value {data['state']!r}")
    progress = data["progress"]
    if isinstance(progress, bool) or not isinstance(progress, int) or not 0 <= progress <= 100:
        issues.append(f"progress: {progress!r} is outside 0..100")
    try:
        validate_pending_questions(data["pending_questions"])
    except Exception as exc:  # ValidationError: the message is the issue
        issues.append(f"pending_questions: {'; '.join(getattr(exc, 'messages', [str(exc)]))}")
    spawned = set(data["spawned_task_ids"] or [])
    never = [str(t) for t in data["pending_task_ids"] or [] if t not in spawned]
    if never:
        issues.append(f"pending_task_ids: never spawned: {', '.join(never)}")
    if data["state"] == SupervisorStatus.WAITING_FOR_USER and not data["pending_questions"]:
        issues.append("state: waiting_for_user with no pending question")
    if data["state"] == SupervisorStatus.WAITING_FOR_TASKS and not data["pending_task_ids"]:
        issues.append("state: waiting_for_tasks with no pending task")
    return issues


def prune_checkpoints(supervisor: SupervisorState) -> int:
    """Keep the newest ``retention()`` checkpoints and the newest self-consistent one; returns how many went.

    Costs a bounded number of queries: one for the ids beyond the window and,
    only when none inside it is consistent, a scan for the newest one that is.
    """
    keep = retention()
    newest = list(
        SupervisorCheckpoint.objects.filter(supervisor=supervisor)
        .order_by("-id")
        .values_list("id", flat=True)[: keep + 1]
    )
    if len(newest) <= keep:
        return 0
    window = newest[:keep]
    boundary = window[-1]
    protected: int | None = None
    fields = ("id", *CHECKPOINT_FIELDS)
    window_rows = SupervisorCheckpoint.objects.filter(id__in=window).order_by("-id").values(*fields)
    if not any(not checkpoint_issues(row) for row in window_rows):
        older = SupervisorCheckpoint.objects.filter(supervisor=supervisor, id__lt=boundary).order_by("-id")
        for row in older.values(*fields).iterator(chunk_size=50):
            if not checkpoint_issues(row):
                protected = row["id"]
                break
    doomed = SupervisorCheckpoint.objects.filter(supervisor=supervisor, id__lt=boundary)
    if protected is not None:
        doomed = doomed.exclude(id=protected)
    deleted, _ = doomed.delete()
    delete_unused_snapshots(supervisor)
    return deleted


def delete_unused_snapshots(supervisor: SupervisorState) -> None:
    """Drop the conversations no checkpoint refers to any more, without loading them.

    One DELETE: going through the ORM would fetch each snapshot (megabytes of
    messages) just to check its PROTECT relation.
    """
    snapshots = ConversationSnapshot._meta.db_table
    checkpoints = SupervisorCheckpoint._meta.db_table
    pk = SupervisorState._meta.pk.get_db_prep_value(supervisor.pk, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {snapshots} WHERE supervisor_id = %s AND NOT EXISTS "
            f"(SELECT 1 FROM {checkpoints} c WHERE c.conversation_id = {snapshots}.id)",
            [pk],
        )


def checkpoint_snapshot(checkpoint: SupervisorCheckpoint) -> dict[str, Any]:
    """What restoring from this checkpoint would put back: the state columns and the conversation."""
    data = {field: getattr(checkpoint, field) for field in CHECKPOINT_FIELDS}
    data["spawned_task_ids"] = list(data["spawned_task_ids"] or [])
    data["pending_task_ids"] = list(data["pending_task_ids"] or [])
    data["pending_questions"] = list(data["pending_questions"] or [])
    if checkpoint.conversation_id is None:
        data["conversation_history"] = []
    else:
        messages = ConversationSnapshot.objects.filter(id=checkpoint.conversation_id).values_list(
            "messages", flat=True
        )[0]
        data["conversation_history"] = messages
    return data
