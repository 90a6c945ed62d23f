"""python -m soak [--daemons 50] [--seconds 60]: the full soak against PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    parser.add_argument("--daemons", type=int, default=50)
    parser.add_argument("--supervisors-per-daemon", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0, help="Traffic time; a hard stop follows 30 s later.")
    parser.add_argument("--crash-probability", type=float, default=0.01, help="Per daemon action.")
    parser.add_argument("--humans", type=int, default=2, help="People answering questions at once.")
    parser.add_argument(
        "--kill-connections-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="Kill the service's database connections (pg_terminate_backend) this often; 0 = never.",
    )
    parser.add_argument(
        "--daemon-gone-after",
        type=int,
        default=5,
        metavar="SECONDS",
        help="The service's DAEMON_GONE_AFTER_SECONDS (the lease a quiet daemon must keep with its other requests).",
    )
    parser.add_argument(
        "--quiet-every", type=int, default=5, metavar="N", help="One daemon in N stops its own heartbeats; 0 = none."
    )
    parser.add_argument(
        "--claim-every",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="Each live daemon polls POST /supervisors/claim/ this often (failover of crashed daemons).",
    )
    parser.add_argument("--claim-capacity", type=int, default=5, help="The capacity each claim asks for.")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: gunicorn.conf.py's).")
    parser.add_argument("--threads", type=int, default=None, help="gunicorn threads per worker.")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-notify", action="store_true", help="No webhook receiver, workers or notification check.")
    parser.add_argument(
        "--log", type=Path, default=Path(tempfile.gettempdir()) / "soak-gunicorn.log", help="gunicorn's output."
    )
    args = parser.parse_args(argv)

    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        parser.error("set DATABASE_URL=postgres://... (the soak runs against PostgreSQL)")
    os.environ["DJANGO_SETTINGS_MODULE"] = "makima_supervisor.settings"
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    from .run import run_soak
    from .simulation import SoakConfig

    config = SoakConfig(
        notify=not args.no_notify,
        daemons=args.daemons,
        supervisors_per_daemon=args.supervisors_per_daemon,
        seconds=args.seconds,
        crash_probability=args.crash_probability,
        humans=args.humans,
        kill_connections_every=args.kill_connections_every,
        seed=args.seed,
        daemon_gone_after=args.daemon_gone_after,
        quiet_every=args.quiet_every,
        claim_every=args.claim_every,
        claim_capacity=args.claim_capacity,
    )
    result = run_soak(
        config,
        database_url=database_url,
        secret_key=os.environ["SECRET_KEY"],
        workers=args.workers,
        threads=args.threads,
        log_path=args.log,
    )
    print(result.table)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
