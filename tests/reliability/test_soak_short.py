"""A short soak (10 daemons, 15 s) in the suite, so CI keeps the invariants; ``python -m soak`` is the full run.

Daemons that crash for good are brought back only by the claim endpoint (issue 16): the others poll it
every second, and each orphaned supervisor must run again on a live daemon within lease + poll + slack.

Two of the ten daemons are quiet (their own heartbeats stop, their other requests go on) and
the service's lease is 5 s, so a lease kept only by daemon heartbeats would let them be taken over.
"""

from __future__ import annotations

import pytest
from django.conf import settings

from soak.run import run_soak
from soak.simulation import SoakConfig


def soak(config: SoakConfig, database_url: str, tmp_path):
    """Run the soak under gunicorn with 2 workers × 8 threads, logging to the test's own directory."""
    return run_soak(
        config,
        database_url=database_url,
        secret_key=settings.SECRET_KEY,
        workers=2,
        threads=8,
        log_path=tmp_path / "gunicorn.log",
    )


@pytest.mark.postgres_only
def test_ten_daemons_for_fifteen_seconds_lose_nothing(live_database_url, tmp_path):
    config = SoakConfig(daemons=10, supervisors_per_daemon=2, seconds=15, crash_probability=0.02, seed=7)

    result = soak(config, live_database_url, tmp_path)

    print(result.table)
    assert result.ok, result.table
    ledger = result.world.ledger
    # The run went through every path the invariants speak about.
    assert sum(len(t) for t in ledger.spawned.values()) > 0
    assert ledger.answered and ledger.received
    assert ledger.resumes_by_source["daemon_restart"] > 0
    assert ledger.takeovers > 0 and ledger.resumes_by_source["task_reassignment"] == ledger.takeovers
    # Failover: crashed daemons' supervisors came back through claims only, both after a daemon said it
    # left and after one fell silent until its lease ran out; each within the bound, once, with what it held.
    orphanings = ledger.orphanings
    assert orphanings and all(o.claimed_by is not None for o in orphanings)
    assert {o.silent for o in orphanings} == {True, False}
    assert max(o.recovery_seconds for o in orphanings) <= config.recovery_bound
    assert ledger.takeovers == len(orphanings) and not ledger.claims_not_orphaned
    assert ledger.claimed_with_history > 0 and ledger.claimed_with_questions > 0
    assert not ledger.claim_context_broken
    # Zombies wrote after their supervisors were taken over, and were refused every time.
    assert ledger.zombie_writes > 0 and ledger.zombie_refused == ledger.zombie_writes
    # Daemons tried to take over supervisors of live daemons (quiet ones among them), and never managed.
    assert ledger.live_takeover_attempts > 0 and ledger.live_takeover_refused == ledger.live_takeover_attempts
    assert ledger.live_takeover_attempts_on_quiet > 0
    # Save points carried only the new message (issue 12) and the report says what each kind sent.
    assert "bytes sent per save point" in result.table
    spawns = result.world.recorder.sent["POST /contracts/{id}/supervisor/spawned-tasks/"]
    assert spawns and max(spawns) < 2_000


@pytest.mark.postgres_only
def test_ten_daemons_lose_nothing_while_their_database_connections_are_killed(live_database_url, tmp_path):
    """The same, with the service's database connections killed every 2 s: requests caught in it answer 503
    (in the error shape) and are retried as a daemon would; still nothing lost, nothing twice, no other 5xx."""
    config = SoakConfig(
        daemons=10, supervisors_per_daemon=2, seconds=12, crash_probability=0.02, kill_connections_every=2.0, seed=11
    )

    result = soak(config, live_database_url, tmp_path)

    print(result.table)
    assert result.ok, result.table
    assert result.world.ledger.connections_killed > 0
    assert result.world.recorder.count(lambda status: status == 503) > 0  # the faults did hit requests
