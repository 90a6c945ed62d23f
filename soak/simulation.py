"""The simulated world: N daemons (threads), each with its supervisors, and one human who answers questions.

Everything a daemon is told "yes" to is written down here (spawned tasks,
questions asked, answers received, resumes that succeeded, who owns which
supervisor), so ``invariants`` can compare it with the database afterwards.
Setup goes through the services (daemons, API keys, contracts, supervisor
tasks, a staff user); all traffic goes over HTTP to 127.0.0.1.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from .client import NO_ANSWER, Client, Recorder

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
    lock: threading.Lock = field(default_factory=threading.Lock)


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
        self.takeover_lock = threading.RLock()  # serialises takeovers with a gone daemon's return
        self.orphans: dict[uuid.UUID, DaemonSim] = {}  # contract -> the gone daemon it belongs to
        self.sims: list[DaemonSim] = []
        self.run_id = secrets.token_hex(3)

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
        identities.append(identity)
        world.sims.append(sim)
    if len(world.sims) > 1:
        world.sims[0].forced_takeover_at = world.config.seconds / 3
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

    # --- plumbing ---------------------------------------------------------------------
    def call(self, method: str, template: str, contract: uuid.UUID | None = None, body=None, **kwargs):
        path = API + template.replace("{id}", str(contract) if contract else "")
        for name, value in kwargs.pop("path_values", {}).items():
            path = path.replace("{" + name + "}", str(value))
        return self.client.request(method, path, body, endpoint=template, **kwargs)

    def mine(self) -> list[uuid.UUID]:
        with self.world.takeover_lock:
            return list(self.supervisors)

    # --- the life of a daemon ---------------------------------------------------------
    def run(self) -> None:
        self.client = self.world.client(headers={"Authorization": f"Bearer {self.identity.key}"})
        try:
            self.daemon_heartbeat()
            for contract, task in list(self.supervisors.items()):
                self.call(
                    "PUT",
                    SUP,
                    contract,
                    {"taskId": str(task), "phase": "plan", "state": "working", "conversationHistory": []},
                    expect=(201,),
                )
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
            ]
            funcs, weights = zip(*actions, strict=True)
            started = time.monotonic()
            while not self.world.stop.is_set():
                time.sleep(self.rng.uniform(*self.world.config.think_seconds))
                if self.forced_takeover_at is not None and time.monotonic() - started >= self.forced_takeover_at:
                    self.forced_takeover_at = None
                    self.crash(takeover=True)
                    continue
                if self.rng.random() < self.world.config.crash_probability:
                    self.crash()
                    continue
                if self.world.orphans and self.rng.random() < 0.3:
                    self.take_over()
                    continue
                self.rng.choices(funcs, weights)[0]()
        finally:
            self.client.close()

    def daemon_heartbeat(self, status: str = "connected") -> None:
        items = [
            {"contractId": str(c), "state": "working", "currentActivity": "soak", "progress": self.rng.randint(0, 100)}
            for c in self.mine()
        ]
        self.call("POST", "/daemons/me/heartbeat/", body={"status": status, "supervisors": items})

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
        for _ in range(retries):
            reply = self.call("POST", SUP + "spawned-tasks/", contract, {"taskId": task_id, "wait": True})
            with self.world.ledger.lock:
                if reply.ok and task_id not in self.world.ledger.spawned[contract]:
                    self.world.ledger.spawned[contract].append(task_id)
                elif reply.status == NO_ANSWER or reply.status >= 500:
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
            reply = self.call("POST", SUP + "questions/", contract, question, expect=expect)
            with self.world.ledger.lock:
                if reply.ok:
                    self.world.ledger.asked[question["id"]] = contract
                elif reply.status >= 500 or reply.status == NO_ANSWER:
                    self.world.ledger.ask_unsure.add(question["id"])

    def pick_up_answers(self, contracts: list[uuid.UUID] | None = None) -> None:
        for contract in contracts if contracts is not None else [c for c in [self.pick()] if c]:
            reply = self.call("GET", SUP + "answers/", contract)
            if not reply.ok:
                continue
            for answer in reply.body:
                qid = answer["questionId"]
                retries = 2 if self.rng.random() < 0.1 else 1
                for _ in range(retries):
                    ack = self.call("POST", SUP + "answers/{qid}/ack/", contract, path_values={"qid": qid})
                    if ack.ok:
                        with self.world.ledger.lock:
                            self.world.ledger.received[qid] = answer["answer"]

    def read_state(self) -> None:
        if (contract := self.pick()) is not None:
            self.call("GET", SUP, contract)

    def patch_history(self) -> None:
        if (contract := self.pick()) is not None:
            history = [
                {"role": "user", "content": "x" * self.rng.randint(10, 2000)} for _ in range(self.rng.randint(1, 20))
            ]
            self.call("PATCH", SUP, contract, {"conversationHistory": history, "currentActivity": "reading"})

    def finish_task(self) -> None:
        contract = self.pick()
        if contract is None or not self.tasks[contract]:
            return
        task_id = self.tasks[contract].pop(self.rng.randrange(len(self.tasks[contract])))
        self.call("POST", "/tasks/{tid}/status/", body={"status": "done"}, path_values={"tid": task_id})

    def phase(self) -> None:
        if (contract := self.pick()) is not None:
            self.call("POST", SUP + "phase/", contract, {"phase": self.rng.choice(["plan", "execute", "review"])})

    # --- crashes, restarts and takeovers -------------------------------------------------
    def resume(self, contract: uuid.UUID, source: str) -> bool:
        key = str(uuid.uuid4())
        reply = self.call(
            "POST", SUP + "resume/", contract, {"source": source, "reason": "soak"}, headers={"Idempotency-Key": key}
        )
        if reply.ok and self.rng.random() < 0.2:  # the answer got lost: retry with the same key, restores nothing
            again = self.call(
                "POST",
                SUP + "resume/",
                contract,
                {"source": source, "reason": "soak"},
                headers={"Idempotency-Key": key},
            )
            if again.ok and again.body.get("restorationCount") != reply.body.get("restorationCount"):
                self.world.recorder.record("retried resume restored twice", 599, 0.0, (), again.body)
        with self.world.ledger.lock:
            if reply.ok:
                self.world.ledger.resumes[contract] += 1
                self.world.ledger.resumes_by_source[source] += 1
            elif reply.status >= 500 or reply.status == NO_ANSWER:
                self.world.ledger.resume_unsure[contract] += 1
        return reply.ok

    def crash(self, *, takeover: bool | None = None) -> None:
        """The daemon process dies: it forgets its tasks and comes back (daemon_restart), or is gone long
        enough for others to take its supervisors over (task_reassignment)."""
        with self.world.ledger.lock:
            self.world.ledger.crashes += 1
        self.tasks.clear()
        self.client.close()
        if takeover if takeover is not None else self.rng.random() < self.world.config.takeover_share:
            self.daemon_heartbeat(status="disconnected")
            with self.world.takeover_lock:
                self.gone = True
                for contract in self.supervisors:
                    self.world.orphans[contract] = self
            self.world.stop.wait(self.rng.uniform(0.5, 2.0))
            with self.world.takeover_lock:  # back: what nobody took over is still ours
                for contract in [c for c, owner in self.world.orphans.items() if owner is self]:
                    del self.world.orphans[contract]
                self.gone = False
                self.daemon_heartbeat()
        else:
            self.world.stop.wait(self.rng.uniform(0.1, 0.5))
            self.daemon_heartbeat()
        for contract in self.mine():
            self.resume(contract, "daemon_restart")

    def take_over(self) -> None:
        with self.world.takeover_lock:
            if not self.world.orphans or self.gone:
                return
            contract = self.rng.choice(list(self.world.orphans))
            previous = self.world.orphans.pop(contract)
            if self.resume(contract, "task_reassignment"):
                self.supervisors[contract] = previous.supervisors.pop(contract)
                with self.world.ledger.lock:
                    self.world.ledger.takeovers += 1
                    self.world.ledger.owner[contract] = self.identity.name


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
            if self.rng.random() < 0.1:
                self.client.request("POST", path, {"answer": text}, endpoint=endpoint + " (again)", expect=(404, 409))


def run_world(world: World, session_key: str) -> None:
    """Run every daemon and the human until ``seconds`` have passed, then let daemons pick up the last answers."""
    rng = random.Random(world.config.seed)
    threads = [threading.Thread(target=sim.run, name=sim.identity.name, daemon=True) for sim in world.sims]
    for number in range(world.config.humans):
        human = Human(world, session_key, random.Random(rng.random()))
        threads.append(threading.Thread(target=human.run, name=f"human-{number}", daemon=True))
    for thread in threads:
        thread.start()
    world.stop.wait(world.config.seconds)
    world.stop.set()
    hard_stop = time.monotonic() + 30
    for thread in threads:
        thread.join(timeout=max(0.1, hard_stop - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        raise RuntimeError(f"threads still running after the hard stop: {', '.join(stuck)}")
    # Drain: each daemon picks up and acknowledges every answer still waiting for it.
    for sim in world.sims:
        sim.client = world.client({"Authorization": f"Bearer {sim.identity.key}"})
        try:
            sim.pick_up_answers(sim.mine())
        finally:
            sim.client.close()
