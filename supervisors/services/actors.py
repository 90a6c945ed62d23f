"""Who asked for a change: recorded with answers, restorations and admin log entries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from supervisors.enums import ActorKind

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from supervisors.models import Daemon


@dataclass(frozen=True)
class Actor:
    """A staff user, a daemon, a management command or the system itself."""

    kind: ActorKind
    user: AbstractBaseUser | None = None
    daemon: Daemon | None = None
    label: str = ""
    #: The daemon's id when only that is known (a fenced write): its name is looked up where it is recorded.
    daemon_id: UUID | None = None

    @classmethod
    def staff(cls, user: AbstractBaseUser) -> Actor:
        return cls(ActorKind.STAFF, user=user, label=f"staff:{user.get_username()}")

    @classmethod
    def for_daemon(cls, daemon: Daemon) -> Actor:
        return cls(ActorKind.DAEMON, daemon=daemon, label=f"daemon:{daemon.name}", daemon_id=daemon.id)

    @classmethod
    def for_daemon_id(cls, daemon_id: UUID) -> Actor:
        """A daemon known by id only (a fenced write): events record its name without an extra query."""
        return cls(ActorKind.DAEMON, daemon_id=daemon_id)

    @classmethod
    def command(cls, name: str) -> Actor:
        return cls(ActorKind.COMMAND, label=f"command:{name}")

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(ActorKind.SYSTEM, label=label)

    def __str__(self) -> str:
        if self.label:
            return self.label
        return f"daemon:{self.daemon_id}" if self.daemon_id is not None else str(self.kind)
