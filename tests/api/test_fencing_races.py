"""Takeovers raced against the old owner, through the API, on real threads (issue 11: fencing).

Each round builds a fresh supervisor, releases two requests at once with a
``threading.Barrier`` and then reads the database: the status codes alone
prove nothing, the rows must show that no write landed after a takeover
committed. The order the two requests commit in is left to the race; every
round checks the outcome that order implies; every third round runs the
write surely after the takeover, so both orders are covered whatever the
machine's speed, without any timing window.

How "landed after the takeover" is told apart from "landed before it": every
write of the old owner carries a marker of its own (an activity, a phase, a
question, an acknowledgement). The takeover's restoration reads the row under
its lock and hands it to the new owner (the restoration context names the
activity, the phase, the questions and the answers), so a write that
committed first is in the takeover's answer, and one that committed after is
in the row but not in that answer.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from supervisors.models import Daemon, QuestionAnswer, RestorationLog, SupervisorCheckpoint, SupervisorState
from supervisors.services import ownership
from supervisors.services.actors import Actor
from supervisors.services.questions import clear_pending_question
from tests.api.conftest import DaemonWithKey, url
from tests.concurrency import run_together
from tests.factories import make_contract, make_question, make_supervisor

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

ROUNDS = 30
HEARTBEAT_URL = "/api/v1/daemons/me/heartbeat/"
SUPERSEDED_OR_GONE = (404, 409)


def client_of(daemon: DaemonWithKey) -> APIClient:
    """A client of the daemon's own: test clients are not shared between threads."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {daemon.key}")
    return client


def resume(daemon: DaemonWithKey, contract_id: uuid.UUID, source: str = "daemon_restart"):
    return client_of(daemon).post(url(contract_id, "resume/"), {"source": source}, format="json")


def say_goodbye(daemon: DaemonWithKey) -> None:
    """The daemon's last word: ``disconnected``, which makes it gone at once."""
    response = client_of(daemon).post(HEARTBEAT_URL, {"status": "disconnected"}, format="json")
    assert response.status_code == 200, response.content


def is_refusal(response) -> bool:
    """A write refused as a fenced-off one: 409 ``superseded`` or 404 (never another 409)."""
    if response.status_code == 404:
        return True
    body = response.json()
    return response.status_code == 409 and body["code"] == "superseded" and "Supervisor-Epoch" in body["fields"]


# --- (a) a takeover raced against each of the old owner's writes ---------------------------------------


@dataclass
class Round:
    supervisor: SupervisorState
    epoch: int
    marker: str
    answered_id: str | None = None


def prepare_round(alpha: DaemonWithKey, kind: str, number: int) -> Round:
    """A supervisor of alpha's, waiting for the human (one question pending), resumed by alpha: epoch 1.

    For the answer-ack race a second question is already answered and not yet
    acknowledged. Then alpha says goodbye, so beta may take the supervisor over.
    """
    pending = make_question(f"still pending in round {number}")
    history = [{"role": "user", "content": f"round {number}"}]
    supervisor = make_supervisor(
        make_contract(f"race {kind} {number}"),
        daemon=alpha.daemon,
        state="waiting_for_user",
        pending_questions=[pending],
        conversation_history=history,
        current_activity="before the race",
        progress=5,
    )
    answered_id = None
    if kind == "ack":
        answered = make_question(f"answered in round {number}")
        SupervisorState.objects.filter(pk=supervisor.pk).update(pending_questions=[pending, answered])
        clear_pending_question(supervisor.contract_id, answered["id"], answer="yes", actor=Actor.system("test"))
        answered_id = answered["id"]
    resumed = resume(alpha, supervisor.contract_id)
    assert resumed.status_code == 200, resumed.content
    say_goodbye(alpha)
    return Round(supervisor, resumed.json()["restorationCount"], f"zombie-{kind}-{number:02d}", answered_id)


def old_owner_write(alpha: DaemonWithKey, kind: str, rnd: Round, *, with_epoch: bool) -> Callable[[], Any]:
    """Alpha's write of this kind, carrying ``rnd.marker`` (and its epoch, when ``with_epoch``)."""
    contract = rnd.supervisor.contract_id
    headers = {"HTTP_SUPERVISOR_EPOCH": str(rnd.epoch)} if with_epoch else {}
    beat = {"state": "working", "currentActivity": rnd.marker, "progress": 77}

    def write():
        client = client_of(alpha)
        if kind == "patch":
            body = {
                "state": "working",
                "currentActivity": rnd.marker,
                "conversationHistory": [{"role": "user", "content": rnd.marker}],
            }
            return client.patch(url(contract), body, format="json", **headers)
        if kind == "phase":
            return client.post(url(contract, "phase/"), {"phase": rnd.marker}, format="json", **headers)
        if kind == "ask":
            return client.post(url(contract, "questions/"), make_question(rnd.marker), format="json", **headers)
        if kind == "ack":
            return client.post(url(contract, f"answers/{rnd.answered_id}/ack/"), format="json", **headers)
        if kind == "heartbeat":
            return client.post(url(contract, "heartbeat/"), beat, format="json", **headers)
        item = {"contractId": str(contract), **beat, **({"epoch": rnd.epoch} if with_epoch else {})}
        return client.post(HEARTBEAT_URL, {"status": "connected", "supervisors": [item]}, format="json")

    return write


def write_landed(kind: str, rnd: Round, response) -> bool:
    """Whether the API said the write was done (a batch heartbeat answers 200 and lists what it did not write)."""
    if kind == "batch":
        assert response.status_code == 200, response.content
        return str(rnd.supervisor.contract_id) not in response.json()["supervisorsNotUpdated"]
    if response.status_code in (200, 201):
        return True
    assert is_refusal(response), (response.status_code, response.content)
    return False


def marker_in_row(kind: str, rnd: Round, row: SupervisorState) -> bool:
    """Whether the write's effect is in the database now."""
    if kind == "ack":
        return QuestionAnswer.objects.get(question_id=rnd.answered_id).acknowledged_at is not None
    if kind == "phase":
        return row.phase == rnd.marker
    if kind == "ask":
        return any(q.get("question") == rnd.marker for q in row.pending_questions)
    return row.current_activity == rnd.marker


def marker_in_checkpoints(rnd: Round) -> bool:
    """Whether a checkpoint of the supervisor (taken at a save point: a phase change, a question) carries it."""
    checkpoints = SupervisorCheckpoint.objects.filter(supervisor_id=rnd.supervisor.pk)
    return any(
        cp.phase == rnd.marker
        or cp.current_activity == rnd.marker
        or any(q.get("question") == rnd.marker for q in cp.pending_questions)
        for cp in checkpoints
    )


def marker_seen_by_takeover(kind: str, rnd: Round, context: dict[str, Any]) -> bool:
    """Whether the state the takeover restored (and handed to beta) already had the write in it."""
    if kind == "ack":
        # Acknowledged first: no longer among the answers the resume hands the new owner.
        assert "pendingAnswers" in context, "the resume context carries no pendingAnswers"
        return rnd.answered_id not in [a["questionId"] for a in context["pendingAnswers"]]
    if kind == "ask":
        return any(q["question"] == rnd.marker for q in context["pendingQuestions"])
    return rnd.marker in json.dumps(context)  # the context message names the phase and the last activity


@pytest.mark.parametrize("kind", ["patch", "phase", "ask", "ack", "heartbeat", "batch"])
def test_no_write_of_the_old_owner_lands_after_a_takeover(alpha, beta, settings, kind):
    # Every daemon counts as gone at once, so the takeover is always allowed: the race is
    # between the write and the takeover's row lock, not with the old owner's lease.
    settings.DAEMON_GONE_AFTER_SECONDS = 0
    outcomes = {"landed first": 0, "refused": 0}
    for number in range(ROUNDS):
        rnd = prepare_round(alpha, kind, number)
        write = old_owner_write(alpha, kind, rnd, with_epoch=number % 2 == 0)
        contract = rnd.supervisor.contract_id
        after = number % 3 == 2
        if after:
            # Every third round the write surely comes after the takeover: which order a race takes is the
            # machine's (through PgBouncer on a busy machine the write can win every round).
            takeover = resume(beta, contract, "task_reassignment")
            written = write()
        else:
            written, takeover = run_together(
                write, lambda contract=contract: resume(beta, contract, "task_reassignment")
            )

        assert takeover.status_code == 200, takeover.content
        context = takeover.json()
        row = SupervisorState.objects.select_related("task").get(pk=rnd.supervisor.pk)
        landed = write_landed(kind, rnd, written)
        in_row = marker_in_row(kind, rnd, row)
        where = (
            f"round {number} ({kind}, epoch header {number % 2 == 0}): {written.status_code} {written.content[:300]!r}"
        )
        # The takeover is the last word: new owner, new epoch, the state its restoration set.
        assert row.task.daemon_id == beta.daemon.id, where
        assert row.restoration_count == context["restorationCount"] == rnd.epoch + 1, where
        assert row.state == "waiting_for_user", where
        # A write that was acknowledged committed before the takeover (its restoration saw it);
        # a refused one changed nothing. A write in the row that the takeover did not see landed after it.
        assert landed == in_row, f"{where}: told landed={landed}, in the database {in_row}"
        assert not (after and landed), f"{where}: a write after the takeover landed"
        assert landed or not marker_in_checkpoints(rnd), f"{where}: a refused write left a checkpoint"
        if kind == "ack":  # an answer the old owner did not acknowledge waits for the new owner
            waiting = client_of(beta).get(url(rnd.supervisor.contract_id, "answers/")).json()
            assert (rnd.answered_id in [a["questionId"] for a in waiting]) == (not in_row), where
        seen = marker_seen_by_takeover(kind, rnd, context)
        assert in_row == seen, f"{where}: in the database {in_row}, seen by the takeover {seen}"
        outcomes["landed first" if landed else "refused"] += 1
    print(f"{kind}: {outcomes}")  # with -s: how the rounds fell


# --- (b) the owner sends only supervisor heartbeats: its lease holds -----------------------------------


def test_an_owner_that_sends_only_supervisor_heartbeats_is_never_taken_over(alpha, beta, settings, monkeypatch):
    """Supervisor heartbeats alone keep the lease: raced with another daemon's takeover, round after round.

    Time is the test's own: every "now" of the service (wall clock and the renewal memo's monotonic clock)
    moves on by a fixed step per round. On real time a machine stalled for longer than the lease made the
    owner really silent, and the takeover was then right.
    """
    settings.DAEMON_GONE_AFTER_SECONDS = 2
    step = timedelta(seconds=0.3)  # under the renewal interval (0.5 s): not every heartbeat renews
    started_at, started_monotonic = timezone.now(), ownership.clock()
    virtual = {"now": started_at}
    monkeypatch.setattr(timezone, "now", lambda: virtual["now"])
    monkeypatch.setattr(ownership, "clock", lambda: started_monotonic + (virtual["now"] - started_at).total_seconds())
    supervisor = make_supervisor(make_contract("busy owner"), daemon=alpha.daemon, state="working")
    # Alpha never sends its own daemon heartbeat: created and last heard of its own way long ago.
    long_ago = timezone.now() - timedelta(hours=1)
    Daemon.objects.filter(pk=alpha.daemon.pk).update(created_at=long_ago, last_heartbeat_at=long_ago)
    beat = {"state": "working", "currentActivity": "busy", "progress": 50}

    def heartbeat():
        return client_of(alpha).post(url(supervisor.contract_id, "heartbeat/"), beat, format="json")

    assert heartbeat().status_code == 200
    # Three leases long: a lease kept only by the daemon heartbeat, or renewed too rarely, would run out.
    rounds = max(ROUNDS, int(3 * settings.DAEMON_GONE_AFTER_SECONDS / step.total_seconds()))
    for number in range(rounds):
        virtual["now"] += step
        beaten, takeover = run_together(heartbeat, lambda: resume(beta, supervisor.contract_id, "task_reassignment"))
        assert beaten.status_code == 200, (number, beaten.content)
        assert takeover.status_code == 404, (number, takeover.content)

    row = SupervisorState.objects.select_related("task").get(pk=supervisor.pk)
    assert row.task.daemon_id == alpha.daemon.id
    assert row.restoration_count == 0
    assert not RestorationLog.objects.filter(supervisor=supervisor, success=True).exists()
    assert Daemon.objects.get(pk=alpha.daemon.pk).last_heartbeat_at > started_at  # renewed on virtual time


# --- (c) a takeover right after the owner's resume, owner gone: always allowed -------------------------


def test_a_takeover_right_after_the_owners_resume_always_succeeds(alpha, beta):
    for number in range(ROUNDS):
        supervisor = make_supervisor(make_contract(f"quick takeover {number}"), daemon=alpha.daemon, state="working")
        owned = resume(alpha, supervisor.contract_id)
        assert owned.status_code == 200, owned.content
        resumed_at = time.monotonic()
        say_goodbye(alpha)
        takeover = resume(beta, supervisor.contract_id, "task_reassignment")
        elapsed = time.monotonic() - resumed_at

        assert takeover.status_code == 200, (number, takeover.content)
        # The case under test: the owner's lease was renewed by its resume a moment ago (within the renewal
        # interval, so its process still counts it as fresh), yet its goodbye frees the supervisor at once.
        assert elapsed < ownership.lease_renew_seconds(), f"round {number} took {elapsed:.2f} s: not the case"
        assert takeover.json()["restorationCount"] == 2
        row = SupervisorState.objects.select_related("task").get(pk=supervisor.pk)
        assert row.task.daemon_id == beta.daemon.id
        assert row.restoration_count == 2
        assert RestorationLog.objects.filter(supervisor=supervisor, success=True).count() == 2


# --- (d) a batch heartbeat from before a resume, raced with it -----------------------------------------


def test_a_batch_heartbeat_from_before_a_resume_never_undoes_it(alpha):
    for number in range(ROUNDS):
        question = make_question(f"pending in round {number}")
        supervisor = make_supervisor(
            make_contract(f"stale batch {number}"),
            daemon=alpha.daemon,
            state="waiting_for_user",
            pending_questions=[question],
            current_activity="asked",
        )
        first = resume(alpha, supervisor.contract_id)
        assert first.status_code == 200, first.content
        epoch = first.json()["restorationCount"]
        marker = f"stale-beat-{number:02d}"
        item = {
            "contractId": str(supervisor.contract_id),
            "state": "working",
            "currentActivity": marker,
            "progress": 42,
            "epoch": epoch,
        }

        def stale_batch(item=item):
            return client_of(alpha).post(HEARTBEAT_URL, {"status": "connected", "supervisors": [item]}, format="json")

        if number % 3 == 2:
            # Every third round the stale heartbeat surely comes after the resume (which order a race takes
            # depends on the machine: through PgBouncer on a busy CI machine the heartbeat won all 30).
            resumed = resume(alpha, supervisor.contract_id)
            beaten = stale_batch()
            assert str(supervisor.contract_id) in beaten.json()["supervisorsNotUpdated"], beaten.json()
        else:
            beaten, resumed = run_together(
                stale_batch, lambda supervisor=supervisor: resume(alpha, supervisor.contract_id)
            )

        assert beaten.status_code == 200, beaten.content
        assert resumed.status_code == 200, resumed.content
        row = SupervisorState.objects.get(pk=supervisor.pk)
        where = f"round {number}: heartbeat {beaten.json()}"
        assert row.restoration_count == resumed.json()["restorationCount"] == epoch + 1, where
        assert row.state == "waiting_for_user", where
        assert [q["id"] for q in row.pending_questions] == [question["id"]], where
        written = str(supervisor.contract_id) not in beaten.json()["supervisorsNotUpdated"]
        # Written only if it came first; then the resume saw it, and set the state after it.
        assert written == (row.current_activity == marker) == (marker in json.dumps(resumed.json())), where
