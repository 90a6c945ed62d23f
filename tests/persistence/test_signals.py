"""Signals reach integrators after commit, never for a change that was rolled back."""

from __future__ import annotations

import logging

import pytest
from django.db import transaction

from supervisors.services.actors import Actor
from supervisors.services.errors import InvalidInput
from supervisors.services.questions import add_supervisor_pending_question, clear_pending_question
from supervisors.services.signals import question_answered, question_asked, state_saved
from supervisors.services.state import update_supervisor_heartbeat_state, update_supervisor_phase
from tests.factories import make_question

pytestmark = pytest.mark.django_db


@pytest.fixture
def received():
    events: list[tuple[str, dict]] = []

    def listener(name):
        def receive(sender, **kwargs):
            kwargs.pop("signal", None)
            events.append((name, kwargs))

        return receive

    receivers = {
        question_asked: listener("asked"),
        question_answered: listener("answered"),
        state_saved: listener("saved"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver, weak=False)
    yield events
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


def test_question_signals_are_sent_on_commit(supervisor, received, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _, question, _ = add_supervisor_pending_question(supervisor.contract_id, make_question())
    assert received == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert [name for name, _ in received] == ["saved", "asked"]
    assert received[1][1]["question"] == question
    assert received[0][1]["reason"] == "question_asked"

    received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        clear_pending_question(supervisor.contract_id, question["id"], answer="yes", actor=Actor.system("ops"))
    answered = dict(received)["answered"]
    assert answered["answer"] == "yes"
    assert answered["answered_by"] == "ops"
    assert str(answered["question_id"]) == question["id"]


def test_no_signal_for_a_refused_or_rolled_back_change(supervisor, received, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(InvalidInput):
            add_supervisor_pending_question(supervisor.contract_id, {"question": ""})
        try:
            with transaction.atomic():
                update_supervisor_phase(supervisor.contract_id, "execute")
                raise RuntimeError("the caller's transaction fails later")
        except RuntimeError:
            pass
        update_supervisor_heartbeat_state(supervisor.contract_id, state="working", current_activity=None, progress=1)
    assert received == []
    assert callbacks == []


def test_a_failing_receiver_does_not_break_the_save(supervisor, django_capture_on_commit_callbacks, caplog):
    def broken(sender, **kwargs):
        raise RuntimeError("chat is down")

    state_saved.connect(broken, weak=False)
    try:
        with (
            caplog.at_level(logging.INFO, logger="supervisors.events"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            update_supervisor_phase(supervisor.contract_id, "execute")
    finally:
        state_saved.disconnect(broken)
    assert "chat is down" in caplog.text
    # The default receiver logged the event.
    assert f"state saved contract={supervisor.contract_id} reason=phase_changed" in caplog.text
