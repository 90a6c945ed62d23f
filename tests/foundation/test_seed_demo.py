"""seed_demo gives a realistic picture, and running it twice duplicates nothing."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from supervisors.attention import KINDS, attention_counts
from supervisors.demo import ASK_EVERY, LIVE_ASKER
from supervisors.enums import SupervisorStatus
from supervisors.models import Contract, Daemon, SupervisorCheckpoint, SupervisorState, Task
from supervisors.services.ownership import is_daemon_gone

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
    assert states == {*SupervisorStatus.values, "paused"}  # "paused": a state makima wrote that we do not know
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


def test_every_kind_of_needing_attention_appears_in_the_demo():
    call_command("seed_demo")
    counts = attention_counts()
    assert all(counts[kind] >= 1 for kind in KINDS), {kind.key: n for kind, n in counts.items()}


def test_seed_demo_live_keeps_daemons_alive_moves_progress_and_asks(capsys, settings):
    call_command("seed_demo")
    settings.DAEMON_GONE_AFTER_SECONDS = 30  # the demo daemons' seeded heartbeats are 15 and 40 s old
    beta = Daemon.objects.get(name="daemon-beta")
    assert is_daemon_gone(beta)
    asker = SupervisorState.objects.get(contract__name=LIVE_ASKER)
    moving = SupervisorState.objects.get(contract__name="Billing service migration")
    call_command("seed_demo", "--live", "--ticks", str(ASK_EVERY), "--interval", "1")
    assert not is_daemon_gone(Daemon.objects.get(name="daemon-beta"))
    moving_after = SupervisorState.objects.get(pk=moving.pk)
    assert moving_after.progress == (moving.progress + ASK_EVERY) % 100
    assert moving_after.current_activity == f"Live demo step {ASK_EVERY}"
    asker.refresh_from_db()
    assert [q["question"] for q in asker.pending_questions][-1].startswith(f"Live demo question {ASK_EVERY}")
    out = capsys.readouterr().out
    assert "live step 1:" in out and "a question asked" in out


@pytest.mark.parametrize("args", [["--interval", "0"], ["--ticks", "-1"], ["--interval", "soon"]])
def test_seed_demo_live_refuses_bad_numbers_with_a_usage_error(args):
    with pytest.raises(CommandError) as raised:
        call_command("seed_demo", "--live", *args)
    assert raised.value.returncode == 2
