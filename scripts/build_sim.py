r"""Build a simulator from your own behaviour log: one folder that every command accepts as ``--sim``.

Examples:
    decaygym-build-sim --logs UserBehavior_head.csv --source taobao --out runs/mysim
    decaygym-build-sim --out runs/synthetic_sim          # the built-in synthetic log
    decaygym-benchmark --sim runs/mysim
    decaygym-build-sim --logs events.parquet --neural --out runs/mysim_neural

The stages (decay model, activity, calibration, fidelity), how a rerun resumes and why a log
can stop the build: ``envs.build``; what the folder holds: ``envs.simulator_folder``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from decay_model.errors import command_line
from decay_model.exponential import DecayFitConfig
from decay_model.neural import PRESETS
from decay_model.synthetic import write_synthetic_log
from envs.build import STAGE_NAMES, BuildHooks, BuildOptions, build_simulator
from envs.calibration import KNOBS
from envs.fidelity import FIDELITY_SPLIT
from envs.fidelity_report import write_table_and_plots
from scripts.calibrate import add_grid_options, knob_attr
from scripts.common import (
    add_log_options,
    add_split_options,
    console,
    entry_point,
    progress,
    split_config,
    versions,
)

PROG = "decaygym-build-sim"
SYNTHETIC_LOG = "synthetic_log.csv"
"""The built-in synthetic log's file inside the folder, when no --logs is given."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_log_options(
        parser, f"the built-in synthetic log of --seed, written into the folder as {SYNTHETIC_LOG}"
    )
    parser.add_argument("--out", metavar="DIR", required=True, help="the simulator folder (e.g. runs/mysim)")
    parser.add_argument("--neural", action="store_true", help="also fit NeuralDecay; users are drawn from it")
    parser.add_argument(
        "--neural-preset", choices=list(PRESETS), default="tiny", help="NeuralDecay size (default: tiny)"
    )
    parser.add_argument("--epochs", type=int, help="NeuralDecay's maximum epochs (default: the preset's)")
    parser.add_argument("--device", help="torch device of the neural fit (default: cuda when present)")
    parser.add_argument(
        "--artifact",
        metavar="DIR",
        help="a decay artifact already fitted on this log (decaygym-fit-decay --out): users are drawn "
        "from it, no neural model is fitted",
    )
    add_split_options(parser, FIDELITY_SPLIT, test="test period of the fidelity report")
    parser.add_argument(
        "--session-gap-h", type=float, default=0.5, help="inactivity that ends a visit, hours (default 0.5)"
    )
    parser.add_argument(
        "--quick-fit",
        action="store_true",
        help="fit the decay model coarsely (30 iterations, no shrinkage tuning): for smoke tests only",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the user split and the report")
    parser.add_argument(
        "--sim-seeds", type=int, nargs="+", default=[0, 1], help="simulation seeds per calibration score"
    )
    parser.add_argument("--folds", type=int, default=2, help="calibration user groups (default: 2)")
    add_grid_options(parser, "calibration values")
    args = parser.parse_args(argv)
    if args.logs is not None and not Path(args.logs).is_file():
        parser.error(f"--logs {args.logs}: no such file")
    if args.neural and args.artifact:
        parser.error("--neural and --artifact exclude each other: fit a neural model, or supply one")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Build (or resume) the simulator folder and print its fidelity table."""
    args = parse_args(argv)
    grid = {knob: tuple(getattr(args, knob_attr(knob))) for knob in KNOBS}
    options = BuildOptions(
        source=args.source,
        decay_fit=DecayFitConfig(max_iter=30, shrinkage_grid=()) if args.quick_fit else DecayFitConfig(),
        neural=args.neural,
        artifact=args.artifact,
        neural_preset=args.neural_preset,
        epochs=args.epochs,
        device=args.device,
        task=split_config(args),
        session_gap_h=args.session_gap_h,
        grid=grid,
        sim_seeds=tuple(args.sim_seeds),
        folds=args.folds,
        seed=args.seed,
    )
    stages = [s for s in STAGE_NAMES if (s != "neural" or args.neural) and (s != "supplied" or args.artifact)]
    points = 1
    for values in grid.values():
        points *= len(values)
    command = command_line(PROG, argv)
    provenance: dict[str, object] = {"command": command, "versions": versions()}
    logs = args.logs
    if logs is None:
        logs = Path(args.out) / SYNTHETIC_LOG
        provenance["synthetic"] = write_synthetic_log(logs, seed=args.seed).card()
    started = time.perf_counter()
    with progress() as bar:
        overall = bar.add_task("building the simulator", total=len(stages))
        grid_task = bar.add_task("calibration grid", total=points, visible=False)

        def on_stage(stage: str, state: str) -> None:
            if state == "running":
                bar.update(overall, description=f"{stage}: fitting")
                if stage == "calibration":
                    bar.update(grid_task, visible=True)
            else:
                bar.update(overall, advance=1, description=f"{stage}: {state}")
                if stage == "calibration" and state == "reused":
                    bar.update(grid_task, completed=points, visible=True)

        built = build_simulator(
            logs,
            args.out,
            options,
            provenance=provenance,
            hooks=BuildHooks(
                on_stage=on_stage,
                on_point=lambda: bar.update(grid_task, advance=1),
                on_fidelity=write_table_and_plots,
            ),
        )
    elapsed = time.perf_counter() - started
    print((built.folder / "fidelity" / "table.md").read_text(), end="")
    reused = f" (reused: {', '.join(built.reused)})" if built.reused else ""
    console.print(
        f"simulator folder: {built.folder} (fingerprint {built.card['fingerprint'][:12]}) "
        f"built in {elapsed:.0f} s{reused}"
    )
    return 0


cli = entry_point(PROG, main)


if __name__ == "__main__":
    cli()
