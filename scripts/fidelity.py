r"""The fidelity report: simulate a log's test-period users and compare with reality.

Examples:
    python -m scripts.fidelity                                   # built-in synthetic log
    python -m scripts.fidelity --logs UserBehavior_head.csv --source taobao --out runs/fidelity

How users are encoded, simulated and compared: ``envs.fidelity``; what the run folder holds:
``envs.fidelity_report``. The command measures; it calibrates nothing. The default split keeps
the last 4 days as the test period, so that the 72 h re-engagement point has engagements to
measure; a shorter ``--test-days`` leaves the points past it empty (n/a).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Any

from decay_model.atomic import atomic_write_json
from decay_model.exponential import DecayFitConfig
from decay_model.task import TaskConfig
from envs.config import TAOBAO_REPEAT_PER_VISIT, SimConfig
from envs.fidelity import FIDELITY_SPLIT, POLICIES, fidelity_report
from envs.fidelity_report import print_table, write_table_and_plots
from scripts.common import (
    add_log_options,
    add_simulator_options,
    add_split_options,
    console,
    entry_point,
    log_run,
    progress,
    resolve_simulator,
    split_config,
)

PROG = "decaygym-fidelity"


def add_cohort_options(parser: argparse.ArgumentParser) -> None:
    """Options shared with ``decaygym-calibrate``: the log, the simulator and how the log is split."""
    add_log_options(parser)
    add_simulator_options(parser)
    parser.add_argument(
        "--engagement-budget",
        type=float,
        default=None,
        metavar="B",
        help="budget mode (SimConfig.engagement_budget): each real user re-engages their own number of "
        f"tracked categories per visit, B for users without one ({TAOBAO_REPEAT_PER_VISIT} is the Taobao "
        "mean user); 0 = off (default: the preset's)",
    )
    parser.add_argument(
        "--session-gap-h", type=float, default=0.5, help="inactivity that ends a visit, hours (default 0.5)"
    )
    add_split_options(parser, FIDELITY_SPLIT, test="test period compared")


def check_cohort_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``parser.error`` on a bad shared option."""
    if not (math.isfinite(args.session_gap_h) and args.session_gap_h > 0):
        parser.error(f"--session-gap-h must be a positive number of hours, got {args.session_gap_h}")


def cohort_configs(args: argparse.Namespace) -> tuple[SimConfig, TaskConfig]:
    """The simulator's config (the preset, budget mode as asked) and the split, from the shared options."""
    config = resolve_simulator(args).config
    if args.engagement_budget is not None:
        config = config.replace(engagement_budget=args.engagement_budget)
    return config, split_config(args)


def cohort_record(args: argparse.Namespace, config: SimConfig, task_config: TaskConfig) -> dict[str, Any]:
    """What a cohort command's ``config.json`` records beside its options: split and simulator."""
    return {
        "task": task_config.to_dict(),
        "sim_config": config.to_dict(),
        "simulator": resolve_simulator(args).record(),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Simulate a log's test-period users from their histories and compare with reality.",
    )
    add_cohort_options(parser)
    parser.add_argument(
        "--out", metavar="DIR", help="run folder (default: runs/fidelity__<data>__seed<seed>__<time>)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the simulated users (and of the synthetic log)"
    )
    parser.add_argument(
        "--policy",
        choices=list(POLICIES),
        default="always_show",
        help="fixed policy of the simulated side (default: always_show; refresh retires what was shown)",
    )
    parser.add_argument(
        "--reencode-every",
        type=int,
        default=0,
        help="re-encode the simulated users with the shipped neural decay model every this many visits "
        "(dynamic adjustment; default: 0 = never)",
    )
    parser.add_argument(
        "--quick-fit",
        action="store_true",
        help="fit the decay model coarsely (30 iterations, no shrinkage tuning): for smoke tests only",
    )
    args = parser.parse_args(argv)
    check_cohort_options(parser, args)
    if args.reencode_every < 0:
        parser.error(f"--reencode-every must be >= 0, got {args.reencode_every}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Fit, simulate, compare, write the run folder and print the table."""
    args = parse_args(argv)
    config, task_config = cohort_configs(args)
    if args.reencode_every:
        config = config.replace(reencode_every=args.reencode_every)
    fit_config = DecayFitConfig(max_iter=30, shrinkage_grid=()) if args.quick_fit else None
    with progress() as bar:
        step = bar.add_task("loading the log", total=3)
        log, data_info, run_dir = log_run(args, argv, "fidelity", cohort_record(args, config, task_config))
        bar.update(step, advance=1, description="fitting the decay model and simulating")
        report = fidelity_report(
            log,
            config=config,
            seed=args.seed,
            task_config=task_config,
            gap_h=args.session_gap_h,
            fit_config=fit_config,
            policy=args.policy,
        )
        bar.update(step, advance=1, description="writing the report")
        atomic_write_json(
            run_dir / "fidelity.json",
            {
                **report.to_dict(),
                "data": data_info,
                "decay_model": "exponential",
                "quick_fit": args.quick_fit,
            },
        )
        write_table_and_plots(report, run_dir)
        bar.update(step, advance=1, description="done")
    print_table(report)
    console.print(f"run folder: {run_dir}")
    return 0


cli = entry_point(PROG, main)


if __name__ == "__main__":
    cli()
