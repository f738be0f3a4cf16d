r"""Tune the threshold rules on training users, then compare them with trivial policies on held-out users.

Examples:
    python -m scripts.tune_threshold --preset default --out runs/tune_default
    python -m scripts.tune_threshold --preset small --train-users 64 --eval-users 64 \
        --grid 0.1,0.25 0,0.05 --families threshold --out runs/tune_small

The protocol and what ``--out`` holds: ``agents.threshold_comparison`` (the grid search:
``agents.tuning.tune``). ``decaygym-evaluate`` runs the full comparison (threshold+, greedy,
oracle, trained models).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.console import Console

from agents import seeds as seed_scheme
from agents import tuning
from agents.threshold_comparison import (
    FAMILIES,
    ThresholdStudy,
    result_lines,
    results_table,
    write_comparison,
)
from agents.tuning import DEFAULT_MAX_UNANSWERED
from scripts.common import (
    add_simulator_options,
    add_tuning_options,
    check_positive,
    console,
    entry_point,
    make_run_dir,
    progress,
    resolve_simulator,
    write_provenance,
)

DEFAULT_SHOW = ",".join(f"{v:g}" for v in tuning.DEFAULT_SHOW)
DEFAULT_RETIRE = ",".join(f"{v:g}" for v in tuning.DEFAULT_RETIRE)
DEFAULT_MAX = ",".join("none" if k is None else str(k) for k in DEFAULT_MAX_UNANSWERED)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="decaygym-tune-threshold", description=__doc__.splitlines()[0])
    add_simulator_options(parser)
    parser.add_argument(
        "--seed", type=int, default=0, help="root seed: user seeds, random policy, bootstrap (default: 0)"
    )
    parser.add_argument(
        "--out", help="run folder (default: runs/tune_threshold__<preset>__seed<seed>__<time>)"
    )
    parser.add_argument("--eval-users", type=int, default=2000, help="held-out users (default: 2000)")
    add_tuning_options(parser, DEFAULT_SHOW, DEFAULT_RETIRE, DEFAULT_MAX)
    parser.add_argument(
        "--families",
        nargs="+",
        default=list(FAMILIES),
        choices=FAMILIES,
        help="rules to tune and compare; the threshold rule always is (default: all)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Tune, evaluate, print the table and write the run folder; returns the exit status."""
    args = parse_args(argv)
    check_positive(args, "train_users", "eval_users", "batch", "n_boot")
    grid = tuning.TuningGrid.parse(args.grid[0], args.grid[1], args.max_unanswered)
    train = seed_scheme.train_users(args.seed, args.train_users)
    held_out = seed_scheme.eval_users(args.seed, args.eval_users)
    sim = resolve_simulator(args)
    study = ThresholdStudy(
        sim,
        train,
        held_out,
        families=[f for f in FAMILIES if f in {"threshold", *args.families}],
        grid=grid,
        seed=args.seed,
        batch=args.batch,
        n_boot=args.n_boot,
    )
    run_dir = make_run_dir(args.out, "tune_threshold", sim.label, args.seed)
    write_provenance(run_dir, study.record(), args.seed, "scripts.tune_threshold", argv)
    with progress() as bar:
        task = bar.add_task("grid search (training users)", total=study.steps())
        comparison = study.run(
            advance=lambda *_: bar.advance(task), phase=lambda text: bar.update(task, description=text)
        )
    write_comparison(run_dir, comparison)

    out = Console(width=max(150, console.width))  # results on stdout
    out.print(results_table(comparison))
    for line in result_lines(comparison):
        out.print(line)
    out.print(f"written to {run_dir}")
    return 0


cli = entry_point("decaygym-tune-threshold", main)


if __name__ == "__main__":
    cli()
