"""A realistic picture of a makima installation, for the demo server and for trying things out.

Every row has a fixed id (a UUID5 of its name) and every write is an upsert,
so seeding twice leaves the same rows, not twice as many. A supervisor that
already exists is left as it is (it may have been restored or answered since);
``reset=True`` deletes the demo's contracts first and builds them anew.

Supervisor rows are saved through the persistence service like every other
surface's writes. Two things the service would never write are then put in
place directly, because they are what the demo must show: the time since a
supervisor was last heard of (stale ones), and one corrupted row (a pending
task that was never spawned), as a crash or another program leaves them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from supervisors.enums import (
    ContractStatus,
    DaemonStatus,
    QuestionType,
    SupervisorStatus,
    TaskStatus,
)
from supervisors.models import Contract, Daemon, SupervisorState, Task
from supervisors.services.questions import add_supervisor_pending_question
from supervisors.services.state import save_supervisor_state_full, update_supervisor_heartbeat_state
from supervisors.services.world import record_daemon_heartbeat

NAMESPACE = uuid.UUID("6f1c2a52-3d5e-4a4b-9a57-0c2f7d9e5b11")


def demo_id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "/".join(parts))


@dataclass
class DemoSpec:
    """One contract of the demo and what its supervisor is doing."""

    name: str
    phase: str
    state: str
    activity: str | None = None
    progress: int = 0
    daemon: str = "daemon-alpha"
    contract_status: str = ContractStatus.ACTIVE
    tasks: list[tuple[str, str]] = field(default_factory=list)  # (name, status)
    waiting_on: list[str] = field(default_factory=list)  # task names still waited on
    questions: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    history_messages: int = 6
    history_message_size: int = 200
    silent_for: timedelta = timedelta(seconds=20)
    ghost_pending_task: bool = False  # a pending task id that was never spawned: validation flags it
    stored_state: str | None = None  # a state written behind the service's back (makima's own writers)


def _question(text: str, choices: list[str], qtype: str = QuestionType.GENERAL, context: str | None = None) -> dict:
    return {"question": text, "choices": choices, "questionType": qtype, "context": context}


SPECS: list[DemoSpec] = [
    DemoSpec(
        "Billing service migration",
        "execute",
        SupervisorStatus.WORKING,
        "Porting invoice rendering",
        55,
        tasks=[("Port invoice model", TaskStatus.DONE), ("Port PDF rendering", TaskStatus.RUNNING)],
        waiting_on=["Port PDF rendering"],
    ),
    DemoSpec(
        "Search relevance overhaul",
        "plan",
        SupervisorStatus.WAITING_FOR_USER,
        "Waiting for plan approval",
        30,
        questions=[
            _question(
                "The plan is ready. Move to the execute phase?",
                ["Yes, execute", "No, revise"],
                QuestionType.PHASE_CONFIRMATION,
                "Plan: 4 tasks, ~2 days of agent time.",
            )
        ],
    ),
    DemoSpec(
        "Mobile onboarding redesign",
        "specify",
        SupervisorStatus.WAITING_FOR_USER,
        "Clarifying requirements",
        15,
        daemon="daemon-beta",
        questions=[
            _question("Should the onboarding support dark mode from day one?", ["yes", "no", "later"]),
            _question(
                "Which analytics events must the new flow keep?",
                [],
                context="Current flow sends 14 events; 3 are unused.",
            ),
        ],
    ),
    DemoSpec(
        "Data warehouse backfill",
        "execute",
        SupervisorStatus.WAITING_FOR_TASKS,
        "Waiting for 3 backfill jobs",
        70,
        daemon="daemon-beta",
        tasks=[
            ("Backfill 2023", TaskStatus.DONE),
            ("Backfill 2024", TaskStatus.RUNNING),
            ("Backfill 2025", TaskStatus.RUNNING),
            ("Backfill 2026", TaskStatus.PENDING),
        ],
        waiting_on=["Backfill 2024", "Backfill 2025", "Backfill 2026"],
    ),
    DemoSpec(
        "Auth library upgrade",
        "review",
        SupervisorStatus.COMPLETED,
        "Done",
        100,
        contract_status=ContractStatus.COMPLETED,
        tasks=[("Upgrade and fix tests", TaskStatus.DONE)],
    ),
    DemoSpec(
        "Flaky test triage",
        "execute",
        SupervisorStatus.FAILED,
        "Gave up after 3 retries",
        40,
        tasks=[("Reproduce flake in CI", TaskStatus.FAILED)],
        error="Task 'Reproduce flake in CI' failed three times: runner out of disk space.",
    ),
    DemoSpec(
        "Payments fraud rules",
        "plan",
        SupervisorStatus.BLOCKED,
        "Needs credentials",
        20,
        error="No sandbox API key for the payment provider; a human must add one.",
    ),
    DemoSpec(
        "Docs site rewrite",
        "research",
        SupervisorStatus.IDLE,
        "Nothing to do until the next phase",
        10,
        daemon="daemon-beta",
    ),
    DemoSpec("Kubernetes cost report", "research", SupervisorStatus.INITIALIZING, "Starting up", 0),
    DemoSpec(
        "Legacy CRM export",
        "execute",
        SupervisorStatus.INTERRUPTED,
        "Interrupted by daemon restart",
        35,
        daemon="daemon-gamma",
        tasks=[("Export accounts", TaskStatus.DONE), ("Export contacts", TaskStatus.INTERRUPTED)],
        waiting_on=["Export contacts"],
        silent_for=timedelta(hours=3),
    ),
    DemoSpec(
        "Customer support summariser",
        "execute",
        SupervisorStatus.WORKING,
        "Summarising ticket backlog",
        62,
        tasks=[("Summarise backlog Q3", TaskStatus.RUNNING)],
        waiting_on=["Summarise backlog Q3"],
        history_messages=900,
        history_message_size=4000,
    ),
    DemoSpec(
        "Inventory sync (stale)",
        "execute",
        SupervisorStatus.WORKING,
        "Syncing warehouse 7",
        48,
        daemon="daemon-gamma",
        tasks=[("Sync warehouse 7", TaskStatus.RUNNING)],
        waiting_on=["Sync warehouse 7"],
        silent_for=timedelta(hours=2),
    ),
    DemoSpec(
        "Release notes generator (inconsistent)",
        "review",
        SupervisorStatus.WAITING_FOR_USER,
        "Waiting for an answer that was lost",
        80,
        tasks=[("Draft notes", TaskStatus.DONE)],
        ghost_pending_task=True,
    ),
    DemoSpec(
        "Archived experiment",
        "plan",
        SupervisorStatus.WORKING,
        "Still thinks it is working",
        25,
        contract_status=ContractStatus.ARCHIVED,
        daemon="daemon-gamma",
    ),
]

SPECS += [
    DemoSpec(
        "Nightly reindex (stale on a live daemon)",
        "execute",
        SupervisorStatus.WORKING,
        "Rebuilding the product index",
        33,
        daemon="daemon-beta",
        tasks=[("Reindex products", TaskStatus.RUNNING)],
        waiting_on=["Reindex products"],
        silent_for=timedelta(minutes=45),
    ),
    DemoSpec(
        "Log pipeline retry (interrupted)",
        "execute",
        SupervisorStatus.INTERRUPTED,
        "Stopped by staff for a config fix",
        50,
        daemon="daemon-beta",
    ),
    DemoSpec(
        "Vendor contract review (unknown state)",
        "review",
        SupervisorStatus.WORKING,
        "Paused by a makima writer",
        60,
        stored_state="paused",
    ),
]

DAEMONS = {
    "daemon-alpha": (DaemonStatus.CONNECTED, timedelta(seconds=15)),
    "daemon-beta": (DaemonStatus.CONNECTED, timedelta(seconds=40)),
    "daemon-gamma": (DaemonStatus.DISCONNECTED, timedelta(hours=2)),
}


def _history(spec: DemoSpec) -> list[dict[str, Any]]:
    """A deterministic conversation: the same demo gives the same history, byte for byte."""
    filler = ("The agent reviewed the diff, ran the tests and noted the results. " * 80)[: spec.history_message_size]
    messages = [{"role": "user", "content": f"You supervise the contract '{spec.name}'. Start in phase {spec.phase}."}]
    for n in range(1, spec.history_messages):
        role = "assistant" if n % 2 else "user"
        messages.append({"role": role, "content": f"[{n}] {filler}"})
    return messages


@dataclass
class DemoSummary:
    contracts: int
    daemons: int
    tasks: int
    supervisors: int
    history_bytes: int
    created: int


@transaction.atomic
def seed_demo(now: datetime | None = None, *, reset: bool = False) -> DemoSummary:
    """Create the demo rows that are missing; returns what exists afterwards."""
    now = now or timezone.now()
    if reset:
        Contract.objects.filter(id__in=[demo_id("contract", spec.name) for spec in SPECS]).delete()
    daemons = {}
    for name, (status, silent) in DAEMONS.items():
        daemons[name], _ = Daemon.objects.update_or_create(
            id=demo_id("daemon", name), defaults={"name": name, "status": status, "last_heartbeat_at": now - silent}
        )
    history_bytes = 0
    created = 0
    for spec in SPECS:
        contract, _ = Contract.objects.update_or_create(
            id=demo_id("contract", spec.name),
            defaults={"name": spec.name, "phase": spec.phase, "status": spec.contract_status},
        )
        supervisor_task, _ = Task.objects.update_or_create(
            id=demo_id("task", spec.name, "supervisor"),
            defaults={
                "contract": contract,
                "name": f"Supervisor: {spec.name}",
                "status": TaskStatus.DONE if spec.state == SupervisorStatus.COMPLETED else TaskStatus.RUNNING,
                "is_supervisor": True,
                "daemon": daemons[spec.daemon],
            },
        )
        task_ids = {}
        for task_name, status in spec.tasks:
            task, _ = Task.objects.update_or_create(
                id=demo_id("task", spec.name, task_name),
                defaults={
                    "contract": contract,
                    "name": task_name,
                    "status": status,
                    "parent_task": supervisor_task,
                    "daemon": daemons[spec.daemon],
                    "completed_at": now if status in (TaskStatus.DONE, TaskStatus.FAILED) else None,
                },
            )
            task_ids[task_name] = task.id
        if SupervisorState.objects.filter(contract=contract).exists():
            continue
        questions = [
            {
                **q,
                "id": str(demo_id("question", spec.name, q["question"])),
                "askedAt": (now - timedelta(minutes=40 + i)).isoformat(),
            }
            for i, q in enumerate(spec.questions)
        ]
        history = _history(spec)
        save_supervisor_state_full(
            contract_id=contract.id,
            task_id=supervisor_task.id,
            phase=spec.phase,
            state=SupervisorStatus.WORKING if spec.ghost_pending_task else spec.state,
            conversation_history=history,
            pending_task_ids=[task_ids[name] for name in spec.waiting_on],
            spawned_task_ids=list(task_ids.values()),
            pending_questions=questions,
            current_activity=spec.activity,
            progress=spec.progress,
            error_message=spec.error,
        )
        backdate: dict[str, Any] = {"last_activity": now - spec.silent_for}
        if spec.stored_state:
            backdate["state"] = spec.stored_state
        if spec.ghost_pending_task:
            backdate["state"] = spec.state
            backdate["pending_task_ids"] = [demo_id("task", spec.name, "never-spawned")]
        SupervisorState.objects.filter(contract=contract).update(**backdate)
        history_bytes += sum(len(str(m["content"])) for m in history)
        created += 1
    return DemoSummary(
        contracts=Contract.objects.count(),
        daemons=Daemon.objects.count(),
        tasks=Task.objects.count(),
        supervisors=SupervisorState.objects.count(),
        history_bytes=history_bytes,
        created=created,
    )


# --- the live demo: something keeps changing while the admin is open ---------------------------------

#: Daemons the live demo keeps alive (daemon-gamma stays gone: its supervisors wait for a claim).
LIVE_DAEMONS = ("daemon-alpha", "daemon-beta")
#: The supervisor that gets a new question every ``ASK_EVERY`` ticks (while it has fewer than three).
LIVE_ASKER = "Docs site rewrite"
ASK_EVERY = 10


@dataclass
class LiveTick:
    number: int
    heartbeats: int
    asked: bool


def live_tick(number: int) -> LiveTick:
    """One step of ``seed_demo --live``, through the services a daemon's calls use.

    The two live daemons renew their lease, their working supervisors (not the
    deliberately stale one) report progress, and now and then one asks a question.
    """
    for name in LIVE_DAEMONS:
        record_daemon_heartbeat(demo_id("daemon", name))
    moving = SupervisorState.objects.filter(
        contract_id__in=[demo_id("contract", spec.name) for spec in SPECS if spec.silent_for < timedelta(minutes=5)],
        task__daemon_id__in=[demo_id("daemon", name) for name in LIVE_DAEMONS],
        state__in=[SupervisorStatus.WORKING, SupervisorStatus.WAITING_FOR_TASKS, SupervisorStatus.INITIALIZING],
    ).values_list("contract_id", "state", "progress")
    heartbeats = 0
    for contract_id, state, progress in moving:
        heartbeats += update_supervisor_heartbeat_state(
            contract_id, state=state, current_activity=f"Live demo step {number}", progress=(progress + 1) % 100
        )
    asked = False
    asker = demo_id("contract", LIVE_ASKER)
    if number % ASK_EVERY == 0:
        current = SupervisorState.objects.filter(contract_id=asker).values_list("pending_questions", flat=True).first()
        if current is not None and len(current) < 3:
            add_supervisor_pending_question(
                asker, {"question": f"Live demo question {number}: publish the next draft?", "choices": ["yes", "no"]}
            )
            asked = True
    return LiveTick(number, heartbeats, asked)
