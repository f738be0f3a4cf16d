r"""Evaluate policies (baselines, trained models, rules of one's own) on the same held-out simulated users.

Examples:
    python -m scripts.evaluate --preset default --policies threshold threshold_plus greedy random \
        always_show oracle --eval-users 2000 --out runs/eval_default
    python -m scripts.evaluate --preset default --policies runs/ppo/model.zip runs/explain_ppo/tree.json \
        --tuned runs/eval_default/tuned.json --out runs/eval_ppo
    python -m scripts.evaluate --preset default --policies threshold_plus myrules:Cutoff \
        'myrules:Cutoff{"cutoff": 0.3}' --out runs/eval_mine

The protocol (which users, what is tuned first, how your own rules are named) and what ``--out``
holds: ``agents.comparison``. Beside it, ``config.json`` records the provenance.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from agents import seeds as seed_scheme
from agents.comparison import (
    StartTask,
    build_policies,
    compare,
    evaluate_policies,
    evaluation_record,
    evaluation_specs,
    read_tuned,
    tune_baselines,
)
from agents.comparison_report import build_summary, report_title, results_table, tuned_line, write_report
from agents.policy_specs import check_specs, spec_key, tunable_specs
from agents.tuning import (
    BASELINES,
    DEFAULT_MAX_UNANSWERED,
    DEFAULT_RETIRE,
    DEFAULT_SHOW,
    TUNED_FAMILIES,
    TuningGrid,
    evaluation_seeds,
    tuning_seeds,
)
from scripts.common import (
    add_simulator_options,
    add_tuning_options,
    check_positive,
    console,
    entry_point,
    make_run_dir,
    progress,
    progress_tasks,
    resolve_simulator,
    write_provenance,
)

#: decaygym-benchmark checks, keys and tunes its policy specs through this module, as evaluate does
__all__ = ["check_specs", "cli", "get_tuned", "main", "parse_args", "spec_key", "tunable_specs"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="decaygym-evaluate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--policies",
        nargs="+",
        default=["threshold", "threshold_plus", "best_rule", "greedy", "random", "always_show", "oracle"],
        metavar="SPEC",
        help=f"baselines ({', '.join(BASELINES)}), trained models or trees (tree.json) by path, your own "
        "rules as module.path:Name or 'module.path:Name{\"k\": 1}' (docs/policies.md); threshold and "
        "oracle are added",
    )
    add_simulator_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="root seed: users, random policy, bootstrap")
    parser.add_argument("--eval-users", type=int, default=2000, help="held-out users (default: 2000)")
    parser.add_argument("--out", help="run folder (default: runs/evaluate__<preset>__seed<seed>__<time>)")
    parser.add_argument(
        "--tuned", help="tuned parameters JSON (tuned.json of an earlier run); default: tune here first"
    )
    add_tuning_options(
        parser,
        ",".join(map(str, DEFAULT_SHOW)),
        ",".join(map(str, DEFAULT_RETIRE)),
        ",".join("none" if k is None else str(k) for k in DEFAULT_MAX_UNANSWERED),
    )
    return parser.parse_args(argv)


def get_tuned(
    args: argparse.Namespace, needed: list[str], custom: list[str], run_dir: Path, start: StartTask
) -> tuple[dict[str, Any], str]:
    """The tuned parameters and where they come from: read from ``--tuned`` or tuned now and saved in the run.

    ``needed`` are the baseline families, ``custom`` the tunable custom specs (canonical); they
    go to the ``tuned`` and ``custom`` sections of tuned.json.
    """
    if args.tuned:
        return read_tuned(args.tuned, args.simulator, needed, custom), str(args.tuned)
    grid = TuningGrid.parse(args.grid[0], args.grid[1], args.max_unanswered)
    seeds = tuning_seeds(args.seed, args.train_users)
    data = tune_baselines(
        args.simulator,
        needed,
        custom,
        grid,
        seeds,
        seed=args.seed,
        batch=args.batch,
        run_dir=run_dir,
        start=start,
    )
    return data, "tuned in this run (tuned.json, tuning_grid.csv)"


def main(argv: Sequence[str] | None = None) -> int:
    """Tune (or read) the baselines, evaluate every policy, write the run folder; returns the exit status."""
    args = parse_args(argv)
    check_positive(args, "eval_users", "train_users", "batch", "n_boot")
    sim = args.simulator = resolve_simulator(args)
    args.preset = sim.preset  # a simulator folder keeps the default preset's sizes and env id
    check_specs(args.policies, sim.config, args.seed)
    specs, added = evaluation_specs(args.policies)
    needed = [f for f in TUNED_FAMILIES if f in specs]
    custom = tunable_specs(specs)
    eval_seeds = evaluation_seeds(args.seed, args.eval_users)
    train_range = seed_scheme.train_users(args.seed, args.train_users)
    if args.tuned:
        read_tuned(args.tuned, sim, needed, custom)  # a bad file fails before any work
    run_dir = make_run_dir(args.out, "evaluate", sim.label, args.seed)
    record = evaluation_record(
        sim, specs, added, args.seed, args.eval_users, None if args.tuned else train_range, args.tuned
    )
    grid = None if args.tuned else {"show_above": args.grid[0], "retire_below": args.grid[1]}
    record.update(
        grid=grid,
        max_unanswered=None if args.tuned else args.max_unanswered,
        batch=args.batch,
        n_boot=args.n_boot,
    )
    write_provenance(run_dir, record, args.seed, "scripts.evaluate", argv)

    with progress() as bar:
        start = progress_tasks(bar)
        tuned_data, tuned_source = get_tuned(args, needed, custom, run_dir, start)
        policies, labels = build_policies(specs, sim, tuned_data, args.seed)
        records = evaluate_policies(policies, sim, eval_seeds, batch=args.batch, run_dir=run_dir, start=start)

    report = compare(records, n_boot=args.n_boot, seed=args.seed)
    title = report_title(sim, args.eval_users, args.seed)
    summary = build_summary(
        report,
        sim=sim,
        seed=args.seed,
        eval_users=args.eval_users,
        n_boot=args.n_boot,
        tuned=tuned_data,
        tuned_source=tuned_source,
        policies=policies,
        labels=labels,
    )
    write_report(run_dir, report, records, title, summary)

    Console(width=max(190, console.width)).print(results_table(report, title))
    Console(width=max(150, console.width)).print(f"tuned ({tuned_source}): {tuned_line(tuned_data, specs)}")
    print(f"written to {run_dir}")
    return 0


cli = entry_point("decaygym-evaluate", main)


if __name__ == "__main__":
    cli()
