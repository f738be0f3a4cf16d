"""Throughput of this checkout against another one, measured side by side in one run.

Examples:
    git worktree add ../before v0.1.0      # any other checkout of decaygym
    python -m scripts.compare_throughput --against ../before --rounds 3

Each round runs ``python -m scripts.throughput`` (re-encoding row off) once in this checkout and
once in the other, alternating, each in its own process and with its own package on the path,
so both meet the same machine load. The table gives each version's best round per row and the
ratio this / other: machines are shared and noisy, so only ratios measured together mean
anything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from decay_model.errors import ConfigError
from scripts.common import console, run_cli

HERE = Path(__file__).resolve().parent.parent


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="compare_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="root of the other decaygym checkout")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time measured per row (default: 3)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[16384], help="vector env sizes N (default: 16384)"
    )
    parser.add_argument("--preset", default="default", help="simulator preset (default: default)")
    parser.add_argument("--json", metavar="PATH", help="also write the rounds and ratios as JSON")
    return parser.parse_args(argv)


def measure(root: Path, args: argparse.Namespace, out: Path) -> dict[str, float]:
    """One run of the throughput script in checkout ``root``: user-steps/s per row."""
    cmd = [sys.executable, "-m", "scripts.throughput", "--json", str(out), "--reencode-every", "0"]
    cmd += ["--seconds", str(args.seconds), "--preset", args.preset, "--sizes", *map(str, args.sizes)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True, text=True)
    result = json.loads(out.read_text())
    rates = {"single env": result["single_steps_per_s"]}
    rates.update({f"vector env, N = {int(n):,}": v for n, v in result["vector_steps_per_s"].items()})
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    """Measure both checkouts in alternating rounds and print the ratios; returns the exit status."""
    args = parse_args(argv)
    other = Path(args.against).resolve()
    if not (other / "scripts" / "throughput.py").is_file():
        raise ConfigError(f"--against {other}: not a decaygym checkout (no scripts/throughput.py)")
    if args.rounds < 1:
        raise ConfigError(f"--rounds must be >= 1, got {args.rounds}")
    rounds: dict[str, list[dict[str, float]]] = {"this": [], "other": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for label, root in (("this", HERE), ("other", other)):
                console.print(f"round {r + 1}/{args.rounds}: {label} ({root})")
                rounds[label].append(measure(root, args, Path(tmp) / f"{label}{r}.json"))
    best = {label: {row: max(run[row] for run in runs) for row in runs[0]} for label, runs in rounds.items()}
    table = Table(title=f"throughput, best of {args.rounds} alternating rounds (user-steps/s)")
    for col in ("row", "this", "other", "this / other"):
        table.add_column(col, justify="left" if col == "row" else "right")
    ratios = {}
    for row in best["this"]:
        ratios[row] = best["this"][row] / best["other"][row]
        table.add_row(row, f"{best['this'][row]:,.0f}", f"{best['other'][row]:,.0f}", f"{ratios[row]:.3f}")
    console.print(table)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(f"this: {HERE}; other: {other}; load average {load:.1f}")
    if args.json:
        from decay_model.atomic import atomic_write_json

        atomic_write_json(
            Path(args.json), {"rounds": rounds, "best": best, "ratio": ratios, "other": str(other)}
        )
    return 0


def cli(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    run_cli("compare_throughput", main, argv)


if __name__ == "__main__":
    cli()
