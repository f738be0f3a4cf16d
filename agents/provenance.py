"""Run folders and their provenance: where a run writes, and what it records to be rerun."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from decay_model.atomic import atomic_write_json
from decay_model.errors import command_line

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


def machine() -> dict[str, Any]:
    """The CPU a run used (float results may depend on its instruction set), its cores and OS."""
    model = platform.processor()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(
            (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), model
        )
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "platform": platform.platform()}


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


def write_provenance(
    run_dir: Path, config: dict[str, Any], seed: int, module: str, argv: Sequence[str] | None
) -> None:
    """config.json: the run's settings, seed, command, versions and commit, so it can be rerun.

    The command is ``python -m module`` with ``argv``, or with ``sys.argv``'s options when None
    (a console script's ``main`` is called without its options).
    """
    atomic_write_json(
        run_dir / "config.json",
        {
            "config": config,
            "seed": seed,
            "command": command_line(f"python -m {module}", argv),
            "versions": versions(),
            "machine": machine(),
            "git_commit": git_commit(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


def write_result_json(path: str | Path | None, result: dict[str, Any]) -> None:
    """A measurement's ``--json``: the result with the machine and the package versions, atomically."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(path), {**result, "machine": machine(), "versions": versions()})
