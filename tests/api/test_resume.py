"""resume: the restoration context, idempotency, takeover of a gone daemon's supervisor, concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from supervisors.enums import DaemonStatus
from supervisors.models import Daemon, IdempotencyKey, RestorationLog, SupervisorState
from tests.api.conftest import url
from tests.factories import make_question

pytestmark = pytest.mark.django_db

HISTORY = [{"role": "user", "content": "hello", "meta_data": {"snake_key": 1}}]


def resume(client, contract_id, source="daemon_restart", key=None, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(url(contract_id, "resume/"), {"source": source, **extra}, format="json", **headers)


def test_resume_returns_the_restoration_context(alpha, supervisor):
    question = make_question()
    SupervisorState.objects.filter(pk=supervisor.pk).update(
        state="waiting_for_user", conversation_history=HISTORY, pending_questions=[question]
    )
    response = resume(alpha.client, supervisor.contract_id, reason="daemon rebooted")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    assert body["previousState"] == "waiting_for_user"
    assert body["conversationHistory"] == HISTORY
    assert [q["id"] for q in body["pendingQuestions"]] == [question["id"]]
    assert body["restorationCount"] == 1
    assert body["recoveryAction"] == "Proceed"
    assert isinstance(body["restorationContextMessage"], str) and body["restorationContextMessage"]
    supervisor.refresh_from_db()
    assert supervisor.restoration_source == "daemon_restart"
    log = RestorationLog.objects.get(supervisor=supervisor)
    assert log.reason == "daemon rebooted" and log.actor_daemon_id == alpha.daemon.id


def test_same_idempotency_key_returns_the_first_answer_without_restoring_again(alpha, supervisor):
    first = resume(alpha.client, supervisor.contract_id, key="abc-1")
    second = resume(alpha.client, supervisor.contract_id, key="abc-1")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    supervisor.refresh_from_db()
    assert supervisor.restoration_count == 1
    assert IdempotencyKey.objects.filter(daemon=alpha.daemon, key="abc-1").count() == 1
    third = resume(alpha.client, supervisor.contract_id, key="abc-2")
    assert third.json()["restorationCount"] == 2


def test_idempotency_keys_are_per_daemon(alpha, beta, supervisor, other_supervisor):
    assert resume(alpha.client, supervisor.contract_id, key="same").status_code == 200
    assert resume(beta.client, other_supervisor.contract_id, key="same").status_code == 200
    other_supervisor.refresh_from_db()
    assert other_supervisor.restoration_count == 1


def test_reusing_a_key_for_another_request_is_409(alpha, supervisor):
    assert resume(alpha.client, supervisor.contract_id, key="k").status_code == 200
    response = resume(alpha.client, supervisor.contract_id, source="manual", key="k")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_reused"
    assert set(response.json()["fields"]) == {"Idempotency-Key"}


def test_a_second_resume_without_key_right_after_restores_again_in_a_new_epoch(alpha, supervisor):
    assert resume(alpha.client, supervisor.contract_id).json()["restorationCount"] == 1
    again = resume(alpha.client, supervisor.contract_id)
    assert again.status_code == 200
    assert again.json()["restorationCount"] == 2
    # a write still carrying the first resume's epoch is fenced off
    stale = alpha.client.post(
        url(supervisor.contract_id, "phase/"), {"phase": "testing"}, format="json", HTTP_SUPERVISOR_EPOCH="1"
    )
    assert stale.status_code == 409
    assert stale.json()["code"] == "superseded"
    supervisor.refresh_from_db()
    assert supervisor.phase != "testing"


def test_completed_supervisor_is_409(alpha, supervisor):
    SupervisorState.objects.filter(pk=supervisor.pk).update(state="completed")
    response = resume(alpha.client, supervisor.contract_id)
    assert response.status_code == 409
    supervisor.refresh_from_db()
    assert supervisor.restoration_count == 0


@pytest.mark.parametrize("body,field", [({"source": "reboot"}, "source"), ({}, "source"), ({"source": 3}, "source")])
def test_bad_source_is_400(alpha, supervisor, body, field):
    response = alpha.client.post(url(supervisor.contract_id, "resume/"), body, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_takeover_of_a_gone_daemons_supervisor_moves_the_task(alpha, beta, other_supervisor):
    Daemon.objects.filter(pk=beta.daemon.pk).update(status=DaemonStatus.DISCONNECTED)
    response = resume(alpha.client, other_supervisor.contract_id, source="task_reassignment")
    assert response.status_code == 200, response.content
    other_supervisor.task.refresh_from_db()
    assert other_supervisor.task.daemon_id == alpha.daemon.id
    assert alpha.client.get(url(other_supervisor.contract_id)).status_code == 200
    assert beta.client.get(url(other_supervisor.contract_id)).status_code == 404


def test_takeover_of_a_silent_daemons_supervisor(alpha, beta, other_supervisor, settings):
    silent_since = timezone.now() - timedelta(seconds=settings.DAEMON_GONE_AFTER_SECONDS + 5)
    Daemon.objects.filter(pk=beta.daemon.pk).update(last_heartbeat_at=silent_since)
    assert resume(alpha.client, other_supervisor.contract_id, source="task_reassignment").status_code == 200


def test_takeover_of_a_live_daemons_supervisor_is_404(alpha, beta, other_supervisor):
    assert resume(alpha.client, other_supervisor.contract_id, source="task_reassignment").status_code == 404
    assert resume(alpha.client, other_supervisor.contract_id, source="daemon_restart").status_code == 404
    other_supervisor.task.refresh_from_db()
    assert other_supervisor.task.daemon_id == beta.daemon.id


def test_staff_may_resume_manually(staff, supervisor):
    response = resume(staff, supervisor.contract_id, source="manual")
    assert response.status_code == 200
    assert RestorationLog.objects.get(supervisor=supervisor).actor_kind == "staff"


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("key", [None, "same-key"])
def test_concurrent_resumes_never_restore_twice(alpha, supervisor, key):
    """Four resumes that really overlap: all arrive while the row is locked, then race for it."""
    SupervisorState.objects.filter(pk=supervisor.pk).update(conversation_history=HISTORY * 2000)
    results: list = []
    locked, release = threading.Event(), threading.Event()

    def hold_the_row():
        try:
            with transaction.atomic():
                SupervisorState.objects.select_for_update().get(pk=supervisor.pk)
                locked.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    def worker():
        try:
            results.append(resume(alpha.client, supervisor.contract_id, key=key))
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    assert locked.wait(timeout=30)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    wait_until_backends_wait_for_a_lock(4)
    release.set()
    for thread in [holder, *threads]:
        thread.join()
    statuses = sorted(r.status_code for r in results)
    supervisor.refresh_from_db()
    assert supervisor.restoration_count == 1
    assert RestorationLog.objects.filter(supervisor=supervisor, success=True).count() == 1
    if key is not None:
        assert statuses == [200] * 4
        assert all(r.json()["restorationCount"] == 1 for r in results)
    else:
        assert statuses == [200, 409, 409, 409], [r.content for r in results]
        refused = [r.json() for r in results if r.status_code == 409]
        assert {body["code"] for body in refused} == {"restored_concurrently"}


def wait_until_backends_wait_for_a_lock(count: int) -> None:
    """Until ``count`` other sessions of this database wait on a row lock (a state, read; not a delay)."""
    for _ in range(3000):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] >= count:
                return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} sessions never waited for the row lock")


def test_a_resume_that_arrived_before_another_restoration_committed_overlapped_it(alpha, supervisor):
    """Arrival, not a time window: restored after this request arrived means the two overlapped."""
    from supervisors.services.actors import Actor
    from supervisors.services.errors import Conflict
    from supervisors.services.restoration import restore_supervisor
    from supervisors.services.resume import resume_supervisor

    arrived = timezone.now()
    restore_supervisor(supervisor.contract_id, source="manual", actor=Actor.system("test"))
    with pytest.raises(Conflict) as refused:
        resume_supervisor(
            supervisor.contract_id,
            source="daemon_restart",
            actor=Actor.for_daemon(alpha.daemon),
            render=lambda result: {},
            daemon_id=alpha.daemon.id,
            arrived_at=arrived,
        )
    assert refused.value.code == "restored_concurrently"
    assert SupervisorState.objects.get(pk=supervisor.pk).restoration_count == 1


@pytest.mark.parametrize("key", ["x" * 256, "has space", "tab\tkey"])
def test_malformed_idempotency_key_is_400(alpha, supervisor, key):
    response = resume(alpha.client, supervisor.contract_id, key=key)
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"Idempotency-Key"}
    supervisor.refresh_from_db()
    assert supervisor.restoration_count == 0


def test_resume_of_unknown_contract_is_404(alpha):
    import uuid

    assert resume(alpha.client, uuid.uuid4()).status_code == 404


def test_expired_idempotency_keys_are_dropped_and_reusable(alpha, supervisor, settings):
    from datetime import timedelta

    from django.utils import timezone

    assert resume(alpha.client, supervisor.contract_id, key="old").status_code == 200
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    again = resume(alpha.client, supervisor.contract_id, key="old")
    assert again.status_code == 200
    assert again.json()["restorationCount"] == 2
    assert IdempotencyKey.objects.filter(daemon=alpha.daemon).count() == 1


def test_a_replayed_answer_is_the_first_one_byte_for_byte_keys_in_the_same_order(alpha, supervisor):
    """PostgreSQL's jsonb sorts an object's keys; the replay must still be the answer the daemon first got."""
    supervisor.pending_questions = [make_question(text="Ship it?", context="ctx")]
    supervisor.conversation_history = [{"zeta": 1, "role": "user", "alpha": {"y": 2, "b": 1}}]
    supervisor.save()
    first = resume(alpha.client, supervisor.contract_id, key="order-1")
    second = resume(alpha.client, supervisor.contract_id, key="order-1")
    assert first.status_code == second.status_code == 200
    assert list(second.json()) == list(first.json())
    assert second.content == first.content
