"""Example requests and responses for the OpenAPI schema: one daemon's supervisor, told as a story.

They are what a daemon author reads first in /api/docs/, so they show real values
(a supervisor in the execute phase, a question waiting, a resume after a crash).
tests/api/test_schema.py validates every example against the schema it
illustrates, so an example cannot drift from the wire format.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample

CONTRACT_ID = "3f1c2a9e-5b7d-4e21-9a0c-6d8e1f2b3c4d"
SUPERVISOR_ID = "0b9d8c7e-6f5a-4b3c-8d2e-1f0a9b8c7d6e"
TASK_ID = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
WORKER_TASK_ID = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
DAEMON_ID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
QUESTION_ID = "5b0a6c1e-6a57-4c84-9d1e-4c8c8f1f2a10"
AT = "2026-11-29T16:02:52.123456Z"
LATER = "2026-11-29T16:05:10.654321Z"

QUESTION = {
    "id": QUESTION_ID,
    "question": "The tests pass. Move on to the review phase?",
    "choices": ["yes", "no"],
    "context": "All 214 tests pass; coverage 91 %.",
    "questionType": "phase_confirmation",
    "askedAt": AT,
}

STATE = {
    "id": SUPERVISOR_ID,
    "contractId": CONTRACT_ID,
    "taskId": TASK_ID,
    "state": "waiting_for_tasks",
    "storedState": "waiting_for_tasks",
    "phase": "execute",
    "currentActivity": "Waiting for the test task",
    "progress": 40,
    "errorMessage": None,
    "spawnedTaskIds": [WORKER_TASK_ID],
    "pendingTaskIds": [WORKER_TASK_ID],
    "pendingQuestions": [],
    "restorationCount": 3,
    "lastRestoredAt": AT,
    "restorationSource": "daemon_restart",
    "lastActivity": LATER,
    "createdAt": AT,
    "updatedAt": LATER,
}

HISTORY = [
    {"role": "user", "content": "Implement the contract."},
    {"role": "assistant", "content": "Spawning a task to run the tests.", "tool_calls": []},
]

ANSWER = {
    "questionId": QUESTION_ID,
    "question": QUESTION,
    "answer": "yes",
    "answeredAt": LATER,
    "acknowledgedAt": None,
}

RESTORATION_CONTEXT = {
    "success": True,
    "previousState": "working",
    "previousStoredState": "working",
    "conversationHistory": HISTORY,
    "pendingQuestions": [QUESTION],
    "waitingTaskIds": [WORKER_TASK_ID],
    "spawnedTaskIds": [WORKER_TASK_ID],
    "restorationCount": 4,
    "restorationContextMessage": "You were restored after a daemon restart (restoration 4). Before the "
    "restoration you were in state 'working', phase execute, 40 % done. ...",
    "warnings": [],
    "recoveryAction": "Proceed",
    "checkpointId": None,
    "outcome": "restored",
    "pendingAnswers": [],
}

CONTRACT = {
    "id": CONTRACT_ID,
    "name": "Add rate limiting to the API",
    "phase": "plan",
    "status": "active",
    "createdAt": AT,
    "updatedAt": AT,
}

TASK = {
    "id": TASK_ID,
    "contractId": CONTRACT_ID,
    "parentTaskId": None,
    "daemonId": DAEMON_ID,
    "name": "supervisor",
    "status": "running",
    "isSupervisor": True,
    "createdAt": AT,
    "updatedAt": AT,
    "completedAt": None,
}


def request(value: Any, name: str = "Request") -> OpenApiExample:
    return OpenApiExample(name, value=value, request_only=True)


def response(value: Any, status: int = 200, name: str = "Response") -> OpenApiExample:
    """For a list response give one item: drf-spectacular wraps it in the list."""
    return OpenApiExample(f"{name} {status}", value=value, response_only=True, status_codes=[str(status)])


SUPERVISOR_GET = [
    response({**STATE, "conversationHistory": HISTORY}, name="With ?include=conversationHistory"),
]
SUPERVISOR_SAVE = [
    request(
        {
            "taskId": TASK_ID,
            "phase": "execute",
            "state": "waiting_for_tasks",
            "conversationHistory": HISTORY,
            "pendingTaskIds": [WORKER_TASK_ID],
            "spawnedTaskIds": [WORKER_TASK_ID],
            "pendingQuestions": [],
            "currentActivity": "Waiting for the test task",
            "progress": 40,
            "errorMessage": None,
        }
    ),
    response(STATE),
    response(STATE, 201, name="Created"),
]
SUPERVISOR_UPDATE = [
    request({"state": "working", "currentActivity": "Reviewing the diff", "progress": 55}),
    response(
        {**STATE, "state": "working", "storedState": "working", "currentActivity": "Reviewing the diff", "progress": 55}
    ),
]
SUPERVISOR_HEARTBEAT = [
    request({"state": "working", "currentActivity": "Reviewing the diff", "progress": 55}),
    response({"ok": True}),
]
NEW_MESSAGES = [{"role": "assistant", "content": "The tests pass; asking whether to move on to review."}]
CONVERSATION_APPEND = [
    request({"expectedLength": len(HISTORY), "messages": NEW_MESSAGES}),
    response({"conversationLength": len(HISTORY) + 1}),
    response(
        {
            "code": "conversation_length_mismatch",
            "message": "The conversation holds 3 messages, not 2: this daemon missed a change. Read the history "
            "(or send the messages after the first 3) and retry.",
            "fields": {"expectedLength": ["The conversation holds 3 messages."]},
            "conversationLength": 3,
        },
        409,
        name="Another length stored",
    ),
]
TASK_SPAWNED = [
    request({"taskId": WORKER_TASK_ID, "wait": True}),
    request(
        {
            "taskId": WORKER_TASK_ID,
            "wait": True,
            "conversationAppend": {"expectedLength": len(HISTORY), "messages": NEW_MESSAGES},
        },
        name="With new messages",
    ),
    response(STATE),
]
PHASE_CHANGED = [request({"phase": "review"}), response({**STATE, "phase": "review"})]
VALIDATE = [
    response(
        {
            "isValid": False,
            "issues": ["state: 'waiting_for_tasks' with nothing pending (pending_task_ids is empty)"],
            "recoveryAction": "UseCheckpoint",
            "warnings": [],
        }
    )
]
QUESTIONS_LIST = [response(QUESTION)]
QUESTION_ASK = [
    request(
        {
            "id": QUESTION_ID,
            "question": QUESTION["question"],
            "choices": ["yes", "no"],
            "context": QUESTION["context"],
            "questionType": "phase_confirmation",
        }
    ),
    response({"question": QUESTION, "created": True}, 201, name="Asked"),
    response({"question": QUESTION, "created": False}, name="Already pending"),
]
QUESTION_ANSWER = [request({"answer": "yes"}), response(ANSWER)]
ANSWERS_LIST = [response(ANSWER)]
ANSWER_ACK = [response({**ANSWER, "acknowledgedAt": LATER})]
RESUME = [
    request({"source": "daemon_restart", "reason": "The daemon restarted after a crash."}),
    response(RESTORATION_CONTEXT),
]
DAEMON_ME = [
    response(
        {
            "daemonId": DAEMON_ID,
            "name": "worker-eu-1",
            "alive": True,
            "lastHeartbeatAt": LATER,
            "leaseExpiresAt": "2026-11-29T16:07:10.654321Z",
            "supervisors": 12,
        }
    )
]
DAEMON_HEARTBEAT = [
    request(
        {
            "status": "connected",
            "supervisors": [
                {"contractId": CONTRACT_ID, "state": "working", "currentActivity": "Coding", "progress": 60, "epoch": 3}
            ],
        }
    ),
    response(
        {
            "daemonId": DAEMON_ID,
            "status": "connected",
            "lastHeartbeatAt": LATER,
            "supervisorsUpdated": 1,
            "supervisorsNotUpdated": [],
        }
    ),
]
SUPERVISORS_LIST = [response(STATE)]
CLAIM = [
    request({"capacity": 5, "states": ["working", "waiting_for_tasks"]}),
    response(
        {
            "claimed": [{**RESTORATION_CONTEXT, "contractId": CONTRACT_ID, "restorationCount": 4}],
            "failed": [],
        }
    ),
]
PENDING_QUESTIONS = [
    response(
        {
            "contractId": CONTRACT_ID,
            "contractName": CONTRACT["name"],
            "supervisorId": SUPERVISOR_ID,
            "state": "waiting_for_user",
            "storedState": "waiting_for_user",
            "phase": "execute",
            "question": QUESTION,
        }
    )
]
CONTRACT_CREATE = [request({"name": CONTRACT["name"], "phase": "plan"}), response(CONTRACT, 201, name="Created")]
CONTRACT_GET = [response(CONTRACT)]
TASK_CREATE = [
    request({"contractId": CONTRACT_ID, "name": "supervisor", "isSupervisor": True, "status": "running"}),
    response(TASK, 201, name="Created"),
]
TASK_GET = [response(TASK)]
TASK_STATUS = [
    request({"status": "done"}),
    response(
        {
            **TASK,
            "id": WORKER_TASK_ID,
            "name": "run the tests",
            "isSupervisor": False,
            "status": "done",
            "parentTaskId": TASK_ID,
            "completedAt": LATER,
        }
    ),
]
