"""Who asked for a change: recorded with answers, restorations and admin log entries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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

    @classmethod
    def staff(cls, user: AbstractBaseUser) -> Actor:
        return cls(ActorKind.STAFF, user=user, label=f"staff:{user.get_username()}")

    @classmethod
    def for_daemon(cls, daemon: Daemon) -> Actor:
        return cls(ActorKind.DAEMON, daemon=daemon, label=f"daemon:{daemon.name}")

    @classmethod
    def command(cls, name: str) -> Actor:
        return cls(ActorKind.COMMAND, label=f"command:{name}")

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(ActorKind.SYSTEM, label=label)

    def __str__(self) -> str:
        return self.label or self.kind
