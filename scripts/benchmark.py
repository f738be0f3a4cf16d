r"""The benchmark: tune the baselines, train agents over several seeds, evaluate everything, report.

Examples:
    python -m scripts.benchmark --level quick --out runs/benchmark_quick
    python -m scripts.benchmark --level full --preset default --algos ppo --out runs/benchmark_full
    python -m scripts.benchmark --level quick --policies myrules:Cutoff --out runs/benchmark_mine
    python -m scripts.benchmark --level full --engine ray --address auto --out runs/benchmark_full

The stages, what each writes into ``--out`` and the budgets of ``--level``: ``agents.benchmark``;
``--engine ray`` runs the training runs side by side as Ray tasks (``agents.engines``).
Running the same command again after a crash finishes the benchmark without redoing what is done.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, replace

from agents.benchmark import LEVELS, BenchmarkRun, Commands, Level, run_stages
from agents.engines import add_engine_options, engine_from_args
from agents.trained import ALGOS
from decay_model.errors import ConfigError
from scripts import evaluate as evaluate_script
from scripts import explain as explain_script
from scripts import train as train_script
from scripts.common import (
    add_simulator_options,
    console,
    entry_point,
    make_run_dir,
    progress,
    resolve_simulator,
    write_provenance,
)

#: the commands the stages run
COMMANDS = Commands(
    evaluate=evaluate_script.main,
    train=train_script.main,
    explain=explain_script.main,
    tunable_specs=evaluate_script.tunable_specs,
    spec_key=evaluate_script.spec_key,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="decaygym-benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--level", default="quick", help=f"budget: {', '.join(LEVELS)} (default: quick)")
    add_simulator_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="root seed (default: 0)")
    parser.add_argument("--algos", nargs="+", default=["ppo"], help=f"agents to train: {', '.join(ALGOS)}")
    parser.add_argument("--out", help="run folder (default: runs/benchmark__<preset>__seed<seed>__<time>)")
    parser.add_argument("--timesteps", type=int, help="override the level's training budget per seed")
    parser.add_argument("--train-seeds", type=int, help="override the level's number of training seeds")
    parser.add_argument("--eval-users", type=int, help="override the level's held-out users")
    parser.add_argument(
        "--policies",
        nargs="+",
        default=[],
        metavar="SPEC",
        help="more policies evaluated beside the baselines, agents and tree, as decaygym-evaluate "
        "--policies takes them: your own rules as module.path:Name or 'module.path:Name{\"k\": 1}' "
        "(tuned in stage 1 when they declare a tuning_grid), other baselines by name, model files",
    )
    parser.add_argument(
        "--finished-only",
        action="store_true",
        help="train nothing: report the training runs already finished in --out (the missing seeds are "
        "listed in summary.json), e.g. when the budget ran out before every seed finished",
    )
    parser.add_argument("--device", help="torch device of the training runs (default: auto)")
    add_engine_options(parser)
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> Level:
    """The level with overrides applied; ConfigError names a bad option."""
    if args.level not in LEVELS:
        raise ConfigError(f"unknown --level {args.level!r}; known: {', '.join(LEVELS)}")
    args.simulator = resolve_simulator(args)  # ConfigError names a bad preset or simulator folder
    args.preset = args.simulator.preset
    unknown = [a for a in args.algos if a not in ALGOS]
    if unknown:
        raise ConfigError(f"unknown --algos {', '.join(unknown)}; known: {', '.join(ALGOS)}")
    level = LEVELS[args.level]
    changes = {
        name: getattr(args, name)
        for name in ("timesteps", "train_seeds", "eval_users")
        if getattr(args, name) is not None
    }
    for name, value in changes.items():
        if value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    evaluate_script.check_specs(args.policies, args.simulator.config, args.seed)  # before any training
    return replace(level, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or finish) the benchmark; returns the exit status."""
    args = parse_args(argv)
    level = check_args(args)
    engine = engine_from_args(args, progress)  # a missing Ray fails before the run folder is made
    run_dir = make_run_dir(args.out, "benchmark", args.simulator.label, args.seed)
    write_provenance(
        run_dir,
        {
            "level": args.level,
            "budgets": asdict(level),
            "preset": args.preset,
            "simulator": args.simulator.record(),
            "algos": args.algos,
            "policies": args.policies,
        },
        args.seed,
        "scripts.benchmark",
        argv,
    )
    bench = BenchmarkRun(
        run_dir=run_dir,
        level=level,
        seed=args.seed,
        simulator=args.simulator,
        algos=tuple(args.algos),
        policies=tuple(args.policies),
        finished_only=args.finished_only,
        device=args.device,
    )
    header = {
        "level": args.level,
        "budgets": asdict(level),
        "preset": args.preset,
        "simulator": args.simulator.record(),
        "seed": args.seed,
    }
    console.print(f"[bold]benchmark[/bold] {args.level} on {args.simulator.label}: tuning the baselines")
    with engine:
        console.print(run_stages(bench, COMMANDS, engine, header, console.print))
    print(f"benchmark written to {run_dir}")
    return 0


cli = entry_point("decaygym-benchmark", main)


if __name__ == "__main__":
    cli()
