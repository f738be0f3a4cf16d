r"""Click-through by position in the Open Bandit Dataset, beside the simulator's position-bias prior.

Examples:
    python -m scripts.position_bias                                   # both OBD policies beside ../shared
    python -m scripts.position_bias --files random/all/all.csv --interval clopper-pearson --out runs/pb

The simulator multiplies the click chance by the prior 1/log2(1 + position); whether the OBD
samples can tell it from no position effect: ``envs.position_bias``; what the run folder holds:
``envs.position_bias_report``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from decay_model.atomic import atomic_write_bytes, atomic_write_json
from envs.position_bias import INTERVALS, analyse, fingerprint
from envs.position_bias_report import format_markdown, plot_ctr, print_table, report_json
from scripts.common import console, entry_point, make_run_dir, write_provenance

PROG = "decaygym-position-bias"
DEFAULT_DATA = "../shared/data/obd_zozotown_small"
DEFAULT_FILES = ("random/all/all.csv", "bts/all/all.csv")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="CTR by position in OBD logs with binomial intervals, beside the 1/log2(1+p) prior.",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=DEFAULT_DATA,
        help=f"OBD folder holding {' and '.join(DEFAULT_FILES)} (default: {DEFAULT_DATA})",
    )
    parser.add_argument(
        "--files",
        metavar="PATH",
        nargs="+",
        help="OBD all.csv files to read instead (the policy is named by the folder two levels up)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="run folder (default: runs/position_bias__obd__seed0__<time>)"
    )
    parser.add_argument(
        "--interval",
        choices=sorted(INTERVALS),
        default="wilson",
        help="binomial interval of each CTR (default: wilson)",
    )
    parser.add_argument("--level", type=float, default=0.95, help="confidence level (default: 0.95)")
    args = parser.parse_args(argv)
    if not 0.0 < args.level < 1.0:
        parser.error(f"--level must lie strictly between 0 and 1, got {args.level}")
    return args


def input_files(args: argparse.Namespace) -> list[Path]:
    """The files named by ``--files``, else the two default policies under ``--data``."""
    if args.files:
        return [Path(p) for p in args.files]
    return [Path(args.data) / name for name in DEFAULT_FILES]


def main(argv: Sequence[str] | None = None) -> int:
    """Read, analyse, write the run folder and print the tables."""
    args = parse_args(argv)
    files = input_files(args)
    table, summaries = analyse(files, args.level, args.interval)
    run_dir = make_run_dir(args.out, "position_bias", "obd", 0)
    write_provenance(
        run_dir,
        {**vars(args), "files": [{"path": str(p), "sha256": fingerprint(p)} for p in files]},
        0,
        "scripts.position_bias",
        argv,
    )
    atomic_write_bytes(run_dir / "position_ctr.csv", table.to_csv(index=False).encode())
    atomic_write_json(run_dir / "position_ctr.json", report_json(table, summaries, args.level, args.interval))
    atomic_write_bytes(
        run_dir / "position_ctr.md", format_markdown(table, summaries, args.level, args.interval).encode()
    )
    plot_ctr(run_dir / "position_ctr.png", table, summaries, args.level)
    print_table(table, summaries, args.level, args.interval)
    console.print(f"run folder: {run_dir}")
    return 0


cli = entry_point(PROG, main)


if __name__ == "__main__":
    cli()
