"""What every script shares: simulator options, one-line errors, progress, option parsers.

Run folders and provenance (``agents.provenance``) and the simulator (``agents.simulator``) are
imported here too, so that every script finds them in one place.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from agents.provenance import git_commit, make_run_dir, versions, write_provenance
from agents.simulator import Simulator, check_tuned_simulator
from decay_model.errors import ConfigError, DecaygymError
from decay_model.logs import SOURCES
from decay_model.memory import peak_rss_mib
from decay_model.task import TaskConfig
from envs.config import PRESETS, get_preset
from envs.simulator_folder import load_sim

__all__ = [
    "Simulator",
    "add_log_options",
    "add_simulator_options",
    "add_split_options",
    "check_positive",
    "check_tuned_simulator",
    "console",
    "git_commit",
    "make_run_dir",
    "parse_floats",
    "parse_max_unanswered",
    "peak_rss_mib",
    "progress",
    "progress_tasks",
    "resolve_simulator",
    "run_cli",
    "split_config",
    "versions",
    "write_provenance",
]

console = Console(stderr=True)


def add_simulator_options(parser: argparse.ArgumentParser) -> None:
    """``--preset NAME`` or ``--sim DIR`` (one of them; default: the ``default`` preset)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--preset", help=f"simulator preset: {', '.join(PRESETS)} (default: default)")
    group.add_argument(
        "--sim", metavar="DIR", help="simulator folder built from your logs by decaygym-build-sim"
    )


def add_log_options(parser: argparse.ArgumentParser, default: str = "the built-in synthetic log") -> None:
    """``--logs PATH`` and ``--source NAME``: the behaviour log a command reads."""
    parser.add_argument("--logs", metavar="PATH", help=f"behaviour log (CSV or Parquet); default: {default}")
    parser.add_argument("--source", choices=sorted(SOURCES), help="vocabulary of the log (default: detected)")


def add_split_options(parser: argparse.ArgumentParser, split: TaskConfig, test: str = "test period") -> None:
    """``--train-days``, ``--valid-days``, ``--test-days``: how the log is split, ``split``'s by default."""
    for name, value, what in (
        ("train", split.train_days, "training period"),
        ("valid", split.valid_days, "validation period"),
        ("test", split.test_days, test),
    ):
        parser.add_argument(
            f"--{name}-days", type=float, default=value, help=f"{what}, days (default: {value:g})"
        )


def split_config(args: argparse.Namespace, **task: Any) -> TaskConfig:
    """The split of ``add_split_options``' arguments (and any other ``TaskConfig`` fields)."""
    return TaskConfig(
        train_days=args.train_days, valid_days=args.valid_days, test_days=args.test_days, **task
    )


def resolve_simulator(args: argparse.Namespace) -> Simulator:
    """The simulator of ``add_simulator_options``' arguments; ConfigError names a bad preset or folder."""
    if getattr(args, "sim", None):
        return Simulator("default", str(args.sim), load_sim(args.sim))
    preset = getattr(args, "preset", None) or "default"
    return Simulator(preset, None, get_preset(preset))


def check_positive(args: argparse.Namespace, *names: str) -> None:
    """ConfigError naming the first option of ``names`` (attribute names) whose value is below 1."""
    for name in names:
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")


def progress() -> Progress:
    """A progress display on stderr, so that stdout keeps only the results.

    Off when stderr is not a terminal (CI logs, pipes): a frozen bar there is
    noise in front of the one-line error or the table.
    """
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def progress_tasks(bar: Progress) -> Callable[[str, int], Callable[..., None]]:
    """What opens a task on ``bar`` for the library's long runs.

    ``start(description, total)`` adds the task and returns what advances it by one step (it takes
    and ignores the arguments of the library's ``on_point`` callbacks).
    """

    def start(description: str, total: int) -> Callable[..., None]:
        task = bar.add_task(description, total=total)

        def advance(*_: Any) -> None:
            bar.advance(task)

        return advance

    return start


def run_cli(
    prog: str, main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None
) -> None:
    """Run ``main`` and turn decaygym's own errors into one line on stderr and exit status 2."""
    try:
        code = main(argv)
    except DecaygymError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; results already written are kept", file=sys.stderr)
        code = 130
    raise SystemExit(code)


def parse_floats(text: str, name: str) -> list[float]:
    """A comma list of numbers; ConfigError naming the option otherwise."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{name}: expected a comma list of numbers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{name}: expected at least one number, got {text!r}")
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{name}: expected finite numbers, got {text!r}")
    return sorted(set(values))


def parse_max_unanswered(text: str) -> tuple[int | None, ...]:
    """A comma list of integers >= 1 or 'none'; ConfigError naming the option otherwise."""
    out: list[int | None] = []
    for v in (v.strip() for v in text.split(",") if v.strip()):
        if v.lower() == "none":
            out.append(None)
        elif v.isdigit() and int(v) >= 1:
            out.append(int(v))
        else:
            raise ConfigError(f"--max-unanswered: expected integers >= 1 or 'none', got {v!r}")
    if not out:
        raise ConfigError("--max-unanswered: expected at least one value")
    return tuple(dict.fromkeys(out))
