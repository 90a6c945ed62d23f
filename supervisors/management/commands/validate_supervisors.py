"""manage.py validate_supervisors: which supervisors' saved state cannot be trusted, and why."""

from __future__ import annotations

import json

from django.core.management.base import CommandError

from supervisors.management.selection_options import SelectionCommand, selection_from_options
from supervisors.services.restoration import validate_selection

EXAMPLES = """
Runs the restoration protocol's validation (the decision table of DESIGN.md) and
changes nothing. Each invalid supervisor is printed with its issues (each names
the field and the offending value) and the recovery action a restoration would
apply. Exit code: 0 when every selected supervisor is valid, 1 otherwise.

examples:
  manage.py validate_supervisors --all
  manage.py validate_supervisors --state waiting_for_tasks --state working --json
  manage.py validate_supervisors --contract 7c9e6679-7425-40de-944b-e07fc1f90ae7 -v 2   # warnings too
"""


class Command(SelectionCommand):
    examples = EXAMPLES
    help = "Validate supervisors' saved state and report what a restoration would do; changes nothing."

    def handle(self, *args, **options) -> None:
        selection = selection_from_options(options)
        checked = 0
        invalid = []
        for page in validate_selection(selection, batch_size=options["batch_size"]):
            for row in page:
                checked += 1
                result = row.result
                if not result.is_valid:
                    invalid.append(row)
                if options["json"]:
                    continue
                if not result.is_valid:
                    self.stdout.write(self.style.WARNING(f"{row.contract_id} ({row.state}): {result.recovery_action}"))
                    for issue in result.issues:
                        self.stdout.write(f"  - {issue}")
                if options["verbosity"] >= 2:
                    for warning in result.warnings:
                        self.stdout.write(f"  warning {row.contract_id}: {warning}")
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "checked": checked,
                        "invalid": len(invalid),
                        "supervisors": [
                            {"contractId": str(r.contract_id), "state": r.state, **r.result.as_dict(camel=True)}
                            for r in invalid
                        ],
                    },
                    indent=2,
                )
            )
        else:
            self.stdout.write(f"Checked {checked} supervisor(s): {len(invalid)} invalid.")
        if invalid:
            raise CommandError(f"{len(invalid)} supervisor(s) have an invalid state.", returncode=1)
