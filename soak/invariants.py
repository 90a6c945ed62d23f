"""The promises, checked against the database after a run: what clients were told matches what is stored."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

from .client import NO_ANSWER, Recorder
from .simulation import World


@dataclass
class Check:
    name: str
    held: bool
    detail: str


def _sample(items, n: int = 3) -> str:
    items = list(items)
    return ", ".join(str(i) for i in items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def check_invariants(world: World) -> list[Check]:
    from supervisors.models import QuestionAnswer, RestorationLog, SupervisorState

    ledger, recorder = world.ledger, world.recorder
    contracts = list(ledger.owner)
    rows = {
        s.contract_id: s
        for s in SupervisorState.objects.filter(contract_id__in=contracts)
        .select_related("task__daemon")
        .defer("conversation_history")
    }
    checks: list[Check] = []

    missing_rows = [c for c in contracts if c not in rows]
    checks.append(Check("every supervisor exists", not missing_rows, f"{len(rows)}/{len(contracts)} rows"))

    # Spawned tasks: each acknowledged spawn recorded exactly once, nothing the daemons never sent.
    duplicated, lost, phantom, total = [], [], [], 0
    for contract, row in rows.items():
        stored = [str(t) for t in row.spawned_task_ids]
        total += len(stored)
        duplicated += [t for t, n in Counter(stored).items() if n > 1]
        told = set(ledger.spawned.get(contract, []))
        lost += sorted(told - set(stored))
        phantom += sorted(set(stored) - told - ledger.spawn_unsure.get(contract, set()))
    checks.append(
        Check(
            "each spawned task recorded exactly once",
            not (duplicated or lost or phantom),
            f"{sum(len(v) for v in ledger.spawned.values())} acknowledged, {total} stored; "
            f"duplicated {len(duplicated)}, lost {len(lost)}, unknown {len(phantom)} "
            + _sample(duplicated + lost + phantom),
        )
    )

    # Questions: still pending exactly once, or answered exactly once and acknowledged.
    pending = Counter(
        str(q.get("id")) for row in rows.values() for q in (row.pending_questions or []) if isinstance(q, dict)
    )
    answers = Counter(
        str(qid)
        for qid in QuestionAnswer.objects.filter(supervisor__contract_id__in=contracts).values_list(
            "question_id", flat=True
        )
    )
    unacked = {
        str(qid)
        for qid in QuestionAnswer.objects.filter(
            supervisor__contract_id__in=contracts, acknowledged_at__isnull=True
        ).values_list("question_id", flat=True)
    }
    bad = []
    for qid in ledger.asked:
        p, a = pending.get(qid, 0), answers.get(qid, 0)
        if not ((p == 1 and a == 0) or (p == 0 and a == 1 and qid not in unacked)):
            bad.append(f"{qid}: pending {p}, answers {a}, acknowledged {qid not in unacked}")
    unknown = [q for q in set(pending) | set(answers) if q not in ledger.asked and q not in ledger.ask_unsure]
    wrong_text = [
        q
        for q, text in ledger.received.items()
        if ledger.answered.get(q) != text and text not in ledger.answer_unsure.get(q, ())
    ]
    not_answered = [q for q in ledger.answered if answers.get(q) != 1 or ledger.answer_wins[q] != 1]
    checks.append(
        Check(
            "each question pending, or answered exactly once and acknowledged",
            not (bad or unknown or wrong_text or not_answered),
            f"{len(ledger.asked)} asked, {sum(pending.values())} pending, {sum(answers.values())} answered, "
            f"{len(ledger.received)} picked up; broken {len(bad) + len(unknown) + len(wrong_text) + len(not_answered)} "
            f"{_sample(bad + unknown + wrong_text + not_answered)}",
        )
    )

    # Restorations: restoration_count and the log match the resumes that succeeded.
    logs = Counter(
        RestorationLog.objects.filter(contract_id__in=contracts, success=True).values_list("contract_id", flat=True)
    )
    # A resume whose every attempt got a 503 may or may not have happened (at most once: one Idempotency-Key).
    mismatched = [
        f"{c}: count {row.restoration_count}, log {logs.get(c, 0)}, resumes {ledger.resumes.get(c, 0)}"
        for c, row in rows.items()
        if not (
            row.restoration_count == logs.get(c, 0)
            and ledger.resumes.get(c, 0)
            <= row.restoration_count
            <= ledger.resumes.get(c, 0) + ledger.resume_unsure.get(c, 0)
        )
    ]
    checks.append(
        Check(
            "restoration counts equal the resumes that succeeded",
            not mismatched,
            f"{sum(ledger.resumes.values())} resumes ({dict(ledger.resumes_by_source)}), "
            f"{sum(r.restoration_count for r in rows.values())} counted, {sum(logs.values())} logged "
            f"{_sample(mismatched)}",
        )
    )

    owners = [
        f"{c}: {row.task.daemon.name if row.task.daemon else None} != {ledger.owner[c]}"
        for c, row in rows.items()
        if (row.task.daemon.name if row.task.daemon else None) != ledger.owner[c]
    ]
    checks.append(
        Check(
            "each supervisor's task is on the daemon that last resumed it",
            not owners,
            f"{ledger.takeovers} takeovers {_sample(owners)}",
        )
    )

    checks += _ownership_checks(world, rows)
    checks += _failover_checks(world, rows)
    checks.append(_no_5xx(recorder, faults=bool(world.config.kill_connections_every)))
    unexpected = [u for u in recorder.unexpected if not (u.status >= 500 or u.status == NO_ANSWER)]
    checks.append(
        Check(
            "no unexpected 4xx",
            not unexpected,
            f"{len(unexpected)} " + _sample(f"{u.endpoint} -> {u.status} {str(u.body)[:200]}" for u in unexpected),
        )
    )
    return checks


def _ownership_checks(world: World, rows: dict) -> list[Check]:
    """Issue 11: fenced-off writers change nothing, live daemons keep their supervisors, no answer is lost."""
    from supervisors.models import QuestionAnswer, SupervisorCheckpoint

    ledger, marker = world.ledger, world.zombie_marker
    contracts = list(ledger.owner)
    # A zombie's write that landed leaves its marker in the row, or in a checkpoint taken at its save point.
    landed = [f"state {c}" for c, row in rows.items() if _has_marker(marker, row)]
    landed += [
        f"checkpoint {cp.id}"
        for cp in SupervisorCheckpoint.objects.filter(supervisor__contract_id__in=contracts).only(
            "id", "phase", "current_activity", "pending_questions"
        )
        if _has_marker(marker, cp)
    ]
    landed += [
        f"answer {a.question_id}"
        for a in QuestionAnswer.objects.filter(supervisor__contract_id__in=contracts)
        if marker in str(a.question)
    ]
    accepted = ledger.zombie_writes - ledger.zombie_refused
    fenced = Check(
        "no write from a superseded epoch or a former owner landed",
        not (landed or accepted or ledger.own_writes_refused),
        f"zombie writes refused {ledger.zombie_refused}/{ledger.zombie_writes}, found in the database "
        f"{len(landed)} {_sample(landed)}; live owners' writes refused as superseded "
        f"{len(ledger.own_writes_refused)} {_sample(ledger.own_writes_refused, 2)}",
    )
    live = Check(
        "no live supervisor taken over",
        not ledger.live_takeovers,
        f"takeover attempts on live daemons refused {ledger.live_takeover_refused}/{ledger.live_takeover_attempts} "
        f"({ledger.live_takeover_attempts_on_quiet} on quiet ones); "
        f"succeeded {len(ledger.live_takeovers)} {_sample(ledger.live_takeovers)}",
    )
    not_offered = sorted(ledger.unacked_at_stop - ledger.offered_at_stop)
    missing = ledger.answers_missing_from_resume
    answers = Check(
        "every answer acknowledged or offered to the current owner",
        not (missing or not_offered),
        f"{sum(ledger.resumes.values())} resumes, answers they did not carry {len(missing)} {_sample(missing)}; "
        f"unacknowledged when traffic stopped {len(ledger.unacked_at_stop)}, not offered to the current owner "
        f"{len(not_offered)} {_sample(not_offered)}",
    )
    return [fenced, live, answers]


def _failover_checks(world: World, rows: dict) -> list[Check]:
    """Issue 16: every supervisor a crash left behind runs again on a live daemon, within the bound, claimed
    once, with its conversation and questions."""
    ledger, bound = world.ledger, world.config.recovery_bound
    orphanings = ledger.orphanings
    unclaimed = [f"{o.contract} of {o.daemon}" for o in orphanings if o.claimed_at is None]
    late = [
        f"{o.contract} of {o.daemon} after {o.recovery_seconds:.1f} s"
        for o in orphanings
        if o.recovery_seconds is not None and o.recovery_seconds > bound
    ]
    # Where each claimed supervisor ended up: on a daemon that is not gone (the soak's final word on it).
    gone_owners = [
        f"{c} on {row.task.daemon.name}"
        for c, row in rows.items()
        if row.task.daemon is not None
        and world.owner_sim[c].gone
        and any(o.contract == c and o.claimed_by for o in orphanings)
    ]
    silent = sum(o.silent for o in orphanings)
    recovered = Check(
        "every orphaned supervisor running again on a live daemon within the bound",
        not (unclaimed or late or gone_owners or ledger.claim_failed),
        f"{len(orphanings)} orphaned ({silent} by a silent daemon, {len(orphanings) - silent} by one that left), "
        f"bound {bound:g} s; unclaimed {len(unclaimed)} {_sample(unclaimed)}, late {len(late)} {_sample(late)}, "
        f"on a gone daemon {len(gone_owners)}, failed in a claim {len(ledger.claim_failed)}",
    )
    once = Check(
        "each orphaned supervisor claimed exactly once per crash, never from a live daemon",
        not ledger.claims_not_orphaned,
        f"{sum(o.claimed_at is not None for o in orphanings)} claimed in {ledger.claim_polls_nonempty} of "
        f"{ledger.claim_polls} claim polls; claimed when not orphaned {len(ledger.claims_not_orphaned)} "
        f"{_sample(ledger.claims_not_orphaned)}",
    )
    intact = Check(
        "each claimed supervisor came back with its conversation and questions",
        not ledger.claim_context_broken,
        f"{ledger.claimed_with_history} claimed with messages, {ledger.claimed_with_questions} with questions; "
        f"broken {len(ledger.claim_context_broken)} {_sample(ledger.claim_context_broken, 2)}",
    )
    return [recovered, once, intact]


def recovery_line(world: World) -> str:
    """Crash to claimed, per supervisor: the failover figures of a run."""
    from .report import percentile

    def figures(orphanings: list) -> str:
        times = [o.recovery_seconds for o in orphanings if o.recovery_seconds is not None]
        if not times:
            return "none"
        return (
            f"p50 {percentile(times, 0.5):.2f} s, p99 {percentile(times, 0.99):.2f} s, max {max(times):.2f} s "
            f"({len(times)})"
        )

    orphanings = world.ledger.orphanings
    times = [o.recovery_seconds for o in orphanings if o.recovery_seconds is not None]
    head = (
        f"failover: {len(world.ledger.orphanings)} supervisors orphaned, {len(times)} claimed "
        f"(claim every {world.config.claim_every:g} s, capacity {world.config.claim_capacity}, "
        f"lease {world.config.daemon_gone_after} s, bound {world.config.recovery_bound:g} s); "
        f"claim answers lost {world.ledger.claim_answers_lost}, supervisors then found by listing "
        f"{world.ledger.found_by_listing}"
    )
    if not times:
        return head
    return (
        f"{head}\n  crash to recovery: all {figures(orphanings)}; daemon fell silent (lease ran out) "
        f"{figures([o for o in orphanings if o.silent])}; daemon said it left "
        f"{figures([o for o in orphanings if not o.silent])}"
    )


def _has_marker(marker: str, row) -> bool:
    return (
        marker in (row.current_activity or "")
        or marker in (row.phase or "")
        or any(marker in str(q) for q in row.pending_questions or [])
    )


def _no_5xx(recorder: Recorder, *, faults: bool) -> Check:
    """With the database being taken away, 503 in the error shape is the promised answer; nothing else is."""
    errors = recorder.count(lambda s: (s >= 500 and not (faults and s == 503)) or s == NO_ANSWER)
    examples = [f"{u.endpoint} -> {u.status} {str(u.body)[:200]}" for u in recorder.unexpected if u.status >= 500]
    name = "no 5xx but 503 in the error shape, no dropped request" if faults else "no 5xx and no dropped request"
    unavailable = recorder.count(lambda s: s == 503)
    detail = f"{errors} of {recorder.total}" + (f" ({unavailable} answered 503)" if faults else "")
    return Check(name, errors == 0, f"{detail} {_sample(examples)}")


def contract_ids(world: World) -> list[uuid.UUID]:
    return list(world.ledger.owner)
