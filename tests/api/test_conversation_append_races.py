"""Appenders raced at the same expected length, through the API, on real threads (issue 12).

Each round releases several appends that all believe the history holds the
same number of messages, with a ``threading.Barrier``; exactly one may land,
the others must get 409 ``conversation_length_mismatch`` naming the length the
winner left. Then the database is read: the history is the old one plus the
winner's messages, once, in order; nothing lost, nothing duplicated. A second
race puts an append against a save point carrying the same expected length
(a phase change with ``conversationAppend``), and a third an append against
a takeover: a refused append leaves no trace.
"""

from __future__ import annotations

import pytest

from supervisors.models import SupervisorState
from tests.api.conftest import DaemonWithKey, url
from tests.api.test_fencing_races import client_of, resume, run_together, say_goodbye
from tests.factories import make_contract, make_supervisor

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

ROUNDS = 25
APPENDERS = 3


def messages_of(tag: str) -> list[dict]:
    return [{"role": "assistant", "content": f"{tag} first"}, {"role": "tool", "content": f"{tag} second"}]


def fresh_supervisor(alpha: DaemonWithKey, number: int, kind: str) -> tuple[SupervisorState, list[dict]]:
    history = [{"role": "user", "content": f"round {number} message {i}"} for i in range(number % 4 + 1)]
    supervisor = make_supervisor(
        make_contract(f"append race {kind} {number}"), daemon=alpha.daemon, conversation_history=history
    )
    return supervisor, history


@pytest.fixture(autouse=True)
def _schema_loaded(alpha):
    """One request first: the schema check every response goes through is built once, not by racing threads."""
    assert client_of(alpha).get("/api/v1/daemons/me/").status_code == 200


def appender(alpha: DaemonWithKey, supervisor: SupervisorState, expected: int, tag: str):
    def call():
        body = {"expectedLength": expected, "messages": messages_of(tag)}
        return client_of(alpha).post(url(supervisor.contract_id, "conversation/"), body, format="json")

    return call


def test_concurrent_appends_at_the_same_length_one_wins_the_others_get_409(alpha):
    for number in range(ROUNDS):
        supervisor, history = fresh_supervisor(alpha, number, "appends")
        tags = [f"r{number}-a{i}" for i in range(APPENDERS)]

        responses = run_together(*(appender(alpha, supervisor, len(history), tag) for tag in tags))

        winners = [tag for tag, r in zip(tags, responses, strict=True) if r.status_code == 200]
        assert len(winners) == 1, [(r.status_code, r.content) for r in responses]
        for response in responses:
            if response.status_code != 200:
                assert response.status_code == 409, response.content
                assert response.json()["code"] == "conversation_length_mismatch"
                assert response.json()["conversationLength"] == len(history) + 2
        stored = SupervisorState.objects.get(pk=supervisor.pk).conversation_history
        assert stored == [*history, *messages_of(winners[0])]


def test_an_append_raced_against_a_save_point_at_the_same_length_lands_once(alpha):
    for number in range(ROUNDS):
        supervisor, history = fresh_supervisor(alpha, number, "save point")
        phase = f"phase-{number}"
        length = len(history)

        def save_point(supervisor=supervisor, expected=length, phase=phase):
            body = {
                "phase": phase,
                "conversationAppend": {"expectedLength": expected, "messages": messages_of("save point")},
            }
            return client_of(alpha).post(url(supervisor.contract_id, "phase/"), body, format="json")

        plain, saved = run_together(appender(alpha, supervisor, len(history), "plain"), save_point)

        assert sorted([plain.status_code, saved.status_code]) == [200, 409], (plain.content, saved.content)
        row = SupervisorState.objects.get(pk=supervisor.pk)
        if saved.status_code == 200:
            assert row.phase == phase
            assert row.conversation_history == [*history, *messages_of("save point")]
        else:
            assert row.phase != phase  # the refused save point did not happen at all
            assert row.conversation_history == [*history, *messages_of("plain")]


def test_an_append_with_the_old_epoch_raced_against_a_takeover_never_lands_after_it(alpha, beta, settings):
    settings.DAEMON_GONE_AFTER_SECONDS = 0  # the race is with the takeover's row lock, not with alpha's lease
    for number in range(ROUNDS):
        supervisor, history = fresh_supervisor(alpha, number, "takeover")
        epoch = resume(alpha, supervisor.contract_id).json()["restorationCount"]
        say_goodbye(alpha)
        length = len(history)

        def old_owner_append(contract=supervisor.contract_id, expected=length, epoch=epoch):
            body = {"expectedLength": expected, "messages": messages_of("zombie")}
            return client_of(alpha).post(
                url(contract, "conversation/"), body, format="json", HTTP_SUPERVISOR_EPOCH=str(epoch)
            )

        def takeover(contract=supervisor.contract_id):
            return resume(beta, contract, source="task_reassignment")

        if number % 3 == 2:  # surely after the takeover: must be refused
            taken = takeover()
            written = old_owner_append()
        else:
            written, taken = run_together(old_owner_append, takeover)

        assert taken.status_code == 200, taken.content
        handed_over = taken.json()["conversationHistory"]
        row = SupervisorState.objects.get(pk=supervisor.pk)
        if written.status_code == 200:
            # Landed before the takeover: the new owner was handed the messages.
            assert handed_over == row.conversation_history == [*history, *messages_of("zombie")]
        else:
            assert written.status_code in (404, 409), written.content
            assert row.conversation_history == handed_over
            assert messages_of("zombie")[0] not in row.conversation_history
        assert row.restoration_count == epoch + 1
