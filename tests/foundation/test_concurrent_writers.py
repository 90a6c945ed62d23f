"""Two writers at once wait for each other instead of failing or losing an update.

On SQLite this is what IMMEDIATE transactions, the busy timeout and WAL buy;
on PostgreSQL, the row lock.
"""

from __future__ import annotations

import threading

import pytest
from django.db import close_old_connections, connection, transaction

from supervisors.models import SupervisorState
from tests.factories import make_supervisor

WRITERS = 6
WRITES_EACH = 10


@pytest.mark.django_db(transaction=True)
def test_concurrent_read_modify_writes_all_land():
    supervisor = make_supervisor()
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer() -> None:
        try:
            start.wait()
            for _ in range(WRITES_EACH):
                with transaction.atomic():
                    row = SupervisorState.objects.select_for_update().only("restoration_count").get(pk=supervisor.pk)
                    row.restoration_count += 1
                    row.save(update_fields=["restoration_count"])
        except BaseException as exc:  # reported below, with its type
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    close_old_connections()
    assert errors == []
    supervisor.refresh_from_db()
    assert supervisor.restoration_count == WRITERS * WRITES_EACH
