r"""Distil a policy into a shallow decision tree and print what it does as rules in words.

Examples:
    python -m scripts.explain --policy runs/ppo/model.zip --preset default --out runs/explain_ppo
    python -m scripts.explain --policy threshold_plus --preset small --tuned runs/eval/tuned.json

The policy is a trained model by path or a baseline by name (baselines that need tuned
thresholds read them from ``--tuned`` or are tuned first). The protocol and what ``--out``
holds: ``agents.distillation``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from agents import seeds as seed_scheme
from agents.distillation import (
    ViperSearch,
    distill,
    explanation_record,
    explanation_summary,
    result_lines,
    tuned_params,
    write_explanation,
)
from agents.policy_specs import check_specs, make_policy
from agents.tuning import load_tuned
from decay_model.errors import ConfigError
from scripts.common import (
    add_simulator_options,
    check_positive,
    check_tuned_simulator,
    entry_point,
    make_run_dir,
    progress,
    resolve_simulator,
    write_provenance,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="decaygym-explain", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--policy", required=True, metavar="NAME_OR_PATH", help="a trained model's path or a baseline name"
    )
    add_simulator_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="root seed of the users (default: 0)")
    parser.add_argument("--out", help="run folder (default: runs/explain__<preset>__seed<seed>__<time>)")
    parser.add_argument(
        "--train-users", type=int, default=500, help="users the tree is fitted on (default: 500)"
    )
    parser.add_argument(
        "--check-users",
        type=int,
        default=500,
        help="held-out (validation) users for the agreement (default: 500)",
    )
    parser.add_argument(
        "--max-depth",
        type=int,
        nargs="+",
        default=[3],
        help="depth of the tree; with --viper, depths to choose from",
    )
    parser.add_argument(
        "--viper",
        type=int,
        metavar="ITERATIONS",
        help="distil a trained agent by VIPER (agents.viper) with this many DAgger iterations, choosing "
        "the depth on --check-users other validation users (default: clone its decisions once)",
    )
    parser.add_argument(
        "--min-samples-leaf", type=int, default=50, help="fewest decisions per leaf (default: 50)"
    )
    parser.add_argument("--tuned", help="tuned parameters JSON, for the tuned baselines (default: tune here)")
    parser.add_argument("--batch", type=int, default=2048, help="users stepped together (default: 2048)")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Distil, print the rules and the agreement, write the run folder; returns the exit status."""
    args = parse_args(argv)
    check_positive(args, "train_users", "check_users", "min_samples_leaf", "batch", "n_boot")
    if min(args.max_depth) < 1 or (args.viper is None and len(args.max_depth) > 1):
        raise ConfigError("--max-depth: depths >= 1, and several only with --viper")
    if args.viper is not None and args.viper < 0:
        raise ConfigError(f"--viper must be >= 0 iterations, got {args.viper}")
    sim = resolve_simulator(args)
    args.preset = sim.preset  # a simulator folder keeps the default preset's sizes and env id
    check_specs([args.policy])
    train_range = seed_scheme.train_users(args.seed, args.train_users)
    check_range = seed_scheme.valid_users(args.seed, args.check_users)
    search = None
    if args.viper is not None:
        select = seed_scheme.search_users(args.seed, args.check_users)
        search = ViperSearch(tuple(args.max_depth), args.viper, select)
    tuned = None
    if args.tuned:
        data = load_tuned(args.tuned, args.preset)
        check_tuned_simulator(data, args.tuned, sim)
        tuned = data["tuned"]
    run_dir = make_run_dir(args.out, "explain", sim.label, args.seed)
    record = explanation_record(args.policy, sim, train_range, check_range)
    record.update(max_depth=args.max_depth, viper=args.viper, min_samples_leaf=args.min_samples_leaf)
    write_provenance(run_dir, {**record, "tuned": args.tuned}, args.seed, "scripts.explain", argv)
    with progress() as bar:
        task = bar.add_task("rolling out, fitting, checking", total=4 if search is None else search.steps + 3)
        tuned = tuned_params(args.policy, tuned, sim, train_range.seeds(), batch=args.batch, run_dir=run_dir)
        distilled = distill(
            lambda: make_policy(args.policy, args.preset, sim.config, tuned, args.seed),
            sim,
            train_range,
            check_range,
            label=args.policy,
            max_depth=args.max_depth[0],
            min_samples_leaf=args.min_samples_leaf,
            seed=args.seed,
            batch=args.batch,
            advance=lambda: bar.advance(task),
            viper_search=search,
        )

    summary = explanation_summary(distilled, preset=args.preset, n_boot=args.n_boot, seed=args.seed)
    print(write_explanation(run_dir, distilled, sim.config, summary))
    for line in result_lines(summary):
        print(line)
    print(f"written to {run_dir}")
    return 0


cli = entry_point("decaygym-explain", main)


if __name__ == "__main__":
    cli()
