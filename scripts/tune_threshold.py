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
    grid_pairs,
    result_lines,
    results_table,
    write_comparison,
)
from agents.tuning import DEFAULT_MAX_UNANSWERED
from scripts.common import (
    add_simulator_options,
    check_positive,
    console,
    make_run_dir,
    parse_floats,
    parse_max_unanswered,
    progress,
    resolve_simulator,
    run_cli,
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
    parser.add_argument("--train-users", type=int, default=1000, help="users per grid point (default: 1000)")
    parser.add_argument("--eval-users", type=int, default=2000, help="held-out users (default: 2000)")
    parser.add_argument(
        "--grid",
        nargs=2,
        metavar=("SHOW_ABOVE", "RETIRE_BELOW"),
        default=[DEFAULT_SHOW, DEFAULT_RETIRE],
        help="comma lists of show_above and retire_below values; pairs with retire_below > show_above "
        f"are skipped (default: {DEFAULT_SHOW} {DEFAULT_RETIRE})",
    )
    parser.add_argument(
        "--max-unanswered",
        default=DEFAULT_MAX,
        help="threshold+ grid of unanswered exposures before retiring, 'none' = never "
        f"(default: {DEFAULT_MAX})",
    )
    parser.add_argument(
        "--families",
        nargs="+",
        default=list(FAMILIES),
        choices=FAMILIES,
        help="rules to tune and compare; the threshold rule always is (default: all)",
    )
    parser.add_argument("--batch", type=int, default=2048, help="users stepped together (default: 2048)")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Tune, evaluate, print the table and write the run folder; returns the exit status."""
    args = parse_args(argv)
    check_positive(args, "train_users", "eval_users", "batch", "n_boot")
    show = parse_floats(args.grid[0], "--grid SHOW_ABOVE")
    retire = parse_floats(args.grid[1], "--grid RETIRE_BELOW")
    grid_pairs(show, retire)  # an empty grid fails here, naming the option
    max_unanswered = parse_max_unanswered(args.max_unanswered)
    train = seed_scheme.train_users(args.seed, args.train_users)
    held_out = seed_scheme.eval_users(args.seed, args.eval_users)
    sim = resolve_simulator(args)
    study = ThresholdStudy(
        sim,
        train,
        held_out,
        families=[f for f in FAMILIES if f in {"threshold", *args.families}],
        grid=tuning.TuningGrid(tuple(show), tuple(retire), max_unanswered),
        seed=args.seed,
        batch=args.batch,
        n_boot=args.n_boot,
    )
    run_dir = make_run_dir(args.out, "tune_threshold", sim.label, args.seed)
    write_provenance(run_dir, study.record(), args.seed, ["scripts.tune_threshold", *(argv or [])])
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


def cli(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    run_cli("decaygym-tune-threshold", main, argv)


if __name__ == "__main__":
    cli()
