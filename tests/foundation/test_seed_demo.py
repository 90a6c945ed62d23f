"""seed_demo gives a realistic picture, and running it twice duplicates nothing."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from supervisors.enums import SupervisorStatus
from supervisors.models import Contract, SupervisorCheckpoint, SupervisorState, Task

pytestmark = pytest.mark.django_db


def table_counts() -> tuple[int, ...]:
    return tuple(m.objects.count() for m in (Contract, Task, SupervisorState, SupervisorCheckpoint))


def test_seed_demo_covers_every_state_and_is_idempotent(capsys):
    call_command("seed_demo")
    first = table_counts()
    call_command("seed_demo")
    assert table_counts() == first
    assert "0 created now" in capsys.readouterr().out

    states = set(SupervisorState.objects.values_list("state", flat=True))
    assert states == set(SupervisorStatus.values)
    assert SupervisorState.objects.exclude(pending_questions=[]).count() >= 2
    assert SupervisorState.objects.filter(state=SupervisorStatus.WAITING_FOR_TASKS).exclude(pending_task_ids=[])


def test_seed_demo_has_a_conversation_of_several_megabytes():
    call_command("seed_demo")
    sizes = [len(json.dumps(h)) for h in SupervisorState.objects.values_list("conversation_history", flat=True)]
    assert max(sizes) > 3_000_000


def test_seed_demo_reset_rebuilds_what_was_changed():
    call_command("seed_demo")
    SupervisorState.objects.update(progress=99)
    call_command("seed_demo", "--reset")
    assert SupervisorState.objects.exclude(progress=99).exists()
    assert SupervisorState.objects.count() == len({*SupervisorState.objects.values_list("contract_id", flat=True)})
