r"""Train a Stable-Baselines3 agent on the simulator: PPO, A2C, DQN, MaskablePPO or RecurrentPPO.

Examples:
    decaygym-train --algo ppo --preset default --seed 0 --out runs/ppo_default_s0
    decaygym-train --algo dqn --preset small --timesteps 200000 --out runs/dqn_small
    # killed? the same folder with --resume continues from the last checkpoint to the same total
    decaygym-train --resume --out runs/ppo_default_s0

Hyperparameters come from ``agents/hyperparams/<algo>.yml`` (RL Zoo's format, keyed by env id)
or ``--hyperparams FILE``; ``--timesteps`` and ``--n-envs`` override its ``n_timesteps`` and
``n_envs``. How the run trains and what ``--out`` holds: ``agents.training``; beside it this
command writes ``config.json`` (settings, SimConfig, hyperparameters, seeds, versions, commit).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from agents.checkpoints import latest_checkpoint
from agents.trained import ALGOS, load_hyperparams
from agents.training import (
    DEFAULT_EVAL_USERS,
    DEFAULT_TORCH_THREADS,
    TrainSettings,
    run_record,
    stored_settings,
    train,
)
from decay_model.errors import ConfigError
from scripts.common import (
    Simulator,
    add_simulator_options,
    entry_point,
    make_run_dir,
    progress,
    resolve_simulator,
    write_provenance,
)

#: options a resumed run takes from its folder (giving another value is an error)
RESUME_FIXED = (
    "algo",
    "preset",
    "sim",
    "seed",
    "timesteps",
    "n_envs",
    "eval_users",
    "eval_freq",
    "checkpoint_freq",
    "torch_threads",
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="decaygym-train", description=__doc__.splitlines()[0])
    parser.add_argument("--algo", help=f"algorithm: {', '.join(ALGOS)} (default: ppo)")
    add_simulator_options(parser)
    parser.add_argument("--seed", type=int, help="root seed: model and user seeds (default: 0)")
    parser.add_argument("--timesteps", type=int, help="training budget (default: the YAML's n_timesteps)")
    parser.add_argument("--out", help="run folder (default: runs/train__<algo>_<preset>__seed<seed>__<time>)")
    parser.add_argument("--n-envs", type=int, help="users stepped together (default: the YAML's n_envs)")
    parser.add_argument(
        "--eval-users", type=int, help=f"validation users for EvalCallback (default: {DEFAULT_EVAL_USERS})"
    )
    parser.add_argument(
        "--eval-freq", type=int, help="evaluate every N timesteps; 0: never (default: timesteps / 10)"
    )
    parser.add_argument(
        "--checkpoint-freq",
        type=int,
        help="checkpoint every N timesteps (default: --eval-freq, or timesteps / 10)",
    )
    parser.add_argument("--device", help="torch device (default: auto, CUDA when present)")
    parser.add_argument(
        "--torch-threads",
        type=int,
        help=f"torch CPU threads; results depend on it (default: {DEFAULT_TORCH_THREADS} on any machine)",
    )
    parser.add_argument(
        "--hyperparams", help="RL Zoo-format YAML to read instead of agents/hyperparams/<algo>.yml"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> TrainSettings:
    """Settings of a new run: the options, with the YAML's defaults."""
    algo = args.algo or "ppo"
    if algo not in ALGOS:
        raise ConfigError(f"unknown --algo {algo!r}; known: {', '.join(ALGOS)}")
    simulator = resolve_simulator(args)
    preset = simulator.preset
    params = load_hyperparams(algo, preset, args.hyperparams)
    timesteps = params.n_timesteps if args.timesteps is None else args.timesteps
    if timesteps < 1:
        raise ConfigError(f"--timesteps must be >= 1, got {timesteps}")
    eval_freq = max(1, timesteps // 10) if args.eval_freq is None else args.eval_freq
    checkpoint_freq = args.checkpoint_freq
    if checkpoint_freq is None:
        checkpoint_freq = eval_freq if eval_freq > 0 else max(1, timesteps // 10)
    return TrainSettings(
        algo=algo,
        preset=preset,
        sim=simulator.sim,
        seed=0 if args.seed is None else args.seed,
        timesteps=timesteps,
        n_envs=params.n_envs if args.n_envs is None else args.n_envs,
        eval_users=DEFAULT_EVAL_USERS if args.eval_users is None else args.eval_users,
        eval_freq=eval_freq,
        checkpoint_freq=checkpoint_freq,
        device=args.device or "auto",
        torch_threads=DEFAULT_TORCH_THREADS if args.torch_threads is None else args.torch_threads,
        hyperparams=params.raw,
        hyperparams_source=str(args.hyperparams) if args.hyperparams else f"agents/hyperparams/{algo}.yml",
    )


def settings_from_run(run_dir: Path, args: argparse.Namespace) -> TrainSettings:
    """Settings of the run to resume; an option that contradicts them is an error."""
    settings = stored_settings(run_dir, args.torch_threads)
    for option in RESUME_FIXED:
        given, kept = getattr(args, option), getattr(settings, option)
        if given is not None and given != kept:
            raise ConfigError(
                f"--resume: --{option.replace('_', '-')} {given} differs from the run's {kept}; "
                "a resumed run keeps its settings"
            )
    if args.device:
        settings = TrainSettings(**{**asdict(settings), "device": args.device})
    return settings


def start_run(settings: TrainSettings, simulator: Simulator, out: str | None, command: list[str]) -> Path:
    """A new run folder with its ``config.json``; ConfigError if ``out`` already holds a run."""
    if out and latest_checkpoint(Path(out)) is not None:
        raise ConfigError(f"{out} already holds a run; continue it with --resume or choose another --out")
    run_dir = make_run_dir(out, "train", f"{settings.algo}_{simulator.label}", settings.seed)
    config = run_record(settings, simulator.record(), simulator.config.to_dict())
    write_provenance(run_dir, config, settings.seed, "scripts.train", command)
    return run_dir


def main(argv: Sequence[str] | None = None) -> int:
    """Train or resume, write the run folder and print one result line; returns the exit status."""
    args = parse_args(argv)
    if args.resume:
        if not args.out:
            raise ConfigError("--resume needs --out DIR, the run folder to continue")
        run_dir = Path(args.out)
        if not run_dir.is_dir():
            raise ConfigError(f"--resume: no run folder at {run_dir}")
        settings = settings_from_run(run_dir, args)
    else:
        settings = settings_from_args(args)
        simulator = resolve_simulator(args)
        command = list(argv) if argv is not None else sys.argv[1:]
        run_dir = start_run(settings, simulator, args.out, command)
    result = train(settings, run_dir, resume=args.resume, progress=progress())
    ret = result.summary["final_model_on_validation_users"]["return"]
    print(
        f"{settings.algo} on {settings.preset}: {result.num_timesteps} timesteps; final model on "
        f"{settings.eval_users} validation users: return {ret['mean']:.3f} "
        f"[{ret['ci_low']:.3f}, {ret['ci_high']:.3f}]; written to {run_dir}"
    )
    return 0


cli = entry_point("decaygym-train", main)


if __name__ == "__main__":
    cli()
