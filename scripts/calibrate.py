r"""Choose the simulator's engagement constants on some users and check them on others.

Examples:
    python -m scripts.calibrate                                   # built-in synthetic log
    python -m scripts.calibrate --logs UserBehavior_head.csv --source taobao --out runs/calibrate

The grid search, its cross-validation over users and the noise floor: ``envs.calibration``;
what the run folder holds: ``envs.calibration_report``. The command chooses; it changes no
default: pass the chosen values as config overrides (``SimConfig.replace``) to use them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np

from decay_model.atomic import atomic_write_bytes, atomic_write_json
from decay_model.text_tables import print_tables
from envs.calibration import DEFAULT_GRID, KNOBS, calibrate
from envs.calibration_report import markdown, plot_score_map, table_sections
from scripts.common import entry_point, log_run, progress
from scripts.fidelity import add_cohort_options, check_cohort_options, cohort_configs, cohort_record

PROG = "decaygym-calibrate"
FLAGS = {"engagement_scale": "--scale", "engagement_gap_power": "--gap-power", "engagement_lift": "--lift"}


def add_grid_options(parser: argparse.ArgumentParser, what: str = "values") -> None:
    """``--scale``, ``--gap-power``, ``--lift``: the grid of the engagement constants."""
    for knob, flag in FLAGS.items():
        parser.add_argument(
            flag,
            type=float,
            nargs="+",
            default=list(DEFAULT_GRID[knob]),
            help=f"{what} of {knob} (default: {' '.join(map(str, DEFAULT_GRID[knob]))})",
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_cohort_options(parser)
    parser.add_argument("--out", metavar="DIR", help="run folder (default: runs/calibrate__<data>__...)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the user split (and the synthetic log)")
    parser.add_argument(
        "--sim-seeds", type=int, nargs="+", default=[0, 1], help="simulation seeds per score (default: 0 1)"
    )
    parser.add_argument("--folds", type=int, default=2, help="user groups k (default: 2)")
    add_grid_options(parser)
    parser.add_argument("--top", type=int, default=10, help="grid points shown in the table (default: 10)")
    args = parser.parse_args(argv)
    check_cohort_options(parser, args)
    if args.folds < 2:
        parser.error(f"--folds must be at least 2, got {args.folds}")
    for knob, flag in FLAGS.items():
        values = getattr(args, knob_attr(knob))
        top = 1.0 if knob == "engagement_lift" else math.inf
        if not all(math.isfinite(v) and 0 <= v <= top for v in values):
            parser.error(f"{flag}: values must be finite and >= 0 (the lift at most 1), got {values}")
    return args


def knob_attr(knob: str) -> str:
    """The argparse attribute of a knob's flag."""
    return FLAGS[knob].lstrip("-").replace("-", "_")


def main(argv: Sequence[str] | None = None) -> int:
    """Load, cross-validate the grid, write the run folder and print the tables."""
    args = parse_args(argv)
    base, task_config = cohort_configs(args)
    grid = {knob: tuple(getattr(args, knob_attr(knob))) for knob in KNOBS}
    total = int(np.prod([len(v) for v in grid.values()]))
    args.sim_seeds = list(args.sim_seeds)
    with progress() as bar:
        task = bar.add_task("loading the log", total=total)
        log, data_info, run_dir = log_run(args, argv, "calibrate", cohort_record(args, base, task_config))
        bar.update(task, description="fitting the decay model, then simulating the grid")
        result = calibrate(
            log,
            base=base,
            grid=grid,
            seeds=args.sim_seeds,
            task_config=task_config,
            folds=args.folds,
            split_seed=args.seed,
            gap_h=args.session_gap_h,
            on_point=lambda _: bar.update(task, advance=1),
        )
        chosen_cv, base_cv = result.cross_validated()
        atomic_write_json(run_dir / "calibration.json", {**result.to_dict(), "data": data_info})
        sections = table_sections(result, args.top)
        atomic_write_bytes(run_dir / "table.md", (markdown(sections) + "\n").encode())
        plot_score_map(run_dir / "score_map.png", result)
    chosen = ", ".join(f"{name}={value:g}" for name, value in result.choice.values.items())
    kept = " (the shipped constants: the grid's choices did no better on held-out groups)"
    why = kept if result.kept_base else ""
    print_tables(
        sections,
        [
            f"cross-validated score (held-out groups): grid's choices {chosen_cv:.3f}, shipped {base_cv:.3f}",
            f"chosen: {chosen}{why}",
            f"run folder: {run_dir}",
        ],
    )
    return 0


cli = entry_point(PROG, main)


if __name__ == "__main__":
    cli()
