"""Step 2: judge the saved state. Pure: the world was loaded by ``load``.

The decision table itself (each finding, its severity) lives in
``supervisors.services.validation``, which the API's ``GET validation/`` and
the ``validate_supervisors`` command share; this step applies it to the rows a
restoration loaded, and to checkpoints by the same rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from supervisors.enums import RecoveryAction
from supervisors.models import SupervisorState
from supervisors.services.validation import (
    StateValidationResult,
    ValidationWorld,
    state_findings,
    validate_with_world,
    world_findings,
)

from .load import Loaded


def judge(supervisor: SupervisorState, world: ValidationWorld) -> StateValidationResult:
    """The live state's verdict: issues, warnings, and the recovery action they call for."""
    return validate_with_world(supervisor, world)


def judge_all(loaded: Loaded) -> dict[uuid.UUID, StateValidationResult]:
    """The verdict of every loaded supervisor, by supervisor id."""
    return {s.id: judge(s, loaded.worlds[s.id]) for s in loaded.supervisors}


def checkpoint_findings(
    fields: Mapping[str, Any], world: ValidationWorld, *, contract_id: uuid.UUID
) -> tuple[list[str], list[str]]:
    """(issues, warnings) of what a checkpoint would put back: the live state's rules, so none is applied blind."""
    return state_findings(fields, world, contract_id=contract_id)


def judge_checkpoint(
    supervisor: SupervisorState, world: ValidationWorld, fields: Mapping[str, Any]
) -> StateValidationResult:
    """Would restoring from a checkpoint with these fields be accepted, and as what action?"""
    manual = world_findings(supervisor, world)
    issues, warnings = state_findings(fields, world, contract_id=supervisor.contract_id)
    action = RecoveryAction.MANUAL_INTERVENTION if manual else RecoveryAction.USE_CHECKPOINT
    return StateValidationResult(
        is_valid=not (manual or issues), issues=manual + issues, recovery_action=action, warnings=warnings
    )
