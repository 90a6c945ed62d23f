"""manage.py create_daemon_key: issue (or revoke) a daemon's API key; the key is printed once."""

from __future__ import annotations

import uuid

from django.core.management.base import CommandError

from supervisors.management.base import EXIT_USAGE, ProjectCommand, bounded_int
from supervisors.models import Daemon
from supervisors.services.errors import InvalidInput, ServiceError
from supervisors.services.world import create_daemon_key, revoke_daemon_key


class Command(ProjectCommand):
    help = (
        "Create an API key for a daemon (by id or name; --create-daemon makes the daemon if it does not exist). "
        "The key is printed once on stdout and only its SHA-256 is stored. --revoke KEY_ID revokes a key."
    )

    def add_arguments(self, parser):
        parser.add_argument("daemon", nargs="?", help="The daemon's id or name.")
        parser.add_argument("--name", default="", help="A label for the key (where it is used).")
        parser.add_argument("--create-daemon", action="store_true", help="Create the daemon when none has this name.")
        parser.add_argument(
            "--revoke", type=bounded_int(1, 2**63 - 1, "key id"), metavar="KEY_ID", help="Revoke this key instead."
        )

    def handle(self, *args, daemon: str | None, name: str, create_daemon: bool, revoke: int | None, **options):
        try:
            if revoke is not None:
                key = revoke_daemon_key(revoke)
                self.stderr.write(f"Revoked key {key.id} ({key.prefix}) of daemon {key.daemon}.")
                return
            if not daemon:
                raise CommandError("Give the daemon's id or name (or --revoke KEY_ID).", returncode=EXIT_USAGE)
            target = self._find(daemon, create=create_daemon)
            issued = create_daemon_key(target.id, name=name)
        except ServiceError as exc:
            raise CommandError(exc.message, returncode=EXIT_USAGE if isinstance(exc, InvalidInput) else 1) from exc
        self.stderr.write(
            f"Key {issued.api_key.id} for daemon {target.name} ({target.id}). "
            "Store it now: it is not shown again. Use it as 'Authorization: Bearer <key>'."
        )
        self.stdout.write(issued.raw)

    def _find(self, value: str, *, create: bool) -> Daemon:
        try:
            found = Daemon.objects.filter(pk=uuid.UUID(value)).first()
        except ValueError:
            matches = list(Daemon.objects.filter(name=value)[:2])
            if len(matches) > 1:
                raise CommandError(f"Several daemons are named {value!r}; give its id.") from None
            found = matches[0] if matches else None
            if found is None and create:
                found = Daemon.objects.create(name=value)
        if found is None:
            raise CommandError(f"No daemon {value!r} (use --create-daemon to create it).")
        return found
