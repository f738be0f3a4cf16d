"""Re-run a published training run, or its first validations, and compare the results bit for bit.

A published run is kept as a small record (``docs/published/*.json``): the settings its
``config.json`` holds (thread count included), the versions and machine it ran on, and for each
of its ``EvalCallback`` validations the mean return and a SHA-256 of every validation user's
return and episode length. ``check`` trains with those settings up to the ``n``-th validation
(decaygym-train's rates and clip ranges are constants, not schedules of the total budget, so
a shorter run is the published one's prefix) and compares each validation's hash, so "same
numbers on another machine" is a command, not a claim::

    python -m agents.reproduction record RUN_DIR docs/published/NAME.json
    python -m agents.reproduction check docs/published/full_ppo_seed0.json --validations 2

``check`` exits 0 when every compared validation is identical, 1 when one differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from agents.provenance import machine, versions
from agents.trained import RUN_CONFIG_FILE
from agents.training import TrainSettings, stored_settings, train
from decay_model.atomic import atomic_write_json
from decay_model.errors import ConfigError, run_command

EVALUATIONS = Path("eval") / "evaluations.npz"


@dataclass(frozen=True)
class Validation:
    """One ``EvalCallback`` validation: when it ran and what it measured."""

    timesteps: int
    mean_return: float
    sha256: str
    """Of the per-user returns and episode lengths, as float64 and int64 bytes."""


def validations(run_dir: Path) -> list[Validation]:
    """The validations a run folder's ``eval/evaluations.npz`` holds."""
    path = run_dir / EVALUATIONS
    try:
        with np.load(path) as data:
            steps, results, lengths = data["timesteps"], data["results"], data["ep_lengths"]
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: not an EvalCallback record ({exc})") from None
    out = []
    for step, result, length in zip(steps, results, lengths, strict=True):
        digest = hashlib.sha256(np.asarray(result, np.float64).tobytes())
        digest.update(np.asarray(length, np.int64).tobytes())
        out.append(Validation(int(step), float(np.mean(result)), digest.hexdigest()))
    return out


def make_record(run_dir: Path, torch_threads: int | None = None) -> dict[str, Any]:
    """The record of a finished run: its settings, provenance and validations.

    ``torch_threads``: the count the run trained with, where its ``config.json`` predates
    recording it (``agents.training.stored_settings``).
    """
    config = json.loads((run_dir / RUN_CONFIG_FILE).read_text())
    settings = stored_settings(run_dir, torch_threads)
    return {
        "command": config.get("command"),
        "settings": asdict(settings),
        "git_commit": config.get("git_commit"),
        "versions": config.get("versions"),
        "machine": config.get("machine"),
        "validations": [asdict(v) for v in validations(run_dir)],
    }


def load_record(path: Path) -> tuple[TrainSettings, list[Validation]]:
    """The settings and validations of a record file."""
    try:
        record = json.loads(path.read_text())
        return TrainSettings(**record["settings"]), [Validation(**v) for v in record["validations"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a reproduction record ({exc})") from None


def provenance_differences(record: dict[str, Any]) -> list[str]:
    """What differs between the record's versions and CPU and this process's, as ``name: then -> now``.

    A re-run that differs on another CPU type or torch build is expected (float kernels differ,
    and training amplifies a last-bit difference); one that differs with none of these is a bug.
    """
    out = []
    recorded_versions = record.get("versions") or {}
    for name, now in versions().items():
        then = recorded_versions.get(name)
        if then is not None and then != now:
            out.append(f"{name}: {then} -> {now}")
    recorded_machine, cpu = record.get("machine"), machine()["cpu"]
    if recorded_machine is None:
        out.append("cpu: not recorded")
    elif recorded_machine.get("cpu") != cpu:
        out.append(f"cpu: {recorded_machine.get('cpu')} -> {cpu}")
    return out


def check(
    record: Path, n: int | None, out: Path, device: str = "cpu"
) -> list[tuple[Validation, Validation | None]]:
    """Train the record's run into ``out`` on ``device`` up to its ``n``-th validation (all when None).

    Returns the published validation beside the new one (None if the new run has none there).
    The published figures were trained on CPU, and GPU kernels need not be bitwise deterministic,
    so the device is CPU unless asked otherwise.
    """
    settings, published = load_record(record)
    settings = replace(settings, device=device)
    n = len(published) if n is None else n
    if not 1 <= n <= len(published):
        raise ConfigError(f"--validations must be in 1..{len(published)} for {record}, got {n}")
    wanted = published[:n]
    if n < len(published):
        settings = replace(settings, timesteps=wanted[-1].timesteps)
    train(settings, out)
    now = validations(out)
    return [(p, now[i] if i < len(now) else None) for i, p in enumerate(wanted)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The ``record`` and ``check`` subcommands' options."""
    parser = argparse.ArgumentParser(prog="python -m agents.reproduction", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    rec = sub.add_parser("record", help="write the record of a finished training run")
    rec.add_argument("run", type=Path, help="training run folder (config.json, eval/evaluations.npz)")
    rec.add_argument("file", type=Path, help="record to write (JSON)")
    rec.add_argument(
        "--torch-threads", type=int, help="threads the run trained with, if its config.json does not say"
    )
    chk = sub.add_parser("check", help="re-run a record's training and compare its validations")
    chk.add_argument("file", type=Path, help="record (JSON)")
    chk.add_argument("--validations", type=int, help="compare the first N (default: all)")
    chk.add_argument("--out", type=Path, help="run folder of the re-run (default: a temporary one)")
    chk.add_argument("--device", default="cpu", help="torch device of the re-run (default: cpu)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Write a record, or check one; prints one line per validation."""
    args = parse_args(argv)
    if args.action == "record":
        atomic_write_json(args.file, make_record(args.run, args.torch_threads))
        print(f"record of {args.run} written to {args.file}")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        pairs = check(args.file, args.validations, args.out or Path(scratch) / "run", args.device)
    print(f"this machine: {machine()}; torch {versions()['torch']} on {args.device}")
    same = True
    for published, now in pairs:
        ok = now is not None and now == published
        same &= ok
        got = "missing" if now is None else f"{now.mean_return!r} {now.sha256[:12]}"
        verdict = "identical" if ok else "DIFFERS"
        print(f"{published.timesteps:>9} steps: published {published.mean_return!r} "
              f"{published.sha256[:12]}, now {got}: {verdict}")  # fmt: skip
    print(f"{len(pairs)} validations {'identical' if same else 'not identical'} to {args.file}")
    if not same:
        differences = provenance_differences(json.loads(args.file.read_text()))
        if differences:
            print(f"this machine differs from the record's in {'; '.join(differences)}: float kernels "
                  "differ between CPU types and torch builds, other digits are expected there")  # fmt: skip
        else:
            print("same versions and CPU as the record: a difference here is a reproducibility bug")
    return 0 if same else 1


if __name__ == "__main__":
    run_command("python -m agents.reproduction", main)
