"""One soak run: set up the world, start the shipped server (Procfile web:), run the daemons, check, report."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .invariants import Check, check_invariants, recovery_line
from .notifications import SoakNotifications
from .report import render
from .server import WebServer
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
    app_name = f"makima-soak-{secrets.token_hex(4)}"
    server = WebServer(
        database_url=f"{database_url}{'&' if '?' in database_url else '?'}application_name={app_name}",
        secret_key=secret_key,
        workers=workers,
        threads=threads,
        log_path=log_path,
        # Short, so that a quiet daemon's lease is kept by its other requests or not at all.
        extra_env={"DAEMON_GONE_AFTER_SECONDS": str(config.daemon_gone_after)},
    )
    world = World(server.host, server.port, config)
    _identities, session_key = setup_world(world)
    notifications = SoakNotifications(database_url=database_url, secret_key=secret_key) if config.notify else None
    if notifications:
        notifications.start()
    with server:
        killer = ConnectionKiller(world, database_url, app_name) if config.kill_connections_every else None
        started = time.monotonic()
        if killer:
            killer.start()
        try:
            run_world(world, session_key)
        finally:
            if killer:
                killer.stop()
        elapsed = time.monotonic() - started
    checks = check_invariants(world)
    if notifications:
        try:
            notifications.drain(world.ledger.owner)
        finally:
            notifications.stop()
        checks.append(notifications.check(world.ledger.owner))
    title = (
        f"soak {world.run_id}: {config.daemons} daemons x {config.supervisors_per_daemon} supervisors, "
        f"{config.seconds:g} s (+{elapsed - config.seconds:.1f} s drain), server "
        f"{server.env.get(server.workers_variable, 'default')} workers x "
        f"{server.env.get(server.threads_variable, '8')} threads; "
        f"{world.ledger.crashes} crashes, {world.ledger.takeovers} supervisors claimed; "
        f"zombie writes refused {world.ledger.zombie_refused}/{world.ledger.zombie_writes}, "
        f"takeovers of live daemons refused {world.ledger.live_takeover_refused}/"
        f"{world.ledger.live_takeover_attempts} (lease {config.daemon_gone_after} s)"
        + (
            f"; database connections killed every {config.kill_connections_every:g} s: "
            f"{world.ledger.connections_killed} in {world.ledger.kills} rounds"
            if config.kill_connections_every
            else ""
        )
    )
    title += "\n" + recovery_line(world)
    return SoakResult(checks, render(world.recorder, checks, title=title, seconds=elapsed), world)


class ConnectionKiller:
    """Kills the service's own database connections (by application_name) every few seconds, mid-run."""

    def __init__(self, world: World, database_url: str, app_name: str) -> None:
        self.world, self.app_name = world, app_name
        self.url = database_url.replace("postgres://", "postgresql://", 1)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, name="connection-killer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=10)

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.done.wait(self.world.config.kill_connections_every):
                if self.world.stop.is_set():
                    return
                (killed,) = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = %s",
                    [self.app_name],
                ).fetchone()
                with self.world.ledger.lock:
                    self.world.ledger.kills += 1
                    self.world.ledger.connections_killed += killed
