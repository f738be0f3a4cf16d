"""The small exception hierarchy every decaygym package raises.

Bad input from a user raises one of these with a one-line message that says
what is wrong and where; command-line entry points print that line and exit
with status 2 instead of showing a traceback.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn


class DecaygymError(Exception):
    """Base class of every error decaygym raises on purpose."""


class DataValidationError(DecaygymError, ValueError):
    """A behaviour log is missing, unreadable or holds values outside the schema."""


class ConfigError(DecaygymError, ValueError):
    """A configuration field or command-line option has an invalid value."""


class ArtifactError(DecaygymError):
    """A saved model artifact is missing, corrupted, or of another format or version."""


class SimulationError(DecaygymError, RuntimeError):
    """The simulator was handed a value it cannot use (e.g. a re-encoded interest outside [0, 1])."""


def run_command(
    prog: str, main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None
) -> NoReturn:
    """Run a command's ``main`` and exit: decaygym's own errors become one line on stderr and status 2."""
    try:
        code = main(argv)
    except DecaygymError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; results already written are kept", file=sys.stderr)
        code = 130
    raise SystemExit(code)


def command_line(prog: str, argv: Sequence[str] | None = None) -> str:
    """The command as a shell would take it: ``prog`` and ``argv`` (the process's options when None)."""
    return shlex.join([*shlex.split(prog), *(sys.argv[1:] if argv is None else argv)])
