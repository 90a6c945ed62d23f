"""Claims raced on PostgreSQL: 20 daemons over 2,000 orphans, each claimed exactly once (SKIP LOCKED)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection
from rest_framework.test import APIClient

from supervisors.enums import DaemonStatus, TaskStatus
from supervisors.models import Contract, Daemon, RestorationLog, SupervisorState, Task
from supervisors.services.world import create_daemon_key, record_daemon_heartbeat

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

CLAIM = "/api/v1/supervisors/claim/"


def build_supervisors(daemon: Daemon, count: int, prefix: str) -> list[SupervisorState]:
    contracts = Contract.objects.bulk_create([Contract(name=f"{prefix}-{i}", phase="build") for i in range(count)])
    tasks = Task.objects.bulk_create(
        [
            Task(contract=c, name="supervisor", is_supervisor=True, daemon=daemon, status=TaskStatus.RUNNING)
            for c in contracts
        ]
    )
    return SupervisorState.objects.bulk_create(
        [
            SupervisorState(contract=c, task=t, phase="build", state="working")
            for c, t in zip(contracts, tasks, strict=True)
        ]
    )


def test_twenty_daemons_claim_two_thousand_orphans_each_exactly_once(settings):
    settings.API_THROTTLE_RATE_PER_MINUTE = 0
    dead = Daemon.objects.create(name="dead", status=DaemonStatus.DISCONNECTED)
    record_daemon_heartbeat(dead.id, status=DaemonStatus.DISCONNECTED)
    orphans = build_supervisors(dead, 2000, "orphan")
    survivor = Daemon.objects.create(name="survivor")
    record_daemon_heartbeat(survivor.id)
    alive = build_supervisors(survivor, 50, "alive")
    claimers = []
    for n in range(20):
        daemon = Daemon.objects.create(name=f"claimer-{n}")
        claimers.append((daemon, create_daemon_key(daemon.id).raw))

    barrier = threading.Barrier(len(claimers))
    got: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def claim_until_empty(daemon: Daemon, key: str) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        mine: list[str] = []
        try:
            barrier.wait(timeout=60)
            while True:
                response = client.post(CLAIM, {"capacity": 25}, format="json")
                assert response.status_code == 200, response.content
                body = response.json()
                assert body["failed"] == []
                if not body["claimed"]:
                    break
                mine.extend(c["contractId"] for c in body["claimed"])
            got[str(daemon.id)] = mine
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim_until_empty, args=c) for c in claimers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors[0]

    claimed = Counter(contract for contracts in got.values() for contract in contracts)
    assert len(claimed) == len(orphans) and set(claimed.values()) == {1}  # none twice, none left behind
    assert sum(1 for contracts in got.values() if contracts) > 1  # the claims really ran side by side
    owner_of = {contract: daemon for daemon, contracts in got.items() for contract in contracts}
    rows = SupervisorState.objects.filter(pk__in=[s.pk for s in orphans]).values_list(
        "contract_id", "restoration_count", "task__daemon_id"
    )
    for contract_id, epoch, daemon_id in rows:
        assert epoch == 1
        assert str(daemon_id) == owner_of[str(contract_id)]
    assert RestorationLog.objects.filter(supervisor__in=orphans).count() == len(orphans)
    untouched = SupervisorState.objects.filter(pk__in=[s.pk for s in alive])
    assert set(untouched.values_list("restoration_count", "task__daemon_id")) == {(0, survivor.id)}
