"""What every script shares: run folders, provenance, one-line errors, progress."""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from decay_model.atomic import atomic_write_json
from decay_model.errors import ConfigError, DecaygymError
from envs.config import PRESETS, SimConfig, get_preset
from envs.simulator_folder import load_sim, sim_provenance

console = Console(stderr=True)

_PACKAGES = (
    "decaygym",
    "numpy",
    "numba",
    "pandas",
    "pyarrow",
    "torch",
    "gymnasium",
    "stable-baselines3",
    "scikit-learn",
)


def versions(extra: Sequence[str] = ()) -> dict[str, str]:
    """Python and package versions (the common ones and ``extra``), recorded with every run."""
    out = {"python": platform.python_version()}
    for name in (*_PACKAGES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def git_commit() -> str | None:
    """The commit of the checkout the code runs from, if it is a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def make_run_dir(out: str | None, script: str, label: str, seed: int) -> Path:
    """``--out`` as given, else ``runs/<script>__<label>__seed<seed>__<timestamp>``."""
    if out:
        path = Path(out)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{script}__{label}__seed{seed}__{stamp}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_provenance(run_dir: Path, config: dict[str, Any], seed: int, argv: Sequence[str]) -> None:
    """config.json: the run's settings, seed, command, versions and commit, so it can be rerun."""
    atomic_write_json(
        run_dir / "config.json",
        {
            "config": config,
            "seed": seed,
            "command": " ".join(["python", "-m", *argv]) if argv else None,
            "versions": versions(),
            "git_commit": git_commit(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


@dataclass(frozen=True)
class Simulator:
    """The simulator a command runs on: a named preset, or a folder built by ``decaygym-build-sim``.

    A folder keeps the ``default`` preset's sizes (the build starts from them), so ``preset`` is
    ``default`` for it: the preset's hyperparameters and env id apply, and ``env_kwargs`` adds the
    folder to every env the command makes.
    """

    preset: str
    sim: str | None
    config: SimConfig

    @property
    def label(self) -> str:
        """Short name for run folders: the preset, or the folder's name."""
        return self.preset if self.sim is None else Path(self.sim).name

    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every env (and ``agents``' ``**overrides``) needs for this simulator."""
        return {} if self.sim is None else {"sim": self.sim}

    def argv(self) -> list[str]:
        """The options that select it again, for the commands a command runs."""
        return ["--preset", self.preset] if self.sim is None else ["--sim", self.sim]

    def record(self) -> dict[str, Any]:
        """What a run folder's config.json keeps of it (a folder's fingerprint from its card)."""
        return {"preset": self.preset, "sim": None if self.sim is None else sim_provenance(self.sim)}


def add_simulator_options(parser: argparse.ArgumentParser) -> None:
    """``--preset NAME`` or ``--sim DIR`` (one of them; default: the ``default`` preset)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--preset", help=f"simulator preset: {', '.join(PRESETS)} (default: default)")
    group.add_argument(
        "--sim", metavar="DIR", help="simulator folder built from your logs by decaygym-build-sim"
    )


def resolve_simulator(args: argparse.Namespace) -> Simulator:
    """The simulator of ``add_simulator_options``' arguments; ConfigError names a bad preset or folder."""
    if getattr(args, "sim", None):
        return Simulator("default", str(args.sim), load_sim(args.sim))
    preset = getattr(args, "preset", None) or "default"
    return Simulator(preset, None, get_preset(preset))


def check_tuned_simulator(data: dict[str, Any], path: str | Path, sim: Simulator) -> None:
    """ConfigError unless the tuned parameters in ``path`` were tuned on the same simulator folder."""
    recorded = (data.get("simulator") or {}).get("sim") or {}
    ours = sim.record()["sim"] or {}
    if recorded.get("fingerprint") != ours.get("fingerprint"):
        where = f"simulator folder {recorded.get('path')}" if recorded else f"preset {data.get('preset')!r}"
        now = f"simulator folder {sim.sim}" if sim.sim else f"preset {sim.preset!r}"
        raise ConfigError(
            f"tuned parameters {path} were tuned on {where}, not on {now}: tune on what you run"
        )


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
