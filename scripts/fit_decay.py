r"""Fit decay models on a behaviour log and compare them on the evaluation task.

Examples:
    python -m scripts.fit_decay                                  # built-in synthetic log
    python -m scripts.fit_decay --logs UserBehavior_head.csv --source taobao --out runs/taobao

What the run folder holds: ``decay_model.comparison_report``. NeuralDecay's options:
``--neural-preset``, ``--device``, ``--epochs``, ``--resume`` (its per-epoch checkpoint is
``checkpoints/neural/`` in the run folder). ``torchrun --standalone --nproc_per_node 2 -m
scripts.fit_decay --model neural`` trains it on two processes (GPUs); rank 0 writes the folder.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from decay_model import MODELS, TaskConfig
from decay_model.artifact import fit_and_save
from decay_model.comparison_report import (
    REPORTED_SPLITS,
    print_table,
    write_report,
)
from decay_model.errors import ConfigError, command_line
from decay_model.neural import PRESETS, NeuralDecay, preset
from decay_model.neural.distributed import launched_rank, launched_world_size
from decay_model.synthetic import load_log_or_synthetic
from decay_model.task import EvalTask
from scripts.common import (
    add_log_options,
    add_split_options,
    console,
    entry_point,
    log_run,
    progress,
    split_config,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(
        prog="decaygym-fit-decay",
        description="Fit interest-decay models on a behaviour log and print their comparison table.",
    )
    add_log_options(parser, "the built-in synthetic log with known decay rates")
    parser.add_argument(
        "--item-categories", metavar="PATH", help="item -> category table, for logs without categories"
    )
    parser.add_argument(
        "--model",
        default="all",
        choices=["all", *MODELS],
        help="which model to fit (default: all, for the table)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="run folder (default: runs/fit_decay__<data>__seed<seed>__<time>)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic log and of NeuralDecay (default: 0)"
    )
    parser.add_argument(
        "--horizon-hours", type=float, default=24.0, help="prediction horizon h (default: 24)"
    )
    parser.add_argument("--step-hours", type=float, default=6.0, help="spacing of cutoffs (default: 6)")
    add_split_options(parser, TaskConfig())
    neural = parser.add_argument_group("neural", "options of the NeuralDecay model")
    neural.add_argument(
        "--neural-preset", choices=list(PRESETS), default="tiny", help="model size (default: tiny)"
    )
    neural.add_argument("--device", help="torch device, e.g. cpu or cuda (default: cuda when present)")
    neural.add_argument("--epochs", type=int, help="maximum epochs (default: the preset's)")
    neural.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in the run folder (--out)"
    )
    return parser.parse_args(argv)


def build_model(name: str, args: argparse.Namespace, run_dir: Path | None, bar: Any) -> Any:
    """An unfitted model; NeuralDecay gets its preset, seed, device and checkpoint folder (if any)."""
    if name != "neural":
        return MODELS[name]()
    overrides = {"seed": args.seed, **({"epochs": args.epochs} if args.epochs else {})}
    return NeuralDecay(
        preset(args.neural_preset, **overrides),
        device=args.device,
        checkpoint_dir=run_dir / "checkpoints" / name if run_dir else None,
        resume=args.resume,
        show_progress=bar,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Fit, evaluate, write the run folder and print the table."""
    args = parse_args(argv)
    task_config = split_config(args, horizon_hours=args.horizon_hours, step_hours=args.step_hours)
    names = list(MODELS) if args.model == "all" else [args.model]
    if launched_world_size() > 1 and names != ["neural"]:
        raise ConfigError("under torchrun only NeuralDecay trains on several processes: use --model neural")
    if launched_rank() > 0:  # torchrun's other processes train their share; rank 0 writes everything
        log = load_log_or_synthetic(args.logs, args.source, args.seed, args.item_categories)[0]
        build_model("neural", args, None, False).fit(EvalTask(log, task_config))
        return 0
    with progress() as bar:
        step = bar.add_task("loading the log", total=len(names) + 3)
        log, _, run_dir = log_run(args, argv, "fit_decay", {"task": task_config.to_dict()})
        bar.update(step, advance=1, description="building the evaluation task")
        task = EvalTask(log, task_config)
        task.examples("train"), task.examples("valid"), task.examples("test")
        bar.update(step, advance=1)
        fitted: dict[str, Any] = {}
        metrics: dict[str, dict[str, dict[str, float | None]]] = {}
        test_predictions: dict[str, np.ndarray] = {}
        encoded: dict[str, Any] = {}
        for name in names:
            bar.update(step, description=f"fitting {name}")
            model, metrics[name], predictions, encoded[name] = fit_and_save(
                build_model(name, args, run_dir, bar),
                task,
                run_dir / "artifacts" / name,
                log=log,
                periods=REPORTED_SPLITS,
                extra={"command": command_line("python -m scripts.fit_decay", argv)},
            )
            fitted[name] = model
            test_predictions[name] = predictions["test"]
            bar.update(step, advance=1)
        bar.update(step, description="writing tables and plots")
        write_report(run_dir, metrics, task, log, fitted, test_predictions, encoded)
        bar.update(step, advance=1, description="done")
    print_table(metrics)
    console.print(f"run folder: {run_dir}")
    return 0


cli = entry_point("decaygym-fit-decay", main)


if __name__ == "__main__":
    cli()
