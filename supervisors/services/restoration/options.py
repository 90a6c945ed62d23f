"""How a restoration is asked for: the same options for one supervisor or every one of a batch."""

from __future__ import annotations

from dataclasses import dataclass

from supervisors.enums import RecoveryAction, RestorationSource
from supervisors.models import Daemon
from supervisors.services.actors import Actor
from supervisors.services.errors import InvalidInput
from supervisors.validators import NUL_MESSAGE, SURROGATE_MESSAGE, has_surrogate


@dataclass(frozen=True)
class RestoreOptions:
    """How to restore: the same for every supervisor of a batch."""

    source: str
    actor: Actor
    reason: str = ""
    checkpoint_id: int | None = None
    force_action: RecoveryAction | None = None
    assign_to_daemon: Daemon | None = None
    dry_run: bool = False
    #: A daemon claiming orphans (``claims``): the timeline records "claimed" rather than "taken over".
    via_claim: bool = False

    @property
    def wants_checkpoint(self) -> bool:
        """The caller asked for a checkpoint, so every supervisor's checkpoints must be loaded."""
        return self.force_action == RecoveryAction.USE_CHECKPOINT or self.checkpoint_id is not None

    def check(self) -> None:
        """Raise InvalidInput for options no restoration could honour, before anything is locked."""
        if self.source not in RestorationSource.values:
            raise InvalidInput(
                f"Unknown restoration source {self.source!r}; use one of {', '.join(RestorationSource.values)}.",
                fields={"source": [f"{self.source!r} is not a restoration source."]},
            )
        if self.force_action is not None and self.force_action not in RecoveryAction.values:
            raise InvalidInput(
                f"Unknown recovery action {self.force_action!r}.",
                fields={"force_action": [f"{self.force_action!r} is not a recovery action."]},
            )
        if "\x00" in self.reason or has_surrogate(self.reason):
            problem = NUL_MESSAGE if "\x00" in self.reason else SURROGATE_MESSAGE
            raise InvalidInput(f"The reason cannot be stored. {problem}", fields={"reason": [problem]})
        if self.checkpoint_id is not None and self.force_action not in (None, RecoveryAction.USE_CHECKPOINT):
            raise InvalidInput(
                "A checkpoint to restore from cannot be combined with another recovery action.",
                fields={
                    "checkpoint_id": ["Only with UseCheckpoint."],
                    "force_action": ["Conflicts with checkpoint_id."],
                },
            )
