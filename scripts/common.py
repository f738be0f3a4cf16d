"""What every script shares: simulator options, one-line errors, progress, option parsers.

Run folders and provenance (``agents.provenance``) and the simulator (``agents.simulator``) are
imported here too, so that every script finds them in one place.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from agents.provenance import git_commit, make_run_dir, versions, write_provenance, write_result_json
from agents.simulator import Simulator, check_tuned_simulator
from decay_model.errors import ConfigError, run_command
from decay_model.logs import SOURCES
from decay_model.memory import peak_rss_mib
from decay_model.synthetic import load_log_or_synthetic
from decay_model.task import TaskConfig
from decay_model.threads import torch_threads
from envs.config import PRESETS
from envs.simulator_folder import load_sim

__all__ = [
    "Simulator",
    "add_log_options",
    "add_simulator_options",
    "add_split_options",
    "add_tuning_options",
    "check_positive",
    "check_tuned_simulator",
    "console",
    "entry_point",
    "git_commit",
    "log_run",
    "make_run_dir",
    "peak_rss_mib",
    "progress",
    "progress_tasks",
    "resolve_simulator",
    "split_config",
    "torch_threads",
    "versions",
    "write_provenance",
    "write_result_json",
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


def add_tuning_options(parser: argparse.ArgumentParser, show: str, retire: str, max_unanswered: str) -> None:
    """``--train-users``, ``--grid``, ``--max-unanswered``, ``--batch``, ``--n-boot``: tuning the rules."""
    parser.add_argument("--train-users", type=int, default=1000, help="users per grid point (default: 1000)")
    parser.add_argument(
        "--grid",
        nargs=2,
        metavar=("SHOW_ABOVE", "RETIRE_BELOW"),
        default=[show, retire],
        help=f"comma lists; pairs with retire_below > show_above are skipped (default: {show} {retire})",
    )
    parser.add_argument(
        "--max-unanswered",
        default=max_unanswered,
        help=f"threshold+ grid, 'none' = never (default: {max_unanswered})",
    )
    parser.add_argument("--batch", type=int, default=2048, help="users stepped together (default: 2048)")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default: 2000)")


def log_run(
    args: argparse.Namespace, argv: Sequence[str] | None, kind: str, record: dict[str, Any]
) -> tuple[Any, dict[str, Any], Path]:
    """Load ``--logs`` (or the synthetic log), say what it holds, open the run folder of ``kind``.

    The run's ``config.json`` records the options, the data's fingerprint and ``record``.
    Returns the log, that fingerprint and the run folder.
    """
    item_categories = getattr(args, "item_categories", None)
    log, data, label = load_log_or_synthetic(
        args.logs, args.source, args.seed, item_categories=item_categories
    )
    console.print(f"[dim]{log.report.summary()}[/dim]", soft_wrap=True)
    for warning in log.report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    run_dir = make_run_dir(args.out, kind, label, args.seed)
    write_provenance(run_dir, {**vars(args), "data": data, **record}, args.seed, f"scripts.{kind}", argv)
    return log, data, run_dir


def resolve_simulator(args: argparse.Namespace) -> Simulator:
    """The simulator of ``add_simulator_options``' arguments; ConfigError names a bad preset or folder."""
    if getattr(args, "sim", None):
        return Simulator("default", str(args.sim), load_sim(args.sim))
    return Simulator.of_preset(getattr(args, "preset", None) or "default")


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


def entry_point(prog: str, main: Callable[[Sequence[str] | None], int]) -> Callable[..., None]:
    """The console-script entry point of a command's ``main``: ``run_command`` under the command's name."""
    return functools.partial(run_command, prog, main)
