"""The simulated world: N daemons (threads), each with its supervisors, and one human who answers questions.

Everything a daemon is told "yes" to is written down here (spawned tasks,
questions asked, answers received, resumes that succeeded, who owns which
supervisor), so ``invariants`` can compare it with the database afterwards.
Setup goes through the services (daemons, API keys, contracts, supervisor
tasks, a staff user); all traffic goes over HTTP to 127.0.0.1.

Two kinds of daemon test ownership (issue 11). A *zombie* is the old process
of a daemon that crashed: once other daemons have taken its supervisors over,
it still writes to them with its old key and old epoch; every such write must
be refused and none may land. A *quiet* daemon stops sending its own daemon
heartbeat but keeps working (supervisor heartbeats and other writes keep its
lease): other daemons try to take its supervisors over, and must never manage.

Failover (issue 16). A daemon that crashes for good either says it leaves
(``disconnected``) or just goes silent until its lease runs out; nobody in the
soak hands its supervisors to anyone. Every live daemon polls
``POST /supervisors/claim/`` every ``claim_every`` seconds with a capacity and
works on what it got, at the epoch each claim returned. The ledger records,
per orphaning (one supervisor left by one crash), who claimed it and when, so
the checks can demand: claimed within the bound, by one live daemon, once,
with the conversation and questions the ledger knows.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from .client import NO_ANSWER, Client, Recorder, Reply

SUP = "/contracts/{id}/supervisor/"
API = "/api/v1"


@dataclass
class Ledger:
    """What the clients were told succeeded: the expected contents of the database."""

    spawned: dict[uuid.UUID, list[str]] = field(default_factory=lambda: defaultdict(list))
    spawn_unsure: dict[uuid.UUID, set[str]] = field(default_factory=lambda: defaultdict(set))
    asked: dict[str, uuid.UUID] = field(default_factory=dict)
    answered: dict[str, str] = field(default_factory=dict)
    answer_wins: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # 200s per question
    received: dict[str, str] = field(default_factory=dict)
    resumes: dict[uuid.UUID, int] = field(default_factory=lambda: defaultdict(int))
    resumes_by_source: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ask_unsure: set[str] = field(default_factory=set)  # asked, but every attempt got 503
    answer_unsure: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    resume_unsure: dict[uuid.UUID, int] = field(default_factory=lambda: defaultdict(int))
    connections_killed: int = 0
    kills: int = 0
    takeovers: int = 0
    crashes: int = 0
    owner: dict[uuid.UUID, str] = field(default_factory=dict)  # contract -> daemon name
    answer_contract: dict[str, uuid.UUID] = field(default_factory=dict)  # answered question -> contract
    ack_unsure: set[str] = field(default_factory=set)  # an acknowledgement whose every attempt got 503
    #: Answers a human had been told were stored, not yet acknowledged, that a resume did not carry.
    answers_missing_from_resume: list[str] = field(default_factory=list)
    #: Answers not acknowledged when the traffic stopped, and those the current owners were offered then.
    unacked_at_stop: set[str] = field(default_factory=set)
    offered_at_stop: set[str] = field(default_factory=set)
    zombie_writes: int = 0
    zombie_refused: int = 0
    live_takeover_attempts: int = 0
    live_takeover_refused: int = 0
    live_takeover_attempts_on_quiet: int = 0  # of the attempts, those on a quiet daemon's supervisor
    live_takeovers: list[str] = field(default_factory=list)  # "contract from daemon": must stay empty
    #: A live owner's own write refused as superseded (its epoch was current): must stay empty.
    own_writes_refused: list[str] = field(default_factory=list)
    #: The conversation digests a supervisor may hold: the last PATCH that got a 200, plus unsure ones since.
    conversation: dict[uuid.UUID, set[str]] = field(default_factory=dict)
    #: Every supervisor left by a crash, claimed or not (failover).
    orphanings: list[Orphaning] = field(default_factory=list)
    claim_polls: int = 0
    claim_polls_nonempty: int = 0
    claim_failed: list[str] = field(default_factory=list)  # contracts a claim answered in ``failed``
    #: Claims whose answer the daemon dropped (or never got), and the supervisors it then found by listing.
    claim_answers_lost: int = 0
    found_by_listing: int = 0
    #: Claims of a supervisor that was not orphaned (its daemon alive, or already claimed for this crash).
    claims_not_orphaned: list[str] = field(default_factory=list)
    #: A claimed supervisor whose restoration context lost or invented a message or a question.
    claim_context_broken: list[str] = field(default_factory=list)
    #: Claimed supervisors that came back with messages, and with questions (pending or answered): the
    #: context check compared something.
    claimed_with_history: int = 0
    claimed_with_questions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Orphaning:
    """One supervisor left behind by one crash, and the claim that brought it back (if one did)."""

    contract: uuid.UUID
    daemon: str
    crashed_at: float  # time.monotonic()
    silent: bool  # the daemon said nothing (its lease ran out) rather than ``disconnected``
    claimed_by: str | None = None
    claimed_at: float | None = None

    @property
    def recovery_seconds(self) -> float | None:
        return None if self.claimed_at is None else self.claimed_at - self.crashed_at


@dataclass
class SoakConfig:
    daemons: int = 50
    supervisors_per_daemon: int = 2
    seconds: float = 60.0
    think_seconds: tuple[float, float] = (0.02, 0.15)
    crash_probability: float = 0.01
    takeover_share: float = 0.4
    #: People answering at once: two may answer the same question, and exactly one must win.
    humans: int = 2
    #: Every this many seconds, kill the service's database connections (pg_terminate_backend); 0 = never.
    kill_connections_every: float = 0.0
    seed: int | None = None
    #: The service's DAEMON_GONE_AFTER_SECONDS: short, so a quiet daemon's lease must be kept by its other requests.
    daemon_gone_after: int = 5
    #: Every this many daemons, one is quiet (own heartbeats stop a quarter of the way in); 0 = none.
    quiet_every: int = 5
    #: Requests a zombie sends to each supervisor taken over from its daemon.
    zombie_writes_per_supervisor: int = 5
    #: Every live daemon asks ``POST /supervisors/claim/`` for orphans this often (seconds).
    claim_every: float = 1.0
    #: The ``capacity`` each claim asks for.
    claim_capacity: int = 5
    #: The share of claims that took something whose answer the daemon never gets (a timeout, a dropped
    #: connection): it must find those supervisors by listing its own and resume them (docs/api.md).
    claim_answer_lost: float = 0.2
    #: Of the crashes that leave supervisors behind, the share whose daemon goes silent (no ``disconnected``).
    silent_share: float = 0.5
    #: Added to lease + claim period for the recovery bound: CPU contention, lease renewal granularity.
    recovery_slack: float = 5.0
    #: Run a webhook receiver, workers and a scheduler, and check each question asked was notified once.
    notify: bool = True

    @property
    def recovery_bound(self) -> float:
        """Crash to claimed: the lease must run out, then a claim poll comes round, plus slack."""
        return self.daemon_gone_after + self.claim_every + self.recovery_slack


@dataclass
class DaemonIdentity:
    name: str
    daemon_id: uuid.UUID
    key: str


class World:
    """The shared client-side picture: ledger, ownership, orphans waiting for a takeover."""

    def __init__(self, host: str, port: int, config: SoakConfig) -> None:
        self.host, self.port, self.config = host, port, config
        self.recorder = Recorder()
        self.ledger = Ledger()
        self.stop = threading.Event()
        # Serialises takeovers (and attempts on live daemons) with a daemon's going away and return.
        self.takeover_lock = threading.RLock()
        #: Notified whenever a claim takes orphans: a crashed daemon waits on it before it comes back.
        self.orphans_changed = threading.Condition(self.takeover_lock)
        self.orphans: dict[uuid.UUID, Orphaning] = {}  # contract -> its open orphaning
        self.owner_sim: dict[uuid.UUID, DaemonSim] = {}  # contract -> the daemon the soak believes owns it
        #: Set once traffic stopped and nothing is orphaned any more (or the bound passed): claim pollers end.
        self.claims_done = threading.Event()
        self.sims: list[DaemonSim] = []
        self.run_id = secrets.token_hex(3)
        #: Written into every zombie write (activity, phase, question), so a landed one shows in the database.
        self.zombie_marker = f"zombie-{self.run_id}"

    def client(self, headers: dict[str, str]) -> Client:
        """A client that, when the database is being taken away, retries 503s as a daemon would."""
        client = Client(self.host, self.port, self.recorder, headers=headers)
        client.retries_on_unavailable = 5 if self.config.kill_connections_every else 0
        return client


def setup_world(world: World, *, staff_password: str | None = None) -> tuple[list[DaemonIdentity], str]:
    """Daemons with keys, a contract and supervisor task per supervisor, and a staff session (services only)."""
    from django.contrib.auth.models import Permission, User
    from django.test import Client as DjangoClient

    from supervisors.models import Daemon
    from supervisors.services.world import create_contract, create_daemon_key, create_task

    identities = []
    for index in range(world.config.daemons):
        daemon = Daemon.objects.create(name=f"soak-{world.run_id}-d{index:03d}")
        key = create_daemon_key(daemon.id, name="soak").raw
        identity = DaemonIdentity(daemon.name, daemon.id, key)
        sim = DaemonSim(
            world, identity, random.Random(None if world.config.seed is None else world.config.seed + index)
        )
        for number in range(world.config.supervisors_per_daemon):
            contract = create_contract(name=f"soak {world.run_id} {daemon.name} #{number}", phase="plan")
            task = create_task(
                contract_id=contract.id, name="supervisor", is_supervisor=True, daemon_id=daemon.id, status="running"
            )
            sim.supervisors[contract.id] = task.id
            world.ledger.owner[contract.id] = daemon.name
            world.owner_sim[contract.id] = sim
        identities.append(identity)
        world.sims.append(sim)
    if len(world.sims) > 1:
        world.sims[0].forced_takeover_at = world.config.seconds / 3
    if len(world.sims) > 2:  # and one goes silent early, so every run has a claim after a lease ran out
        world.sims[-1].forced_takeover_at, world.sims[-1].forced_silent = world.config.seconds / 5, True
    if world.config.quiet_every:
        for sim in world.sims[1 :: world.config.quiet_every]:
            sim.quiet_after = world.config.seconds / 4
    user = User.objects.create_user(
        f"soak-human-{world.run_id}", password=staff_password or secrets.token_urlsafe(16), is_staff=True
    )
    for codename in ("view_supervisorstate", "answer_question"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="supervisors", codename=codename))
    django_client = DjangoClient()
    django_client.force_login(user)  # a real session row; gunicorn reads it from the same database
    return identities, django_client.cookies["sessionid"].value


class DaemonSim:
    """One daemon: heartbeats, spawns, questions, answer pick-up, crashes and takeovers."""

    def __init__(self, world: World, identity: DaemonIdentity, rng: random.Random) -> None:
        self.world, self.identity, self.rng = world, identity, rng
        self.supervisors: dict[uuid.UUID, uuid.UUID] = {}  # contract -> supervisor task
        self.tasks: dict[uuid.UUID, list[str]] = defaultdict(list)  # contract -> spawned, still running
        self.gone = False
        self.client: Client | None = None
        #: Seconds into the run at which this daemon goes away for a while, so a takeover surely happens.
        self.forced_takeover_at: float | None = None
        self.forced_silent = False
        #: Down after a crash (restarting, or gone): its claim poller sends nothing.
        self.down = False
        #: Held by the claim poller over a claim and everything that follows from its reply, and by a crash
        #: as the process goes down. Without it a claim the server made before the crash's ``disconnected``
        #: could reach the ledger after another daemon's claim of the same supervisor, which the server made
        #: later: the ledger would then name the wrong owner and orphan twice what another daemon runs.
        self.life = threading.Lock()
        #: Seconds into the run after which this daemon sends no daemon heartbeat any more (a quiet daemon).
        self.quiet_after: float | None = None
        self.quiet = False
        #: The epoch (restorationCount) this daemon believes current per supervisor; None: unsure, not sent.
        self.epochs: dict[uuid.UUID, int | None] = {}
        #: Supervisors taken over from this daemon while it was gone, with the epoch it had: its zombie's targets.
        self.lost: dict[uuid.UUID, int | None] = {}
        #: A claim's answer went missing: until a listing of its supervisors is done, it may own unknown ones.
        self.claim_unsure = False
        self.started = False  # its supervisors exist (its first PUTs are done)
        #: This daemon's copy of each supervisor's conversation, as a daemon keeps it; absent: unsure, read it
        #: again before the next append. Save points send only the new message (the delta form, issue 12).
        self.histories: dict[uuid.UUID, list] = {}
        self.said = 0  # messages this daemon wrote, numbered so every one is told apart

    # --- plumbing ---------------------------------------------------------------------
    def call(
        self,
        method: str,
        template: str,
        contract: uuid.UUID | None = None,
        body=None,
        client: Client | None = None,
        **kwargs,
    ):
        """One request; a write to a supervisor carries the epoch this daemon believes current. ``client``: the
        claim poller's own connection (a connection serves one thread)."""
        path = API + template.replace("{id}", str(contract) if contract else "")
        for name, value in kwargs.pop("path_values", {}).items():
            path = path.replace("{" + name + "}", str(value))
        path += kwargs.pop("query", "")
        epoch = self.epochs.get(contract) if contract else None
        if method != "GET" and template.startswith(SUP) and not template.endswith("resume/") and epoch is not None:
            kwargs["headers"] = {**kwargs.get("headers", {}), "Supervisor-Epoch": str(epoch)}
        reply = (client or self.client).request(method, path, body, endpoint=template, **kwargs)
        if reply.status == 409 and isinstance(reply.body, dict) and reply.body.get("code") == "superseded":
            with self.world.ledger.lock:
                self.world.ledger.own_writes_refused.append(f"{method} {template} {contract}: {reply.body}")
        return reply

    def mine(self) -> list[uuid.UUID]:
        with self.world.takeover_lock:
            return list(self.supervisors)

    # --- the life of a daemon ---------------------------------------------------------
    def run(self) -> None:
        self.client = self.world.client(headers={"Authorization": f"Bearer {self.identity.key}"})
        try:
            self.daemon_heartbeat()
            for contract, task in list(self.supervisors.items()):
                reply = self.call(
                    "PUT",
                    SUP,
                    contract,
                    {"taskId": str(task), "phase": "plan", "state": "working", "conversationHistory": []},
                    expect=(201,),
                )
                self.epochs[contract] = reply.body.get("restorationCount") if reply.ok else None
                if reply.ok:
                    self.histories[contract] = []
            self.started = True
            actions = [
                (self.heartbeat, 30),
                (self.daemon_heartbeat, 8),
                (self.spawn, 14),
                (self.ask, 9),
                (self.pick_up_answers, 14),
                (self.read_state, 5),
                (self.patch_history, 4),
                (self.finish_task, 5),
                (self.phase, 2),
                (self.try_takeover_of_live, 2),
            ]
            funcs, weights = zip(*actions, strict=True)
            started = time.monotonic()
            while not self.world.stop.is_set():
                time.sleep(self.rng.uniform(*self.world.config.think_seconds))
                if self.quiet_after is not None and time.monotonic() - started >= self.quiet_after:
                    self.quiet_after, self.quiet = None, True
                if self.forced_takeover_at is not None and time.monotonic() - started >= self.forced_takeover_at:
                    self.forced_takeover_at = None
                    self.crash(takeover=True, silent=self.forced_silent)
                    continue
                if self.rng.random() < self.world.config.crash_probability:
                    self.crash(takeover=False if self.quiet else None)
                    continue
                self.rng.choices(funcs, weights)[0]()
        finally:
            self.client.close()

    def daemon_heartbeat(self, status: str = "connected") -> None:
        """The daemon's own heartbeat, carrying its supervisors' (each with its epoch); a quiet daemon sends none."""
        if self.quiet:
            return self.heartbeat()
        items = []
        for contract in self.mine():
            item = {
                "contractId": str(contract),
                "state": "working",
                "currentActivity": "soak",
                "progress": self.rng.randint(0, 100),
            }
            if self.epochs.get(contract) is not None:
                item["epoch"] = self.epochs[contract]
            items.append(item)
        reply = self.call("POST", "/daemons/me/heartbeat/", body={"status": status, "supervisors": items})
        if self.started and reply.ok and reply.body.get("supervisorsNotUpdated"):
            with self.world.ledger.lock:  # its own supervisors (all exist now), at its epochs: all must be written
                self.world.ledger.own_writes_refused.append(f"daemon heartbeat: {reply.body}")

    # --- the conversation, in the delta form ------------------------------------------------
    def with_message(self, contract: uuid.UUID, body: dict) -> tuple[dict, dict | None]:
        """``body`` with one new message as ``conversationAppend`` (and the message), or as it is when this
        daemon cannot learn its supervisor's conversation length now."""
        history = self.histories.get(contract)
        if history is None:
            reply = self.call("GET", SUP, contract, query="?include=conversationHistory")
            if not reply.ok:
                return body, None
            history = self.histories[contract] = reply.body["conversationHistory"]
        self.said += 1
        message = {
            "role": "assistant",
            "content": f"{self.identity.name} #{self.said} " + "w" * self.rng.randint(10, 800),
        }
        return {**body, "conversationAppend": {"expectedLength": len(history), "messages": [message]}}, message

    def after_message(self, contract: uuid.UUID, reply: Reply, message: dict | None) -> None:
        """What the save point's answer means for this daemon's copy and for the ledger."""
        if message is None:
            return
        history = self.histories.get(contract)
        if history is None:
            return
        with self.world.ledger.lock:
            if reply.ok:
                history.append(message)
                self.world.ledger.conversation[contract] = {digest(history)}
            elif reply.status >= 500 or reply.status == NO_ANSWER or reply.after_unavailable:
                # The first attempt may have landed (a retry after a 503 then finds the length moved on).
                self.world.ledger.conversation.setdefault(contract, {digest([])}).add(digest([*history, message]))
                self.histories.pop(contract, None)
            elif isinstance(reply.body, dict) and reply.body.get("code") == "conversation_length_mismatch":
                self.histories.pop(contract, None)

    def pick(self) -> uuid.UUID | None:
        mine = self.mine()
        return self.rng.choice(mine) if mine else None

    def heartbeat(self) -> None:
        if (contract := self.pick()) is not None:
            body = {"state": "working", "currentActivity": "thinking", "progress": self.rng.randint(0, 100)}
            self.call("POST", SUP + "heartbeat/", contract, body)

    def spawn(self) -> None:
        if (contract := self.pick()) is None:
            return
        reply = self.call(
            "POST",
            "/tasks/",
            body={"contractId": str(contract), "name": "work", "daemonId": str(self.identity.daemon_id)},
            expect=(201,),
        )
        if not reply.ok:
            return
        task_id = reply.body["id"]
        retries = 2 if self.rng.random() < 0.15 else 1  # now and then the daemon retries: must count once
        for attempt in range(retries):
            body, message = {"taskId": task_id, "wait": True}, None
            if attempt == 0:  # a retry carries no message: the first attempt's is in (or the copy is unsure)
                body, message = self.with_message(contract, body)
            reply = self.call("POST", SUP + "spawned-tasks/", contract, body)
            self.after_message(contract, reply, message)
            with self.world.ledger.lock:
                if reply.ok and task_id not in self.world.ledger.spawned[contract]:
                    self.world.ledger.spawned[contract].append(task_id)
                elif reply.status == NO_ANSWER or reply.status >= 500 or reply.after_unavailable:
                    self.world.ledger.spawn_unsure[contract].add(task_id)
        if reply.ok:
            self.tasks[contract].append(task_id)

    def ask(self) -> None:
        if (contract := self.pick()) is None:
            return
        question = {
            "id": str(uuid.uuid4()),
            "question": f"Go on with step {self.rng.randint(1, 99)}? <b>'; DROP TABLE contracts; --</b>",
            "choices": ["yes", "no"],
            "questionType": "general",
        }
        retries = 2 if self.rng.random() < 0.15 else 1
        for attempt in range(retries):
            # A retry finds it still pending (200), or already answered by a human in between (409).
            expect = (201,) if attempt == 0 else (200, 409)
            body, message = self.with_message(contract, question) if attempt == 0 else (question, None)
            reply = self.call("POST", SUP + "questions/", contract, body, expect=expect)
            self.after_message(contract, reply, message)
            with self.world.ledger.lock:
                if reply.ok:
                    self.world.ledger.asked[question["id"]] = contract
                elif reply.status >= 500 or reply.status == NO_ANSWER or reply.after_unavailable:
                    self.world.ledger.ask_unsure.add(question["id"])

    def pick_up_answers(self, contracts: list[uuid.UUID] | None = None, *, offered: set[str] | None = None) -> None:
        """Fetch the answers waiting for some supervisors and acknowledge them (``offered`` collects their ids)."""
        for contract in contracts if contracts is not None else [c for c in [self.pick()] if c]:
            reply = self.call("GET", SUP + "answers/", contract)
            if not reply.ok:
                continue
            for answer in reply.body:
                qid = answer["questionId"]
                if offered is not None:
                    offered.add(qid)
                self.acknowledge(contract, qid, answer["answer"], retries=2 if self.rng.random() < 0.1 else 1)

    def acknowledge(
        self, contract: uuid.UUID, qid: str, text: str, *, retries: int = 1, client: Client | None = None
    ) -> None:
        for _ in range(retries):
            ack = self.call("POST", SUP + "answers/{qid}/ack/", contract, client=client, path_values={"qid": qid})
            with self.world.ledger.lock:
                if ack.ok:
                    self.world.ledger.received[qid] = text
                elif ack.status >= 500 or ack.status == NO_ANSWER:
                    self.world.ledger.ack_unsure.add(qid)

    def read_state(self) -> None:
        if (contract := self.pick()) is not None:
            self.call("GET", SUP, contract)

    def patch_history(self) -> None:
        if (contract := self.pick()) is not None:
            history = [
                {"role": "user", "content": "x" * self.rng.randint(10, 2000)} for _ in range(self.rng.randint(1, 20))
            ]
            reply = self.call("PATCH", SUP, contract, {"conversationHistory": history, "currentActivity": "reading"})
            with self.world.ledger.lock:
                if reply.ok:
                    self.world.ledger.conversation[contract] = {digest(history)}
                    self.histories[contract] = list(history)
                elif reply.status >= 500 or reply.status == NO_ANSWER:
                    self.world.ledger.conversation.setdefault(contract, {digest([])}).add(digest(history))
                    self.histories.pop(contract, None)

    def finish_task(self) -> None:
        contract = self.pick()
        if contract is None or not self.tasks[contract]:
            return
        task_id = self.tasks[contract].pop(self.rng.randrange(len(self.tasks[contract])))
        self.call("POST", "/tasks/{tid}/status/", body={"status": "done"}, path_values={"tid": task_id})

    def phase(self) -> None:
        if (contract := self.pick()) is not None:
            body, message = self.with_message(contract, {"phase": self.rng.choice(["plan", "execute", "review"])})
            self.after_message(contract, self.call("POST", SUP + "phase/", contract, body), message)

    # --- crashes, restarts and takeovers -------------------------------------------------
    def resume(self, contract: uuid.UUID, source: str, *, client: Client | None = None) -> Reply | None:
        """Resume (with an Idempotency-Key, now and then retried); the reply when it restored, else None.

        The answers the human gave and this daemon never acknowledged must come
        with the resume (``pendingAnswers``): the daemon acknowledges them there.
        ``client``: the calling thread's connection (default: the daemon's main one).
        """
        with self.world.ledger.lock:
            given = {
                qid
                for qid, c in self.world.ledger.answer_contract.items()
                if c == contract and qid not in self.world.ledger.received and qid not in self.world.ledger.ack_unsure
            }
        key = str(uuid.uuid4())
        body = {"source": source, "reason": "soak"}
        reply = self.call("POST", SUP + "resume/", contract, body, client, headers={"Idempotency-Key": key})
        if reply.ok and self.rng.random() < 0.2:  # the answer got lost: retry with the same key, restores nothing
            again = self.call("POST", SUP + "resume/", contract, body, client, headers={"Idempotency-Key": key})
            if again.ok and again.body.get("restorationCount") != reply.body.get("restorationCount"):
                self.world.recorder.record("retried resume restored twice", 599, 0.0, (), again.body)
        with self.world.ledger.lock:
            if reply.ok:
                self.world.ledger.resumes[contract] += 1
                self.world.ledger.resumes_by_source[source] += 1
            elif reply.status >= 500 or reply.status == NO_ANSWER:
                self.world.ledger.resume_unsure[contract] += 1
        if not reply.ok:
            return None
        offered = {a["questionId"]: a["answer"] for a in reply.body.get("pendingAnswers", [])}
        with self.world.ledger.lock:
            self.world.ledger.answers_missing_from_resume += [f"{q} ({source})" for q in sorted(given - set(offered))]
        self.epochs[contract] = reply.body.get("restorationCount")
        self.histories[contract] = reply.body["conversationHistory"]
        for qid, text in offered.items():
            self.acknowledge(contract, qid, text, client=client)
        return reply

    def crash(self, *, takeover: bool | None = None, silent: bool | None = None) -> None:
        """The daemon process dies: it forgets its tasks and comes back at once (daemon_restart), or is gone
        for good: it says it leaves (``disconnected``) or just falls silent until its lease runs out, and
        only the claim endpoint brings its supervisors back, on the daemons that poll it. When every one of
        them is claimed, its old process, a zombie, still writes to them, and a new process of the daemon
        starts empty-handed (it may claim others' orphans later)."""
        with self.world.ledger.lock:
            self.world.ledger.crashes += 1
        with self.life:  # a claim on its way is done first (its reply, its acknowledgements)
            self.tasks.clear()
            self.histories.clear()
            self.client.close()
            self.down = True
        if takeover if takeover is not None else self.rng.random() < self.world.config.takeover_share:
            if silent is None:
                silent = self.rng.random() < self.world.config.silent_share
            with self.world.takeover_lock:  # gone before it says so: nobody tries it as a live daemon from now
                self.gone = True
            if not silent:
                self.daemon_heartbeat(status="disconnected")
            self.orphan_mine(silent=silent)
            bound = self.world.config.recovery_bound + 5
            with self.world.orphans_changed:  # back only once its supervisors run elsewhere (bounded)
                self.world.orphans_changed.wait_for(lambda: not self.orphaned_of_mine(), timeout=bound)
                lost, self.lost = self.lost, {}
            self.epochs.clear()
            self.zombie(lost)
            with self.world.takeover_lock:
                # What nobody claimed within the bound (a broken promise, already on record) is still ours.
                for contract in self.orphaned_of_mine():
                    del self.world.orphans[contract]
                self.daemon_heartbeat()
                self.gone = False
        else:
            self.epochs.clear()
            self.world.stop.wait(self.rng.uniform(0.1, 0.5))
            self.daemon_heartbeat()
        self.down = False
        for contract in self.mine():
            self.resume(contract, "daemon_restart")

    def orphan_mine(self, *, silent: bool) -> None:
        """Every supervisor of this (gone) daemon is orphaned from now: one open orphaning each."""
        now = time.monotonic()
        with self.world.takeover_lock:
            for contract in self.supervisors:
                orphaning = Orphaning(contract, self.identity.name, now, silent)
                self.world.orphans[contract] = orphaning
                with self.world.ledger.lock:
                    self.world.ledger.orphanings.append(orphaning)

    def orphaned_of_mine(self) -> list[uuid.UUID]:
        with self.world.takeover_lock:
            return [c for c in self.supervisors if c in self.world.orphans]

    def zombie(self, lost: dict[uuid.UUID, int | None]) -> None:
        """The crashed process, still running: it writes to the supervisors taken over from it, with its old
        key and its old epoch (every other write without the header). Each write must be refused."""
        client = self.world.client({"Authorization": f"Bearer {self.identity.key}"})
        marker = self.world.zombie_marker
        try:
            for contract, epoch in lost.items():
                for number in range(self.world.config.zombie_writes_per_supervisor):
                    with_epoch = epoch is not None and number % 2 == 0
                    headers = {"Supervisor-Epoch": str(epoch)} if with_epoch else {}
                    kind = self.rng.choice(["heartbeat/", "", "phase/", "questions/", "batch"])
                    if kind == "batch":
                        item = {
                            "contractId": str(contract),
                            "state": "working",
                            "currentActivity": marker,
                            "progress": 99,
                        }
                        if with_epoch:
                            item["epoch"] = epoch
                        reply = client.request(
                            "POST",
                            f"{API}/daemons/me/heartbeat/",
                            {"status": "connected", "supervisors": [item]},
                            endpoint="/daemons/me/heartbeat/ (zombie)",
                        )
                        refused = reply.ok and str(contract) in (reply.body.get("supervisorsNotUpdated") or [])
                    else:
                        method, body = {
                            "heartbeat/": ("POST", {"state": "working", "currentActivity": marker, "progress": 99}),
                            "": ("PATCH", {"currentActivity": marker, "conversationHistory": []}),
                            "phase/": ("POST", {"phase": marker}),
                            "questions/": (
                                "POST",
                                {"id": str(uuid.uuid4()), "question": marker, "choices": ["yes", "no"]},
                            ),
                        }[kind]
                        reply = client.request(
                            method,
                            API + SUP.replace("{id}", str(contract)) + kind,
                            body,
                            endpoint=SUP + kind + " (zombie)",
                            expect=(404, 409),
                            headers=headers,
                        )
                        refused = reply.status == 404 or (
                            reply.status == 409
                            and isinstance(reply.body, dict)
                            and reply.body.get("code") == "superseded"
                        )
                    with self.world.ledger.lock:
                        self.world.ledger.zombie_writes += 1
                        self.world.ledger.zombie_refused += refused
                # Nor may it get the supervisor back by resuming it: taken over, it is someone else's.
                reply = client.request(
                    "POST",
                    API + SUP.replace("{id}", str(contract)) + "resume/",
                    {"source": "daemon_restart", "reason": "soak: a zombie"},
                    endpoint=SUP + "resume/ (zombie)",
                    expect=(404,),
                )
                with self.world.ledger.lock:
                    self.world.ledger.zombie_writes += 1
                    self.world.ledger.zombie_refused += reply.status == 404
        finally:
            client.close()

    # --- failover: claiming orphans -------------------------------------------------------
    def poll_claims(self) -> None:
        """The daemon's claim loop (its own thread and connection): every ``claim_every`` seconds, unless it is
        down, ask for up to ``claim_capacity`` orphans; it goes on after the traffic stops until nothing is
        orphaned, so every crash is recovered."""
        client = self.world.client({"Authorization": f"Bearer {self.identity.key}"})
        contracts = list(self.world.ledger.owner)
        # Only this run's supervisors: an earlier run in the same database leaves orphans of its own.
        body = {"capacity": self.world.config.claim_capacity}
        if len(contracts) <= 1000:
            body["contractIds"] = [str(c) for c in contracts]
        try:
            while not self.world.claims_done.wait(self.rng.uniform(0.5, 1.5) * self.world.config.claim_every):
                with self.life:
                    if not self.down and self.started:
                        self.claim(client, body)
        finally:
            client.close()

    def claim(self, client: Client, body: dict) -> None:
        if self.claim_unsure and not self.find_lost_claims(client):
            return  # the listing failed: claiming more before knowing what is ours would only add to it
        reply = client.request("POST", f"{API}/supervisors/claim/", body, endpoint="/supervisors/claim/")
        claimed_at = time.monotonic()
        if not reply.ok:
            # A 503 or no answer may come after the claim committed: what it took is ours, unknown to us.
            self.claim_unsure = reply.status >= 500 or reply.status == NO_ANSWER
            return
        with self.world.ledger.lock:
            self.world.ledger.claim_polls += 1
            self.world.ledger.claim_polls_nonempty += bool(reply.body["claimed"])
            self.world.ledger.claim_failed += reply.body["failed"]
        if reply.body["claimed"] and self.rng.random() < self.world.config.claim_answer_lost:
            with self.world.ledger.lock:
                self.world.ledger.claim_answers_lost += 1
            self.claim_unsure = True  # the answer is dropped on its way back: as a timeout would
            self.find_lost_claims(client)
            return
        for context in reply.body["claimed"]:
            self.take_claimed(client, uuid.UUID(context["contractId"]), context, claimed_at)
        # Sent again after a 503: the first attempt may have taken supervisors this answer does not name.
        self.claim_unsure = reply.after_unavailable

    def find_lost_claims(self, client: Client) -> bool:
        """After a claim whose answer is missing: list this daemon's supervisors and resume, as their owner,
        each one it does not know (docs/api.md, "A claim whose answer never arrived"). Whether it is done."""
        listed: set[uuid.UUID] = set()
        for page in range(100):
            reply = client.request(
                "GET", f"{API}/supervisors/?limit=1000&offset={page * 1000}", endpoint="/supervisors/"
            )
            if not reply.ok:
                return False
            listed |= {uuid.UUID(item["contractId"]) for item in reply.body}
            if 'rel="next"' not in reply.headers.get("link", ""):
                break
        unknown = [c for c in listed if c in self.world.ledger.owner and c not in self.supervisors]
        for contract in unknown:
            reply = self.resume(contract, "daemon_restart", client=client)  # counts itself, acknowledges answers
            if reply is None:
                return False  # tried again before the next claim
            with self.world.ledger.lock:
                self.world.ledger.found_by_listing += 1
            # The claim's own restoration, and the supervisor this daemon's from now.
            self.take_claimed(client, contract, reply.body, time.monotonic(), acknowledge=False)
        self.claim_unsure = False
        return True

    def take_claimed(
        self, client: Client, contract: uuid.UUID, context: dict, claimed_at: float, *, acknowledge: bool = True
    ) -> None:
        """Make a claimed supervisor this daemon's, at the epoch the claim returned; check what came with it.

        ``acknowledge``: acknowledge the answers the context carries (False: a resume already did)."""
        ledger = self.world.ledger
        with self.world.orphans_changed:
            orphaning = self.world.orphans.pop(contract, None)
            previous = self.world.owner_sim[contract]
            if orphaning is None or not previous.gone:
                with ledger.lock:
                    ledger.claims_not_orphaned.append(
                        f"{contract} by {self.identity.name} from {previous.identity.name} "
                        f"({'alive' if not previous.gone else 'already claimed'})"
                    )
            else:
                orphaning.claimed_by, orphaning.claimed_at = self.identity.name, claimed_at
            self.check_context(contract, context)
            self.histories[contract] = context["conversationHistory"]
            previous.histories.pop(contract, None)
            self.supervisors[contract] = previous.supervisors.pop(contract)
            previous.lost[contract] = previous.epochs.pop(contract, None)
            self.epochs[contract] = context["restorationCount"]
            self.world.owner_sim[contract] = self
            with ledger.lock:
                ledger.takeovers += 1
                ledger.resumes[contract] += 1
                ledger.resumes_by_source["task_reassignment"] += 1
                ledger.owner[contract] = self.identity.name
            self.world.orphans_changed.notify_all()
        for answer in context.get("pendingAnswers", []) if acknowledge else []:
            self.acknowledge(contract, answer["questionId"], answer["answer"], client=client)

    def check_context(self, contract: uuid.UUID, context: dict) -> None:
        """The claim's restoration context holds the conversation and the questions the ledger knows of."""
        ledger = self.world.ledger
        with ledger.lock:
            histories = ledger.conversation.get(contract, {digest([])})
            asked = {q for q, c in ledger.asked.items() if c == contract}
            acknowledged = set(ledger.received)
            unsure = set(ledger.ask_unsure)
        problems = []
        if digest(context["conversationHistory"]) not in histories:
            problems.append(f"conversation of {len(context['conversationHistory'])} messages is not the last written")
        pending = {str(q["id"]) for q in context["pendingQuestions"]}
        answered = {a["questionId"] for a in context.get("pendingAnswers", [])}
        lost = asked - pending - answered - acknowledged
        # A question answered and acknowledged earlier may not come back; one the soak never asked may not either.
        unknown = pending - asked - unsure
        if lost:
            problems.append(f"questions lost: {_first(lost)}")
        if unknown:
            problems.append(f"questions unknown: {_first(unknown)}")
        with ledger.lock:
            ledger.claimed_with_history += bool(context["conversationHistory"])
            ledger.claimed_with_questions += bool(pending | answered)
            if problems:
                ledger.claim_context_broken.append(f"{contract}: {'; '.join(problems)}")

    def try_takeover_of_live(self) -> None:
        """Try to take over a supervisor whose daemon is alive (mostly a quiet one's): must be a 404."""
        with self.world.takeover_lock:  # its owner cannot go away meanwhile
            if self.gone:
                return
            alive = [s for s in self.world.sims if s is not self and not s.gone and s.started and s.supervisors]
            quiet = [s for s in alive if s.quiet]
            pool = quiet if quiet and self.rng.random() < 0.7 else alive
            if not pool:
                return
            owner = self.rng.choice(pool)
            contract = self.rng.choice(list(owner.supervisors))
            reply = self.client.request(
                "POST",
                API + SUP.replace("{id}", str(contract)) + "resume/",
                {"source": "task_reassignment", "reason": "soak: its daemon is alive"},
                endpoint=SUP + "resume/ (live owner)",
                expect=(404,),
            )
            with self.world.ledger.lock:
                self.world.ledger.live_takeover_attempts += 1
                self.world.ledger.live_takeover_attempts_on_quiet += owner.quiet
                if reply.status == 404:
                    self.world.ledger.live_takeover_refused += 1
                elif reply.ok:  # a breach: count its restoration, so the restoration check stays about resumes
                    self.world.ledger.live_takeovers.append(f"{contract} from {owner.identity.name}")
                    self.world.ledger.resumes[contract] += 1
                    self.world.ledger.resumes_by_source["task_reassignment"] += 1


def digest(history: list) -> str:
    """A conversation's fingerprint: its messages' roles and contents, in order."""
    messages = [(m.get("role"), m.get("content")) if isinstance(m, dict) else m for m in history]
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


def _first(items: set[str], n: int = 3) -> str:
    ordered = sorted(items)
    return ", ".join(ordered[:n]) + (f" (+{len(ordered) - n} more)" if len(ordered) > n else "")


class Human:
    """Answers pending questions through the API with a staff session, now and then twice (a double click)."""

    def __init__(self, world: World, session_key: str, rng: random.Random) -> None:
        csrf = secrets.token_hex(16)  # 32 characters: a valid unmasked CSRF secret
        self.world, self.rng = world, rng
        self.client = world.client({"Cookie": f"sessionid={session_key}; csrftoken={csrf}", "X-CSRFToken": csrf})

    def run(self) -> None:
        try:
            while not self.world.stop.is_set():
                self.world.stop.wait(self.rng.uniform(0.05, 0.3))
                items = self.pending_questions()
                for item in self.rng.sample(items, min(len(items), 10)):
                    if self.world.stop.is_set():
                        break
                    self.answer(uuid.UUID(item["contractId"]), item["question"]["id"])
        finally:
            self.client.close()

    def pending_questions(self, pages: int = 10) -> list[dict]:
        """The overview, oldest first, page by page; only this run's supervisors (earlier runs may have left
        questions in the same database)."""
        items: list[dict] = []
        for page in range(pages):
            reply = self.client.request(
                "GET",
                f"{API}/supervisors/pending-questions/?limit=1000&offset={page * 1000}",
                endpoint="/supervisors/pending-questions/",
            )
            if not reply.ok:
                break
            body = reply.body
            results = body["results"] if isinstance(body, dict) else body
            items += [item for item in results if uuid.UUID(item["contractId"]) in self.world.ledger.owner]
            if not isinstance(body, dict) or not body.get("next"):
                break
        return items

    def answer(self, contract: uuid.UUID, qid: str) -> None:
        text = self.rng.choice(["yes", "no", "later, <script>alert(1)</script>", "ja, gerne — 続けて"])
        path = f"{API}/contracts/{contract}/supervisor/questions/{qid}/answer/"
        endpoint = SUP + "questions/{qid}/answer/"
        # Another human may have answered it a moment ago: 409 (or 404 once it is gone), never two answers.
        reply = self.client.request("POST", path, {"answer": text}, endpoint=endpoint, expect=(200, 404, 409))
        if (reply.after_unavailable and reply.status in (404, 409)) or reply.status >= 500 or reply.status == NO_ANSWER:
            with self.world.ledger.lock:  # perhaps the attempt that got a 503 answered it after all
                self.world.ledger.answer_unsure[qid].add(text)
        if reply.ok:
            with self.world.ledger.lock:
                self.world.ledger.answered[qid] = text
                self.world.ledger.answer_wins[qid] += 1
                self.world.ledger.answer_contract[qid] = contract
            if self.rng.random() < 0.1:
                self.client.request("POST", path, {"answer": text}, endpoint=endpoint + " (again)", expect=(404, 409))


def run_world(world: World, session_key: str) -> None:
    """Run every daemon and the human until ``seconds`` have passed, then let daemons pick up the last answers."""
    rng = random.Random(world.config.seed)
    threads = [threading.Thread(target=sim.run, name=sim.identity.name, daemon=True) for sim in world.sims]
    pollers = [
        threading.Thread(target=sim.poll_claims, name=f"{sim.identity.name}-claims", daemon=True) for sim in world.sims
    ]
    for number in range(world.config.humans):
        human = Human(world, session_key, random.Random(rng.random()))
        threads.append(threading.Thread(target=human.run, name=f"human-{number}", daemon=True))
    for thread in threads + pollers:
        thread.start()
    world.stop.wait(world.config.seconds)
    world.stop.set()
    # Daemons gone at the stop come back once their supervisors are claimed: claims go on till then (bounded).
    with world.orphans_changed:
        world.orphans_changed.wait_for(lambda: not world.orphans, timeout=world.config.recovery_bound + 5)
    hard_stop = time.monotonic() + 30
    for thread in threads:
        thread.join(timeout=max(0.1, hard_stop - time.monotonic()))
    world.claims_done.set()
    for thread in pollers:
        thread.join(timeout=max(0.1, hard_stop - time.monotonic()))
    stuck = [t.name for t in threads + pollers if t.is_alive()]
    if stuck:
        raise RuntimeError(f"threads still running after the hard stop: {', '.join(stuck)}")
    # Drain: each daemon picks up and acknowledges every answer still waiting for it. What is not
    # acknowledged at this point must be offered to the supervisor's current owner.
    from supervisors.models import QuestionAnswer

    world.ledger.unacked_at_stop = {
        str(qid)
        for qid in QuestionAnswer.objects.filter(
            supervisor__contract_id__in=list(world.ledger.owner), acknowledged_at__isnull=True
        ).values_list("question_id", flat=True)
    }
    for sim in world.sims:
        sim.client = world.client({"Authorization": f"Bearer {sim.identity.key}"})
        try:
            sim.pick_up_answers(sim.mine(), offered=world.ledger.offered_at_stop)
        finally:
            sim.client.close()
