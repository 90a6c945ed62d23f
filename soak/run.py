"""One soak run: set up the world, start gunicorn, run the daemons, check, report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .invariants import Check, check_invariants
from .report import render
from .server import GunicornServer
from .simulation import SoakConfig, World, run_world, setup_world


@dataclass
class SoakResult:
    checks: list[Check]
    table: str
    world: World

    @property
    def ok(self) -> bool:
        return all(c.held for c in self.checks)


def run_soak(
    config: SoakConfig,
    *,
    database_url: str,
    secret_key: str,
    workers: int | None = None,
    threads: int | None = None,
    log_path: Path | None = None,
) -> SoakResult:
    """Django must be set up against the same database as ``database_url`` (setup and checks run here)."""
    server = GunicornServer(
        database_url=database_url, secret_key=secret_key, workers=workers, threads=threads, log_path=log_path
    )
    world = World(server.host, server.port, config)
    _identities, session_key = setup_world(world)
    with server:
        started = time.monotonic()
        run_world(world, session_key)
        elapsed = time.monotonic() - started
    checks = check_invariants(world)
    title = (
        f"soak {world.run_id}: {config.daemons} daemons x {config.supervisors_per_daemon} supervisors, "
        f"{config.seconds:g} s (+{elapsed - config.seconds:.1f} s drain), gunicorn "
        f"{server.env.get('GUNICORN_WORKERS', 'default')} workers x {server.env.get('GUNICORN_THREADS', '8')} threads; "
        f"{world.ledger.crashes} crashes, {world.ledger.takeovers} takeovers"
    )
    return SoakResult(checks, render(world.recorder, checks, title=title, seconds=elapsed), world)
