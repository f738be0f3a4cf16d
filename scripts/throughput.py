r"""Measure simulator throughput: user-steps per second of the single env and of the vector env.

Examples:
    python -m scripts.throughput                         # single env, vector env at N = 1 .. 16,384
    python -m scripts.throughput --seconds 1 --sizes 1 64 --json runs/throughput.json
    git worktree add ../before v0.1.0        # any other checkout of decaygym, then:
    python -m scripts.throughput --against ../before --rounds 3 --sizes 16384

Every number comes from the same run (how each timer works: ``envs.throughput``): the single
env (``gymnasium.make``, with its wrappers) stepped in a Python loop and the vector env at each
N, observations included, driven by the same pre-drawn actions; the ratio of the largest vector
run to the single env; the state size and peak memory; one row with the neural decay model
re-encoding every user every 10 visits (``--reencode-every``, ``--reencode-size``). The
dynamics run on the CPU (Numba); a CUDA backend does not exist, so no CUDA row is measured; the
re-encoding model runs on CUDA when present. ``--against DIR`` measures this checkout and
another one in alternating rounds, each in its own process (``envs.throughput.compare_checkouts``),
and prints their ratios: machines are shared and noisy, so only ratios measured together count.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from decay_model.errors import ConfigError
from envs.throughput import POLICIES, compare_checkouts, comparison_table, measure, print_results
from scripts.common import (
    add_simulator_options,
    console,
    entry_point,
    progress,
    resolve_simulator,
    write_result_json,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="decaygym-throughput", description=__doc__.splitlines()[0])
    add_simulator_options(parser)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1, 64, 1024, 16384], help="users N of the vector env"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="time measured per row (default: 3)")
    parser.add_argument("--policy", default="mixed", choices=sorted(POLICIES), help="pre-drawn actions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the envs and actions (default: 0)")
    parser.add_argument(
        "--reencode-every", type=int, default=10, help="visits between re-encodings; 0: no such row"
    )
    parser.add_argument("--reencode-size", type=int, default=1024, help="users N of the re-encoding row")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--against", metavar="DIR", help="another decaygym checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of --against (default: 3)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure (or compare with another checkout), print the table, optionally write JSON."""
    args = parse_args(argv)
    out = Console(width=max(100, console.width))  # results on stdout
    if args.against:
        if args.rounds < 1:
            raise ConfigError(f"--rounds must be >= 1, got {args.rounds}")
        preset = args.preset or "default"
        options = ["--seconds", str(args.seconds), "--preset", preset, "--sizes", *map(str, args.sizes)]
        here = Path(__file__).resolve().parent.parent
        result = compare_checkouts(here, Path(args.against), options, args.rounds, console.print)
        out.print(comparison_table(result))
    else:
        sim = resolve_simulator(args)
        with progress() as bar:
            task = bar.add_task("measuring", total=None)
            result = measure(
                sim.preset, sim.config, args.sizes, args.policy, args.seconds, args.seed,
                args.reencode_every, args.reencode_size,
                stage=lambda text: bar.update(task, description=text),
                **sim.env_kwargs(),
            )  # fmt: skip
        what = f"{'preset' if sim.sim is None else 'simulator'} {sim.label}, K = {sim.config.num_slots}"
        title = f"decaygym throughput: {what}, policy {args.policy}, {os.cpu_count()} CPUs"
        print_results(out, title, result)
        result.update(preset=sim.preset, simulator=sim.record())
    write_result_json(args.json, result)
    return 0


cli = entry_point("decaygym-throughput", main)


if __name__ == "__main__":
    cli()
