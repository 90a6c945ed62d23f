"""A client generated from the live schema, typed end to end, runs a daemon's life against the live service.

What a daemon author does: point openapi-python-client at /api/schema/, get a
package of attrs models and one module per operation, and code against it. The
generation must be clean (no warning: a warning is a part of the schema the
client silently drops or types as Any), and every answer must parse into the
declared model: create a contract and its supervisor, save, heartbeat, ask, answer,
crash and resume, acknowledge, leave, and another daemon claims the supervisor.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

PACKAGE = "makima_client"


def generator() -> str | None:
    """openapi-python-client beside the running Python (requirements.txt installs it), else on PATH."""
    beside = Path(sys.executable).with_name("openapi-python-client")
    return str(beside) if beside.exists() else shutil.which("openapi-python-client")


pytestmark = pytest.mark.skipif(
    generator() is None, reason="openapi-python-client is not installed (pip install -r requirements.txt)"
)


def generate(schema_url: str, where: Path) -> str:
    """Generate the client package into ``where``; the generator's whole output (it formats with ruff)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [generator(), "generate", "--url", schema_url, "--output-path", str(where / PACKAGE), "--meta", "none"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=where,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.fixture
def client_package(live_api, tmp_path) -> ModuleType:
    output = generate(f"{live_api.base_url}/api/schema/?format=json", tmp_path)
    assert "warning" not in output.lower() and "error" not in output.lower(), output
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_a_daemons_life_through_a_generated_typed_client(live_api, client_package):
    api = importlib.import_module(f"{PACKAGE}.api.v1")
    m = importlib.import_module(f"{PACKAGE}.models")
    ops = {name: importlib.import_module(f"{api.__name__}.{name}") for name in OPERATIONS}

    def connect(key: str):
        return client_package.AuthenticatedClient(
            base_url=live_api.base_url, token=key, raise_on_unexpected_status=True
        )

    daemon = connect(live_api.new_daemon_key("worker-eu-1"))
    me = ops["daemon_me"].sync(client=daemon)
    assert isinstance(me, m.DaemonMe) and me.name == "worker-eu-1" and me.alive

    # A contract, its supervisor task (on this daemon: no daemonId), a worker task.
    contract = ops["contract_create"].sync(client=daemon, body=m.ContractRequest(name="Rate limiting", phase="plan"))
    assert isinstance(contract, m.Contract) and contract.status == m.ContractStatusEnum.ACTIVE
    task = ops["task_create"].sync(
        client=daemon,
        body=m.TaskRequest(
            contract_id=contract.id, name="supervisor", is_supervisor=True, status=m.TaskStatusEnum.RUNNING
        ),
    )
    assert isinstance(task, m.Task) and task.daemon_id == me.daemon_id
    worker = ops["task_create"].sync(
        client=daemon, body=m.TaskRequest(contract_id=contract.id, name="run the tests", parent_task_id=task.id)
    )
    assert isinstance(worker, m.Task) and worker.parent_task_id == task.id

    # The supervisor's first state, then save points and heartbeats.
    message = m.ConversationMessage(role="user")
    message["content"] = "Implement the contract."
    state = ops["supervisor_save"].sync(
        contract.id,
        client=daemon,
        body=m.SaveSupervisorStateRequest(
            task_id=task.id, phase="plan", state=m.SupervisorStateEnum.WORKING, conversation_history=[message]
        ),
    )
    assert isinstance(state, m.SupervisorState) and state.state == m.SupervisorStateEnum.WORKING
    epoch = state.restoration_count
    state = ops["supervisor_task_spawned"].sync(
        contract.id, client=daemon, body=m.SpawnedTaskRequest(task_id=worker.id, wait=True), supervisor_epoch=epoch
    )
    assert state.pending_task_ids == [worker.id]
    # The delta form: only the new message, with the length the daemon believes stored; a stale length is a 409.
    reply = m.ConversationMessage(role="assistant")
    reply["content"] = "Spawned the tests."
    grown = ops["supervisor_conversation_append"].sync(
        contract.id,
        client=daemon,
        body=m.ConversationAppendRequest(expected_length=1, messages=[reply]),
        supervisor_epoch=epoch,
    )
    assert isinstance(grown, m.AppendResponse) and grown.conversation_length == 2
    stale = ops["supervisor_conversation_append"].sync(
        contract.id,
        client=daemon,
        body=m.ConversationAppendRequest(expected_length=1, messages=[reply]),
        supervisor_epoch=epoch,
    )
    assert isinstance(stale, m.Error) and stale.code == "conversation_length_mismatch"
    assert stale.conversation_length == 2
    beat = ops["supervisor_heartbeat"].sync(
        contract.id,
        client=daemon,
        body=m.HeartbeatRequest(state=m.SupervisorStateEnum.WAITING_FOR_TASKS, progress=40, current_activity="Tests"),
        supervisor_epoch=epoch,
    )
    assert isinstance(beat, m.HeartbeatResponse) and beat.ok
    batch = ops["daemon_heartbeat"].sync(
        client=daemon,
        body=m.DaemonHeartbeatRequest(
            supervisors=[
                m.SupervisorHeartbeatItemRequest(
                    contract_id=contract.id, state=m.SupervisorStateEnum.WAITING_FOR_TASKS, progress=45, epoch=epoch
                )
            ]
        ),
    )
    assert isinstance(batch, m.DaemonHeartbeatResponse) and batch.supervisors_updated == 1

    # A question, its answer (relayed here with the daemon's key; a person answers in the admin), the answers list.
    asked = ops["supervisor_question_ask"].sync(
        contract.id,
        client=daemon,
        body=m.PendingQuestionRequest(
            question="Tests pass. Move on to review?",
            choices=["yes", "no"],
            question_type=m.QuestionTypeEnum.PHASE_CONFIRMATION,
        ),
        supervisor_epoch=epoch,
    )
    assert isinstance(asked, m.AskQuestionResponse) and asked.created
    question_id = asked.question.id
    answer = ops["supervisor_question_answer"].sync(
        contract.id, question_id, client=daemon, body=m.AnswerRequest(answer="yes")
    )
    assert isinstance(answer, m.QuestionAnswer) and answer.acknowledged_at is None
    waiting = ops["supervisor_answers_list"].sync(contract.id, client=daemon)
    assert [a.question_id for a in waiting] == [question_id]

    # The daemon crashes and comes back: resume returns the unacknowledged answer and a new epoch.
    context = ops["supervisor_resume"].sync(
        contract.id,
        client=daemon,
        body=m.ResumeRequest(source=m.RestorationSourceEnum.DAEMON_RESTART, reason="crashed"),
        idempotency_key="resume-after-crash-1",
    )
    assert isinstance(context, m.RestorationContext) and context.success
    assert isinstance(context.previous_state, m.SupervisorStateEnum)
    assert context.recovery_action == m.RecoveryActionEnum.PROCEED and context.outcome == m.OutcomeEnum.RESTORED
    assert [a.question_id for a in context.pending_answers] == [question_id]
    assert context.restoration_count == epoch + 1
    epoch = context.restoration_count
    acked = ops["supervisor_answer_ack"].sync(contract.id, question_id, client=daemon, supervisor_epoch=epoch)
    assert isinstance(acked, m.QuestionAnswer) and acked.acknowledged_at is not None
    assert ops["supervisor_answers_list"].sync(contract.id, client=daemon) == []
    check = ops["supervisor_validate"].sync(contract.id, client=daemon)
    assert isinstance(check, m.StateValidationResult)

    # The daemon leaves; another claims its supervisor (failover), and the first one's late write is refused.
    left = ops["daemon_heartbeat"].sync(
        client=daemon, body=m.DaemonHeartbeatRequest(status=m.DaemonStatusEnum.DISCONNECTED)
    )
    assert left.status == m.DaemonStatusEnum.DISCONNECTED
    other = connect(live_api.new_daemon_key("worker-eu-2"))
    claimed = ops["supervisors_claim"].sync(client=other, body=m.ClaimRequest(capacity=5))
    assert isinstance(claimed, m.ClaimResponse) and claimed.failed == []
    assert [c.contract_id for c in claimed.claimed] == [contract.id]
    assert claimed.claimed[0].restoration_count == epoch + 1
    late = ops["supervisor_heartbeat"].sync(
        contract.id,
        client=daemon,
        body=m.HeartbeatRequest(state=m.SupervisorStateEnum.WORKING, progress=50),
        supervisor_epoch=epoch,
    )
    assert isinstance(late, m.Error) and late.code in ("superseded", "not_found")
    mine = ops["supervisors_list"].sync(client=other)
    assert [s.contract_id for s in mine] == [contract.id] and isinstance(mine[0], m.SupervisorState)
    assert ops["daemon_me"].sync(client=other).supervisors == 1


OPERATIONS = (
    "daemon_me",
    "supervisor_conversation_append",
    "daemon_heartbeat",
    "contract_create",
    "task_create",
    "supervisor_save",
    "supervisor_task_spawned",
    "supervisor_heartbeat",
    "supervisor_question_ask",
    "supervisor_question_answer",
    "supervisor_answers_list",
    "supervisor_resume",
    "supervisor_answer_ack",
    "supervisor_validate",
    "supervisors_claim",
    "supervisors_list",
)
