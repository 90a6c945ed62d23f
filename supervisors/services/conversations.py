"""Where checkpoints keep conversation histories: each message stored about once.

A supervisor's conversation mostly grows at the end, and can weigh megabytes.
Copying it into every checkpoint would make checkpoint storage grow as
(checkpoints x history size). Instead:

* A :class:`ConversationSnapshot` is keyed by (supervisor, digest of the whole
  history): checkpoints taken while the history does not change share one.
* A history whose first ``k`` messages are exactly the history of the previous
  snapshot (checked by digest, in the database) is stored as a *tail*: the new
  messages only, with ``parent`` and ``base_count = k``. The whole history is
  the parent's whole history followed by the tail.
* When pruning leaves a snapshot that no checkpoint uses, it is deleted if
  nothing builds on it, and merged into its only child if it is a tail
  (rewriting two small tails, never the base). What stays is the retained
  checkpoints' snapshots plus at most the root each chain started from, so a
  chain is at most ``retention + 1`` long, and a conversation that only grows
  is stored about once (root + tails = the newest history), whatever the
  number of checkpoints. A history that was rewritten (not extended) starts a
  new root; the old chain goes as its checkpoints are pruned.

Everything heavy happens in SQL on the supervisor's row (digests, the tail,
the copy): the history is not loaded into Python to take a checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.utils import timezone

from supervisors.models import ConversationSnapshot, SupervisorCheckpoint, SupervisorState

from .hot_cursor import hot_cursor

_SNAPSHOTS = ConversationSnapshot._meta.db_table
_STATES = SupervisorState._meta.db_table


def _pk(supervisor: SupervisorState) -> Any:
    return SupervisorState._meta.pk.get_db_prep_value(supervisor.pk, connection)


def _sql() -> dict[str, str]:
    """Vendor SQL over ``conversation_history``; ``%s`` in ``prefix`` and ``tail`` is a message count."""
    if connection.vendor == "postgresql":
        elements = "jsonb_array_elements(conversation_history) WITH ORDINALITY AS m(e, i)"
        return {
            "digest": "encode(sha256(convert_to(conversation_history::text, 'UTF8')), 'hex')",
            "version": "xmin::text",
            "count": (
                "CASE WHEN jsonb_typeof(conversation_history) = 'array' "
                "THEN jsonb_array_length(conversation_history) ELSE -1 END"
            ),
            "prefix_digest": (
                "encode(sha256(convert_to((SELECT COALESCE(jsonb_agg(e ORDER BY i), '[]'::jsonb) "
                f"FROM {elements} WHERE i <= %s)::text, 'UTF8')), 'hex')"
            ),
            "tail": f"(SELECT COALESCE(jsonb_agg(e ORDER BY i), '[]'::jsonb) FROM {elements} WHERE i > %s)",
            "size": "octet_length({}::text)",
        }
    # SQLite: json() and json_group_array() both write minified JSON, so a
    # prefix built from the elements hashes like the same history stored whole.
    return {
        "digest": "SHA256(json(conversation_history))",
        "version": "NULL",
        "count": (
            "CASE WHEN json_type(conversation_history) = 'array' "
            "THEN json_array_length(conversation_history) ELSE -1 END"
        ),
        "prefix_digest": (
            "SHA256((SELECT json_group_array(value) FROM json_each(conversation_history) WHERE key < %s))"
        ),
        "tail": "(SELECT json_group_array(value) FROM json_each(conversation_history) WHERE key >= %s)",
        "size": "length(CAST({} AS BLOB))",
    }


def _lookup_sql() -> str:
    """One row of the supervisor's: the history's digest and length, the snapshot with that digest, the version."""
    sql = _sql()
    return (
        f"SELECT d.digest, d.n, (SELECT s.id FROM {_SNAPSHOTS} s WHERE s.supervisor_id = d.id "
        f"AND s.digest = d.digest), d.version FROM (SELECT id, {sql['digest']} AS digest, "
        f"{sql['count']} AS n, {sql['version']} AS version FROM {_STATES} WHERE id = %s) d"
    )


def snapshot_of_current_history(supervisor: SupervisorState) -> int:
    """The id of a snapshot holding the supervisor's current history, stored if it is new.

    Run it under the supervisor's row lock (the save point's transaction), so
    the history cannot change between the digest and the copy. Queries: one
    when the history is unchanged (the usual save point: the digest and the
    snapshot having it are looked up in one fixed statement), up to four when
    it changed. The same statement reads the row's version (PostgreSQL's
    ``xmin``, after the save point's write) and leaves it on ``supervisor`` for
    its ETag (:func:`~.state.state_version`), which would otherwise cost a
    query of its own.
    """
    sql = _sql()
    pk = _pk(supervisor)
    with hot_cursor() as cursor:
        cursor.execute(_lookup_sql(), [pk])
        digest, count, found, version = cursor.fetchone()
    if version is not None:
        supervisor.__dict__["row_xmin"] = version
    if found is not None:
        return found
    with connection.cursor() as cursor:
        parent = (
            SupervisorCheckpoint.objects.filter(supervisor=supervisor, conversation__isnull=False)
            .order_by("-id")
            .values_list("conversation_id", "conversation__message_count", "conversation__digest")
            .first()
        )
        base = 0
        if parent is not None and 0 < parent[1] < count:
            cursor.execute(f"SELECT {sql['prefix_digest']} FROM {_STATES} WHERE id = %s", [parent[1], pk])
            if cursor.fetchone()[0] == parent[2]:
                base = parent[1]
        now = timezone.now()
        created_at = ConversationSnapshot._meta.get_field("created_at").get_db_prep_value(now, connection)
        columns = "supervisor_id, digest, message_count, created_at, parent_id, base_count, messages, size_bytes"
        if base:
            cursor.execute(
                f"WITH t AS (SELECT {sql['tail']} AS tail FROM {_STATES} WHERE id = %s) "
                f"INSERT INTO {_SNAPSHOTS} ({columns}) "
                f"SELECT %s, %s, %s, %s, %s, %s, tail, {sql['size'].format('tail')} FROM t",
                [base, pk, pk, digest, count, created_at, parent[0], base],
            )
        else:
            cursor.execute(
                f"INSERT INTO {_SNAPSHOTS} ({columns}) "
                f"SELECT id, %s, %s, %s, NULL, 0, conversation_history, {sql['size'].format('conversation_history')} "
                f"FROM {_STATES} WHERE id = %s",
                [digest, max(count, 0), created_at, pk],
            )
    return ConversationSnapshot.objects.filter(supervisor=supervisor, digest=digest).values_list("id", flat=True)[0]


def snapshot_messages(snapshot_id: int) -> Any:
    """The whole history a snapshot stands for: its ancestors' messages, then its own.

    Read histories through this (or :func:`snapshot_histories` for many), never
    through ``ConversationSnapshot.messages``, which holds only the tail when
    the snapshot has a ``parent``.
    """
    return snapshot_histories([snapshot_id])[snapshot_id]


def snapshot_histories(snapshot_ids: Iterable[int]) -> dict[int, Any]:
    """Whole histories of many snapshots in two queries, however many and however deep.

    One recursive query finds every ancestor id, one reads their messages;
    shared ancestors are read once. For batch restoration.
    """
    wanted = sorted(set(snapshot_ids))
    if not wanted:
        return {}
    placeholders = ", ".join(["%s"] * len(wanted))
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH RECURSIVE chain(id, parent_id) AS ("
            f"SELECT id, parent_id FROM {_SNAPSHOTS} WHERE id IN ({placeholders}) "
            f"UNION SELECT s.id, s.parent_id FROM {_SNAPSHOTS} s JOIN chain c ON s.id = c.parent_id"
            f") SELECT id FROM chain",
            wanted,
        )
        ids = [row[0] for row in cursor.fetchall()]
    rows = {
        sid: (parent_id, messages)
        for sid, parent_id, messages in ConversationSnapshot.objects.filter(id__in=ids).values_list(
            "id", "parent_id", "messages"
        )
    }
    histories: dict[int, Any] = {}
    for sid in wanted:
        if sid not in rows:
            raise ConversationSnapshot.DoesNotExist(f"Conversation snapshot {sid} does not exist.")
        parts: list[Any] = []
        next_id: int | None = sid
        while next_id is not None:
            parent_id, messages = rows[next_id]
            parts.append(messages)
            next_id = parent_id
        # A root is returned as stored (even if makima stored something that is not a list).
        histories[sid] = parts[0] if len(parts) == 1 else [m for part in reversed(parts) for m in part]
    return histories


def collect_unused_snapshots(supervisor: SupervisorState) -> int:
    """Delete or merge away the snapshots no checkpoint uses; returns how many went.

    Reads only ids (never the messages) except for the two tails of a merge.
    A few queries when there is nothing to do; each pass removes at least one
    snapshot, and a chain is short, so the loop ends quickly.
    """
    removed = 0
    while True:
        rows = list(ConversationSnapshot.objects.filter(supervisor=supervisor).values_list("id", "parent_id"))
        used = set(
            SupervisorCheckpoint.objects.filter(supervisor=supervisor, conversation__isnull=False).values_list(
                "conversation_id", flat=True
            )
        )
        children: dict[int, list[int]] = {}
        for snapshot_id, parent_id in rows:
            if parent_id is not None:
                children.setdefault(parent_id, []).append(snapshot_id)
        parents = dict(rows)
        leaves = [sid for sid, _ in rows if sid not in used and not children.get(sid)]
        merges = [
            sid
            for sid, parent_id in rows
            if sid not in used and parent_id is not None and len(children.get(sid, [])) == 1
        ]
        if leaves:
            _delete(leaves)
            removed += len(leaves)
            continue
        if not merges:
            return removed
        for sid in merges:
            _merge_into_child(sid, children[sid][0], parents[sid])
        _delete(merges)
        removed += len(merges)


def _merge_into_child(snapshot_id: int, child_id: int, parent_id: int | None) -> None:
    """Give the child this tail's messages and parent, so this snapshot can go."""
    own = ConversationSnapshot.objects.filter(id=snapshot_id).values("messages", "base_count", "size_bytes")[0]
    child = ConversationSnapshot.objects.filter(id=child_id).values("messages", "size_bytes")[0]
    messages = [*own["messages"], *child["messages"]]
    ConversationSnapshot.objects.filter(id=child_id).update(
        messages=messages,
        parent_id=parent_id,
        base_count=own["base_count"],
        size_bytes=len(json.dumps(messages).encode()),
    )


def _delete(snapshot_ids: list[int]) -> None:
    """One DELETE: Django's collector would read each snapshot (megabytes of messages) to check its relations."""
    placeholders = ", ".join(["%s"] * len(snapshot_ids))
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {_SNAPSHOTS} WHERE id IN ({placeholders})", snapshot_ids)


def stored_bytes(supervisor: SupervisorState) -> int:
    """What the supervisor's snapshots weigh (as ``size_bytes`` counts them), for the admin and the bench."""
    return sum(ConversationSnapshot.objects.filter(supervisor=supervisor).values_list("size_bytes", flat=True))
