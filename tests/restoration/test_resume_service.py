"""resume_supervisor, the service under the API's resume: keys, duplicates and who may resume what."""

from __future__ import annotations

import pytest

from supervisors.enums import RestorationSource
from supervisors.models import Daemon, RestorationLog, SupervisorState
from supervisors.services.actors import Actor
from supervisors.services.errors import NotFound
from supervisors.services.resume import resume_supervisor
from supervisors.services.world import record_daemon_heartbeat
from tests.factories import make_contract, make_daemon, make_supervisor

pytestmark = pytest.mark.django_db


class Renderer:
    """Counts how often a result is rendered: a replayed answer must not be rendered (nor restored) again."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, result) -> dict:
        self.calls += 1
        return {"restorationCount": result.context.restoration_count, "render": self.calls}


def _resume(contract_id, daemon: Daemon, render, key: str | None = None, source=RestorationSource.DAEMON_RESTART):
    return resume_supervisor(
        contract_id,
        source=source,
        actor=Actor.for_daemon(daemon),
        render=render,
        daemon_id=daemon.id,
        idempotency_key=key,
    )


def test_a_retry_with_the_same_key_gets_the_first_answer_without_restoring_again():
    daemon = make_daemon("resumer")
    supervisor = make_supervisor(make_contract("Keyed"), daemon=daemon)
    render = Renderer()
    first = _resume(supervisor.contract_id, daemon, render, key="k-1")
    again = _resume(supervisor.contract_id, daemon, render, key="k-1")
    assert (first.status, first.body) == (200, {"restorationCount": 1, "render": 1})
    assert again == first
    assert render.calls == 1
    assert SupervisorState.objects.get(pk=supervisor.pk).restoration_count == 1
    assert RestorationLog.objects.filter(supervisor=supervisor).count() == 1


def test_without_a_key_a_second_resume_at_once_restores_again_in_a_new_epoch():
    daemon = make_daemon("hasty")
    supervisor = make_supervisor(make_contract("Twice"), daemon=daemon)
    _resume(supervisor.contract_id, daemon, Renderer())
    second = _resume(supervisor.contract_id, daemon, Renderer())
    assert second.body["restorationCount"] == 2
    assert SupervisorState.objects.get(pk=supervisor.pk).restoration_count == 2
    assert RestorationLog.objects.filter(supervisor=supervisor).count() == 2


def test_another_daemons_live_supervisor_is_not_found_even_with_task_reassignment():
    owner, other = make_daemon("owner"), make_daemon("other")
    record_daemon_heartbeat(owner.id)  # alive: no takeover
    supervisor = make_supervisor(make_contract("Not yours"), daemon=owner)
    with pytest.raises(NotFound):
        _resume(supervisor.contract_id, other, Renderer(), source=RestorationSource.TASK_REASSIGNMENT)
    assert SupervisorState.objects.get(pk=supervisor.pk).restoration_count == 0
