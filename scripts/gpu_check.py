r"""Measure what a GPU changes: NeuralDecay training, neural re-encoding and the simulator, CPU beside CUDA.

Examples:
    python -m scripts.gpu_check                                    # CPU, and CUDA when present
    python -m scripts.gpu_check --users 64 --steps 3 --seconds 0.1   # small, as CI runs it
    python -m scripts.gpu_check --neural-preset large --users 16384 --json runs/gpu_check.json

What each row counts: ``envs.gpu_check``. Without CUDA the CPU rows are measured and the output
names the GPU rows it skipped and why; the simulator's dynamics run on the CPU (Numba) wherever
they run, so its row has no CUDA figure.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from rich.console import Console

from decay_model.neural import PRESETS
from decay_model.synthetic import load_log_or_synthetic
from decay_model.task import EvalTask
from envs.gpu_check import measure, print_results
from scripts.common import (
    add_log_options,
    add_simulator_options,
    check_positive,
    console,
    entry_point,
    progress,
    resolve_simulator,
    torch_threads,
    write_result_json,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="decaygym-gpu-check", description=__doc__.splitlines()[0])
    add_log_options(parser)
    add_simulator_options(parser)
    parser.add_argument(
        "--neural-preset", choices=list(PRESETS), default="tiny", help="NeuralDecay size (default: tiny)"
    )
    parser.add_argument("--users", type=int, default=1024, help="simulated users N (default: 1024)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (default: 20)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per simulator row (default: 2)")
    parser.add_argument(
        "--reencode-every", type=int, default=10, help="visits between re-encodings (default: 10)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the log, model and envs (default: 0)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure on the CPU and on CUDA when present, print the table, optionally write JSON."""
    args = parse_args(argv)
    check_positive(args, "users", "steps", "reencode_every", "threads")
    sim = resolve_simulator(args)
    with torch_threads(args.threads), progress() as bar:
        task = bar.add_task("loading the log", total=None)
        log, _, label = load_log_or_synthetic(args.logs, args.source, args.seed)
        result = measure(
                log, EvalTask(log), sim.preset, sim.config, neural_preset=args.neural_preset,
                users=args.users, steps=args.steps, seconds=args.seconds, seed=args.seed,
                reencode_every=args.reencode_every, stage=lambda text: bar.update(task, description=text),
                **sim.env_kwargs(),
            )  # fmt: skip
    out = Console(width=max(120, console.width))  # results on stdout
    title = (
        f"decaygym GPU check: {label} log ({log.n_events:,} events), simulator {sim.label}; "
        f"{os.cpu_count()} CPUs, torch threads {args.threads}"
    )
    print_results(out, title, result)
    write_result_json(args.json, result)
    return 0


cli = entry_point("decaygym-gpu-check", main)


if __name__ == "__main__":
    cli()
