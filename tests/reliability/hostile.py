"""The hostile-input corpus: bad requests for every endpoint of the API, built around one real supervisor."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

SQL = "'; DROP TABLE supervisor_states; --"
HTML = "<script>alert(document.cookie)</script>"
HUGE_INT = 10**40
TOO_MANY_DIGITS = "9" * 5000  # beyond Python's int parsing limit
DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 50_000 + "1" + "}" * 50_000
MANY = list(range(100_000))
#: Inside list fields: one past the default maximum of task ids (SUPERVISOR_MAX_TASK_IDS), which keeps the
#: corpus fast. The 100,000-element case of those fields is test_errors_for_huge_arrays_stay_small.
MANY_ITEMS = list(range(10_001))
#: Lone UTF-16 surrogates: valid JSON escapes (json.dumps writes them as ``\\ud800``) that are not Unicode.
LONE_HIGH = "before\ud800after"
LONE_LOW = "\udfff"
REVERSED_PAIR = "\udc00\ud800"
#: A 30 MB conversation of 1,000,000 tiny messages (under API_MAX_BODY_BYTES): 20 times
#: SUPERVISOR_MAX_CONVERSATION_MESSAGES, 2,000,000 values. It took 12-17 s to PATCH before the limits.
MILLION_MESSAGES = json.dumps(
    {"conversationHistory": [{"role": "user", "content": "x"}] * 1_000_000}, separators=(",", ":")
).encode()


#: 6 MB of values: over API_MAX_JSON_VALUES (1,000,000), refused before parsing.
DENSE_NUMBERS = b'{"conversationHistory": [{"role": "user", "c": [' + b"0," * 3_000_000 + b"0]}]}"


def million_messages_put(full: dict[str, Any]) -> bytes:
    """The PUT body: ``full`` with the million messages (spliced as bytes, not encoded again)."""
    head = json.dumps({k: v for k, v in full.items() if k != "conversationHistory"}).encode()
    return head[:-1] + b", " + MILLION_MESSAGES[1:]


@dataclass
class Case:
    name: str
    method: str
    path: str
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    staff: bool = False

    def payload(self) -> bytes | None:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return None
        return json.dumps(self.body).encode()


def _bad_values(kind: str) -> list[tuple[str, Any]]:
    """Values of the wrong type or out of range for a field of this kind."""
    common = [("object", {"$gt": ""}), ("array", ["x"]), ("huge array", MANY)]
    if kind in ("uuid", "uuid_nullable"):
        values = [*common, ("sql", SQL), ("html", HTML), ("number", 12345), ("bool", True)]
        return values if kind == "uuid_nullable" else [*values, ("null", None)]
    if kind == "enum":
        return [
            *common,
            ("sql", SQL),
            ("html", HTML),
            ("upper case", "WORKING"),
            ("number", 1),
            ("null", None),
            ("surrogate", LONE_LOW),
        ]
    if kind == "int":
        return [*common, ("huge", HUGE_INT), ("negative", -1), ("over", 101), ("float", 50.5), ("bool", True)]
    if kind in ("text", "limited"):
        values = [*common, ("nul", "before\x00after"), ("surrogate", LONE_HIGH), ("bool", False)]
        return [*values, ("too long", "x" * 100_001)] if kind == "limited" else values
    if kind == "list_text":
        return [
            ("string", SQL),
            ("object", {}),
            ("nested", [[]]),
            ("objects", [{}]),
            ("huge", MANY),
            ("nulls", [None]),
            ("surrogate", ["yes", REVERSED_PAIR]),
        ]
    if kind == "list_uuid":
        return [
            ("string", SQL),
            ("object", {}),
            ("numbers", [1, 2]),
            ("huge array", MANY_ITEMS),
            ("html items", [HTML]),
            ("surrogate items", [LONE_HIGH]),
        ]
    if kind == "history":
        return [
            ("string", HTML),
            ("object", {"role": "user"}),
            ("no role", [{"content": SQL}]),
            ("huge", MANY_ITEMS),
            ("surrogate in a value", [{"role": "user", "content": [{"text": LONE_HIGH}]}]),
            ("surrogate in a key", [{"role": "user", LONE_LOW: "x"}]),
        ]
    if kind == "questions":
        return [
            ("string", SQL),
            ("items not objects", [SQL]),
            ("huge", MANY_ITEMS),
            ("bad item", [{"id": SQL}]),
            ("surrogate", [{"id": str(uuid.uuid4()), "question": LONE_HIGH, "askedAt": "2026-01-01T00:00:00Z"}]),
        ]
    if kind == "bool":
        return [("string", "maybe"), ("number", 2), ("object", {}), ("array", [True])]
    raise ValueError(kind)


def field_cases(name: str, method: str, path: str, valid: dict[str, Any], kinds: dict[str, str], **kw) -> list[Case]:
    """For each field, the valid body with that one field made hostile."""
    cases = []
    for key, kind in kinds.items():
        for label, value in _bad_values(kind):
            if key in ("currentActivity", "errorMessage", "context", "reason") and label == "null":
                continue
            cases.append(Case(f"{name}: {key} {label}", method, path, {**valid, key: value}, **kw))
    return cases


def _with_first(valid: dict[str, Any], value: Any) -> dict[str, Any]:
    """``valid`` with its first field's value replaced: a field the endpoint knows."""
    first = next(iter(valid))
    return {**valid, first: value}


def body_cases(name: str, method: str, path: str, valid: dict[str, Any], **kw) -> list[Case]:
    """What every endpoint with a body must refuse, whatever its fields."""
    return [
        Case(f"{name}: unknown field", method, path, {**valid, "isAdmin": True, "__proto__": {}}, **kw),
        Case(f"{name}: a JSON array", method, path, [valid], **kw),
        Case(f"{name}: a JSON string", method, path, SQL, **kw),
        Case(f"{name}: JSON null", method, path, raw=b"null", **kw),
        Case(f"{name}: not JSON", method, path, raw=b"{'single': quotes}", **kw),
        Case(f"{name}: truncated JSON", method, path, raw=json.dumps(valid).encode()[:-3], **kw),
        Case(f"{name}: invalid UTF-8", method, path, raw=b'{"phase": "\xff\xfe\xc3\x28"}', **kw),
        Case(f"{name}: NUL escaped", method, path, raw=json.dumps({**valid, "x": "\x00"}).encode(), **kw),
        Case(f"{name}: NUL in a key", method, path, raw=b'{"ph\\u0000ase": "plan"}', **kw),
        Case(
            f"{name}: lone surrogate escaped",
            method,
            path,
            raw=json.dumps(_with_first(valid, LONE_HIGH)).encode(),
            **kw,
        ),
        Case(f"{name}: lone surrogate in a key", method, path, raw=b'{"ph\\udc00ase": "plan"}', **kw),
        Case(
            f"{name}: surrogate key nested",
            method,
            path,
            raw=json.dumps({**valid, "x": [{LONE_LOW: 1}]}).encode(),
            **kw,
        ),
        Case(
            f"{name}: reversed surrogate pair",
            method,
            path,
            raw=json.dumps({**valid, "x": REVERSED_PAIR}).encode(),
            **kw,
        ),
        Case(f"{name}: a JSON string of a surrogate", method, path, raw=b'"\\ud800"', **kw),
        Case(f"{name}: surrogate as UTF-8 bytes", method, path, raw=b'{"phase": "\xed\xa0\x80"}', **kw),
        Case(f"{name}: NaN", method, path, raw=b'{"progress": NaN}', **kw),
        Case(f"{name}: Infinity", method, path, raw=b'{"progress": -Infinity}', **kw),
        Case(f"{name}: too many digits", method, path, raw=b'{"progress": ' + TOO_MANY_DIGITS.encode() + b"}", **kw),
        Case(f"{name}: deeply nested array", method, path, raw=DEEP.encode(), **kw),
        Case(f"{name}: deeply nested object", method, path, raw=DEEP_OBJECT.encode(), **kw),
        Case(f"{name}: 100,000-element array", method, path, MANY, **kw),
        Case(
            f"{name}: form encoded",
            method,
            path,
            raw=b"phase=plan",
            content_type="application/x-www-form-urlencoded",
            **kw,
        ),
        Case(f"{name}: text/plain", method, path, raw=json.dumps(valid).encode(), content_type="text/plain", **kw),
        Case(f"{name}: xml", method, path, raw=b"<phase>plan</phase>", content_type="application/xml", **kw),
        Case(
            f"{name}: multipart",
            method,
            path,
            raw=b'--b\r\nContent-Disposition: form-data; name="phase"\r\n\r\nplan\r\n--b--\r\n',
            content_type="multipart/form-data; boundary=b",
            **kw,
        ),
    ]


def path_cases(name: str, method: str, template: str, body: Any = None, **kw) -> list[Case]:
    """Hostile ids in the path: never a 500, never a match."""
    ids = [
        ("sql", "%27%3B%20DROP%20TABLE%20contracts%3B--"),
        ("html", "%3Cscript%3E"),
        ("nul", "%00"),
        ("number", "12345"),
        ("unknown uuid", str(uuid.uuid4())),
        ("long", "a" * 300),
        ("surrogate as UTF-8", "%ED%A0%80"),
    ]
    return [Case(f"{name}: path {label}", method, template.format(id=value), body, **kw) for label, value in ids]


def corpus(contract_id: uuid.UUID, question_id: uuid.UUID, task_id: uuid.UUID) -> list[Case]:
    sup = f"/api/v1/contracts/{contract_id}/supervisor/"
    uuids = {"taskId": "uuid"}
    cases: list[Case] = []

    full = {"taskId": str(task_id), "phase": "plan", "state": "working", "conversationHistory": []}
    cases += body_cases("PUT supervisor", "PUT", sup, full)
    cases += field_cases(
        "PUT supervisor",
        "PUT",
        sup,
        full,
        {
            **uuids,
            "phase": "text",
            "state": "enum",
            "conversationHistory": "history",
            "pendingTaskIds": "list_uuid",
            "spawnedTaskIds": "list_uuid",
            "pendingQuestions": "questions",
            "currentActivity": "text",
            "progress": "int",
            "errorMessage": "text",
        },
    )
    patch = {"currentActivity": "reading"}
    cases += body_cases("PATCH supervisor", "PATCH", sup, patch)
    cases += field_cases(
        "PATCH supervisor",
        "PATCH",
        sup,
        patch,
        {
            "conversationHistory": "history",
            "pendingTaskIds": "list_uuid",
            "phase": "text",
            "state": "enum",
            "progress": "int",
            "spawnedTaskIds": "list_uuid",
            "pendingQuestions": "questions",
        },
    )
    cases.append(Case("PATCH supervisor: 1,000,000 messages", "PATCH", sup, raw=MILLION_MESSAGES))
    cases.append(Case("PATCH supervisor: 3,000,000 numbers", "PATCH", sup, raw=DENSE_NUMBERS))
    cases.append(Case("heartbeat: 3,000,000 numbers", "POST", sup + "heartbeat/", raw=DENSE_NUMBERS))
    cases.append(Case("PUT supervisor: 1,000,000 messages", "PUT", sup, raw=million_messages_put(full)))
    cases.append(Case("PATCH supervisor: stale If-Match", "PATCH", sup, patch, headers={"If-Match": f'"{SQL}"'}))
    beat = {"state": "working", "currentActivity": "x", "progress": 5}
    cases += body_cases("heartbeat", "POST", sup + "heartbeat/", beat)
    cases += field_cases(
        "heartbeat",
        "POST",
        sup + "heartbeat/",
        beat,
        {"state": "enum", "currentActivity": "limited", "progress": "int"},
    )
    spawn = {"taskId": str(task_id), "wait": True}
    cases += body_cases("spawn", "POST", sup + "spawned-tasks/", spawn)
    cases += field_cases("spawn", "POST", sup + "spawned-tasks/", spawn, {"taskId": "uuid", "wait": "bool"})
    cases.append(Case("spawn: a task of no contract", "POST", sup + "spawned-tasks/", {"taskId": str(uuid.uuid4())}))
    cases += body_cases("phase", "POST", sup + "phase/", {"phase": "plan"})
    cases += field_cases("phase", "POST", sup + "phase/", {"phase": "plan"}, {"phase": "limited"})
    question = {"question": "Go on?", "choices": ["yes", "no"], "questionType": "general"}
    cases += body_cases("ask", "POST", sup + "questions/", question)
    cases += field_cases(
        "ask",
        "POST",
        sup + "questions/",
        question,
        {"id": "uuid", "question": "limited", "choices": "list_text", "questionType": "enum", "askedAt": "enum"},
    )
    answer_path = f"{sup}questions/{question_id}/answer/"
    cases += body_cases("answer", "POST", answer_path, {"answer": "yes"})
    cases += field_cases("answer", "POST", answer_path, {"answer": "yes"}, {"answer": "limited"})
    cases.append(Case("answer: blank", "POST", answer_path, {"answer": "   "}))
    resume = {"source": "daemon_restart", "reason": "test"}
    cases += body_cases("resume", "POST", sup + "resume/", resume)
    cases += field_cases("resume", "POST", sup + "resume/", resume, {"source": "enum", "reason": "limited"})
    cases.append(
        Case("resume: long Idempotency-Key", "POST", sup + "resume/", resume, headers={"Idempotency-Key": "k" * 300})
    )
    cases.append(
        Case(
            "resume: control characters in Idempotency-Key",
            "POST",
            sup + "resume/",
            resume,
            headers={"Idempotency-Key": "a\tb"},
        )
    )
    daemon_beat = {"status": "connected", "supervisors": [{"contractId": str(contract_id), **beat}]}
    cases += body_cases("daemon heartbeat", "POST", "/api/v1/daemons/me/heartbeat/", daemon_beat)
    cases += field_cases(
        "daemon heartbeat",
        "POST",
        "/api/v1/daemons/me/heartbeat/",
        daemon_beat,
        {"status": "enum", "supervisors": "history"},
    )
    cases.append(
        Case(
            "daemon heartbeat: 100,000 items",
            "POST",
            "/api/v1/daemons/me/heartbeat/",
            {"supervisors": [{"contractId": SQL}] * 100_000},
        )
    )
    contract = {"name": "c", "phase": "plan"}
    cases += body_cases("contract", "POST", "/api/v1/contracts/", contract)
    cases += field_cases(
        "contract", "POST", "/api/v1/contracts/", contract, {"name": "text", "phase": "text", "status": "enum"}
    )
    task = {"contractId": str(contract_id), "name": "t"}
    cases += body_cases("task", "POST", "/api/v1/tasks/", task)
    cases += field_cases(
        "task",
        "POST",
        "/api/v1/tasks/",
        task,
        {
            "contractId": "uuid",
            "parentTaskId": "uuid_nullable",
            "daemonId": "uuid_nullable",
            "name": "text",
            "status": "enum",
            "isSupervisor": "bool",
        },
    )
    status_path = f"/api/v1/tasks/{task_id}/status/"
    cases += body_cases("task status", "POST", status_path, {"status": "done"})
    cases += field_cases("task status", "POST", status_path, {"status": "done"}, {"status": "enum"})

    # Hostile ids in every path, for every method.
    for method, tail, body in [
        ("GET", "", None),
        ("PUT", "", full),
        ("PATCH", "", patch),
        ("POST", "heartbeat/", beat),
        ("POST", "spawned-tasks/", spawn),
        ("POST", "phase/", {"phase": "plan"}),
        ("GET", "questions/", None),
        ("POST", "questions/", question),
        ("GET", "answers/", None),
        ("POST", "resume/", resume),
        ("GET", "validation/", None),
    ]:
        cases += path_cases(f"{method} supervisor/{tail}", method, "/api/v1/contracts/{id}/supervisor/" + tail, body)
    for method, tail, body in [
        ("POST", "questions/{id}/answer/", {"answer": "yes"}),
        ("DELETE", "questions/{id}/", None),
        ("POST", "answers/{id}/ack/", None),
    ]:
        cases += path_cases(f"{method} {tail}", method, sup + tail, body)
    cases += path_cases("GET contract", "GET", "/api/v1/contracts/{id}/")
    cases += path_cases("GET task", "GET", "/api/v1/tasks/{id}/")
    cases += path_cases("POST task status", "POST", "/api/v1/tasks/{id}/status/", {"status": "done"})

    # Hostile query strings.
    for query in [
        f"state={SQL}",
        f"state={HTML}",
        "stale=perhaps",
        "phase=" + "p" * 500,
        "state=%00",
        "state=%ED%A0%80",
    ]:
        cases.append(Case(f"GET supervisors: ?{query[:20]}", "GET", f"/api/v1/supervisors/?{query}"))
    # Hostile credentials.
    for label, value in [
        ("sql key", f"Bearer mks_{SQL}"),
        ("html", f"Bearer {HTML}"),
        ("two words", "Bearer a b"),
        ("long", "Bearer mks_" + "a" * 5000),
        ("basic", "Basic YWRtaW46YWRtaW4="),
    ]:
        cases.append(Case(f"auth: {label}", "POST", sup + "heartbeat/", beat, headers={"Authorization": value}))
    return cases


#: Command lines no command may answer with a traceback: each is a one-line error on stderr, exit code 2.
#: ``\udcff`` is what Python makes of a byte that is not UTF-8 in argv (surrogateescape).
NOT_UTF8 = "\udcff\udcfe"
COMMAND_CASES: list[list[str]] = [
    *(
        [command, *args]
        for command in ("restore_supervisors", "validate_supervisors")
        for args in (
            ["--stale", "--stale-after", "99999999999"],
            ["--stale", "--stale-after", "-1"],
            ["--stale", "--stale-after", "1e9"],
            ["--stale", "--stale-after", TOO_MANY_DIGITS],
            ["--all", "--batch-size", "99999999999999999999999"],
            ["--all", "--batch-size", "0"],
            ["--all", "--batch-size", "abc"],
            ["--all", "--batch-size", ""],
            ["--contract", "not-a-uuid"],
            ["--contract", ""],
            ["--contract", NOT_UTF8],
            ["--state", "WORKING"],
            ["--state", NOT_UTF8],
            ["--daemon", NOT_UTF8],
            ["--daemon", ""],
            ["--daemon", SQL],
            [],
            ["--all", "--unknown-option"],
            ["--all", NOT_UTF8],
            ["--stale-after", "60", "--all"],
        )
    ),
    ["restore_supervisors", "--all", "--source", "nope"],
    ["restore_supervisors", "--all", "--reason", NOT_UTF8],
    ["restore_supervisors", "--all", "--reason", "half a pair \ud800"],
    ["restore_supervisors", "--all", "--not-restored-since", "2026-13-45T00:00:00+00:00"],
    ["restore_supervisors", "--all", "--not-restored-since", "99999-01-01T00:00:00+00:00"],
    ["restore_supervisors", "--all", "--not-restored-since", "2026-01-01T00:00:00"],
    ["restore_supervisors", "--all", "--not-restored-since", ""],
    ["create_daemon_key"],
    ["create_daemon_key", ""],
    ["create_daemon_key", NOT_UTF8, "--create-daemon"],
    ["create_daemon_key", "hostile-daemon", "--create-daemon", "--name", NOT_UTF8],
    ["create_daemon_key", "--revoke", "99999999999999999999999"],
    ["create_daemon_key", "--revoke", "-1"],
    ["create_daemon_key", "--revoke", "one"],
    ["seed_demo", "--reset=yes"],
    ["seed_demo", "extra"],
    ["ensure_admin", "--username", NOT_UTF8],
    ["ensure_admin", "--username", "", "--password", "correct-horse-battery-staple-42"],
    ["ensure_admin", "--username", "admin", "--password", "admin"],
    ["ensure_admin", "--username", "admin"],
]
