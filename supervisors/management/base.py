"""What every command of this project shares: a bad argument is one line on stderr and exit code 2.

Operators script these commands; a traceback for a typo (a huge number, a
malformed id, a byte that is not UTF-8) hides the one line that matters and
makes the exit code useless to the script.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser

from supervisors.validators import has_surrogate

#: Exit code of a usage error, as argparse has it.
EXIT_USAGE = 2


class OneLineParser(CommandParser):
    """argparse's errors as one line (``--help`` still shows the usage), exit code 2."""

    def error(self, message: str) -> NoReturn:
        # argparse echoes unrecognised arguments as given: bytes that were not UTF-8 shown escaped, not a crash.
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        if self.called_from_command_line:
            self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")
        raise CommandError(f"Error: {message}", returncode=EXIT_USAGE)


def bounded_int(minimum: int, maximum: int, what: str = "whole number") -> Callable[[str], int]:
    """An argparse ``type``: a whole number in ``minimum..maximum``, or a one-line usage error.

    The maximum keeps absurd values from reaching timedelta (OverflowError) or
    the database (an integer out of range): both were tracebacks.
    """

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a {what}") from None
        if not minimum <= number <= maximum:
            raise argparse.ArgumentTypeError(f"{value!r} is not a {what} from {minimum} to {maximum}")
        return number

    parse.__name__ = what  # argparse names the type in some messages
    return parse


def unusable_text(value: Any) -> str | None:
    """Why a command's string argument cannot be used (a NUL, or bytes that are not UTF-8), or None."""
    if not isinstance(value, str):
        return None
    if "\x00" in value:
        return "contains a NUL character"
    if has_surrogate(value):  # non-UTF-8 bytes in argv arrive as lone surrogates (surrogateescape)
        return "is not valid UTF-8 text"
    return None


class ProjectCommand(BaseCommand):
    """A command whose usage errors are one line with exit code 2, whether run from a shell or call_command."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = OneLineParser  # Django builds a CommandParser; only error() differs
        return parser

    def execute(self, *args: Any, **options: Any) -> Any:
        for name, value in [*((f"argument {i + 1}", arg) for i, arg in enumerate(args)), *options.items()]:
            values = value if isinstance(value, (list, tuple)) else [value]
            for item in values:
                if (problem := unusable_text(item)) is not None:
                    given = name.replace("_", "-")
                    raise CommandError(f"The value given for {given} {problem}.", returncode=EXIT_USAGE)
        return super().execute(*args, **options)
