"""A claim whose database connection breaks mid-write takes nothing and says so (an error, not a 200).

A savepoint isolates one supervisor's failed write only while the connection
lives: once it broke, Django marks the whole transaction for rollback, and a
claim that went on would answer "claimed" or "failed" for supervisors it never
touched, while they stay orphaned for another daemon to claim (found by the
soak with connections killed every 2 s). The connection is killed for real,
from a second connection, in the middle of the claim's write.
"""

from __future__ import annotations

import psycopg
import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from supervisors.enums import DaemonStatus
from supervisors.models import RestorationLog, SupervisorState, Task
from supervisors.services.actors import Actor
from supervisors.services.claims import claim_orphaned_supervisors
from supervisors.services.restoration import write
from supervisors.services.world import record_daemon_heartbeat
from tests.factories import make_contract, make_daemon, make_supervisor

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


def kill_this_connection() -> None:
    """Terminate the service's own backend from another connection, as an operator or a pooler would."""
    pid = connection.connection.info.backend_pid
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"], autocommit=True
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.parametrize("breaks", ["batch write", "each supervisor's retry"])
def test_a_claim_whose_connection_breaks_mid_write_raises_and_takes_nothing(monkeypatch, breaks):
    crashed = make_daemon("crashed", status=DaemonStatus.DISCONNECTED, last_heartbeat_at=timezone.now())  # it left
    claimer = make_daemon("claimer")
    record_daemon_heartbeat(claimer.id)
    orphans = [make_supervisor(make_contract(f"orphan {n}"), daemon=crashed, state="working") for n in range(3)]
    original = write.update_supervisor_rows
    calls = []

    def breaking(changes):
        calls.append(len(changes))
        # The batch write fails on its own first (a row-level error), then the connection goes; or it goes at once.
        if breaks == "batch write" or len(calls) > 1:
            kill_this_connection()
        elif len(calls) == 1:
            raise DatabaseError("one bad row")
        return original(changes)

    monkeypatch.setattr(write, "update_supervisor_rows", breaking)
    with pytest.raises(DatabaseError):
        claim_orphaned_supervisors(claimer.id, capacity=5, actor=Actor.for_daemon(claimer))
    connection.close()  # the broken connection; the next query opens a new one

    assert calls, "the claim reached its write"
    for orphan in orphans:
        row = SupervisorState.objects.get(pk=orphan.pk)
        assert row.restoration_count == 0
        assert Task.objects.get(pk=orphan.task_id).daemon_id == crashed.id  # still orphaned: nobody took it
    assert not RestorationLog.objects.filter(success=True).exists()
