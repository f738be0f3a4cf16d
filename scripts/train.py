r"""Train a Stable-Baselines3 agent on the simulator: PPO, A2C, DQN, MaskablePPO or RecurrentPPO.

Examples:
    decaygym-train --algo ppo --preset default --seed 0 --out runs/ppo_default_s0
    decaygym-train --algo dqn --preset small --timesteps 200000 --out runs/dqn_small
    # killed? the same folder with --resume continues from the last checkpoint to the same total
    decaygym-train --resume --out runs/ppo_default_s0

Hyperparameters come from ``agents/hyperparams/<algo>.yml`` (RL Zoo's format, keyed by env id;
``--hyperparams FILE`` reads another file of the same format); ``--timesteps`` and ``--n-envs``
override its ``n_timesteps`` and ``n_envs``. PPO, A2C, MaskablePPO and RecurrentPPO train on
``InterestDecayVectorEnv`` through the SB3 adapter (``n_envs`` users stepped together); DQN
decides one candidate at a time (``agents.wrappers.OneAtATimeVecEnv``, K decisions per visit,
so its timesteps count decisions). Users come from ``agents.seeds``: training users from the
run's training range, validation users for ``EvalCallback`` from another range; the held-out
evaluation users of the evaluate and benchmark scripts are a third range that training never
sees.

The run folder (``--out``): ``config.json`` (settings, SimConfig, hyperparameters, seeds,
package versions, git commit, command), ``seeds.json`` (the user-seed ranges and model seed),
``model.zip`` (final model; ``vecnormalize.pkl`` beside it if the YAML normalises),
``best_model.zip`` and ``eval/evaluations.npz`` (``EvalCallback`` on the validation users),
``tb/`` (TensorBoard: ``tensorboard --logdir DIR/tb``), ``checkpoints/`` (the last checkpoint,
written to a new folder, then pointed to by ``checkpoints/latest.json`` with an atomic write,
so a kill never leaves a half checkpoint), and ``summary.json`` (the final model on the
validation users: mean and 95 % bootstrap interval per metric). ``agents.trained.load_policy``
loads the run folder as a ``Policy``.

Checkpoints are taken between rollouts and hold everything training depends on: the model
and its optimiser, DQN's replay buffer, the simulated users in mid-episode, the VecMonitor and
VecNormalize statistics, the random generators and the callbacks' counters. So ``--resume``
continues exactly where the checkpoint was taken, to the run's total timesteps: on CPU, with
the same torch version and thread count, it ends with the same model as an uninterrupted run
(GPU kernels need not be bitwise deterministic).
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from rich.progress import Progress, TaskID
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

import envs
from agents import seeds
from agents.evaluation import evaluate, summarize
from agents.sb3_vec_env import InterestDecaySB3VecEnv
from agents.trained import (
    ALGOS,
    MODEL_FILE,
    RUN_CONFIG_FILE,
    VECNORMALIZE_FILE,
    Hyperparams,
    env_id,
    hyperparams_from_entry,
    load_hyperparams,
    load_policy,
)
from agents.wrappers import OneAtATimeVecEnv
from decay_model.atomic import atomic_write_bytes, atomic_write_json
from decay_model.errors import ConfigError
from envs.simulator_folder import load_sim
from scripts.common import (
    Simulator,
    add_simulator_options,
    make_run_dir,
    progress,
    resolve_simulator,
    run_cli,
    versions,
    write_provenance,
)

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
REPLAY_FILE = "replay_buffer.pkl"
STATE_FILE = "state.pkl"
COUNTERS_FILE = "counters.json"
MONITOR_FIELDS = ("episode_returns", "episode_lengths", "episode_count")
SEEDS_FILE = "seeds.json"
SUMMARY_FILE = "summary.json"
DEFAULT_EVAL_USERS = 256
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
)
_EXTRA_PACKAGES = ("sb3-contrib", "tensorboard", "rl-zoo3", "optuna")


@dataclass(frozen=True)
class TrainSettings:
    """Everything a training run depends on; stored in ``config.json`` and reused by ``--resume``."""

    algo: str
    """Key of ``agents.trained.ALGOS``."""
    preset: str
    """Simulator preset (``envs.PRESETS``)."""
    seed: int
    """Root seed: model seed and user-seed ranges (``agents.seeds``)."""
    timesteps: int
    """Total training budget in env steps (decisions for DQN)."""
    n_envs: int
    """Users stepped together."""
    eval_users: int
    """Validation users of ``EvalCallback`` (one episode each)."""
    eval_freq: int
    """Evaluate every this many timesteps; 0: no intermediate evaluation."""
    checkpoint_freq: int
    """Checkpoint every this many timesteps (and at the end)."""
    device: str
    """Torch device (``auto``: CUDA when present)."""
    hyperparams: dict[str, Any]
    """The YAML entry the run uses, as read (so a resume does not depend on the file)."""
    hyperparams_source: str
    """Where the entry came from."""
    sim: str | None = None
    """Simulator folder (``decaygym-build-sim``) the run trains on instead of the preset's config
    (it keeps the ``default`` preset's sizes and hyperparameters); None: the preset."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ConfigError(f"unknown --algo {self.algo!r}; known: {', '.join(ALGOS)}")
        envs.get_preset(self.preset)  # ConfigError names the known presets
        if self.sim is not None:
            load_sim(self.sim)  # ConfigError names the folder and its missing or incompatible part
        for name in ("timesteps", "n_envs", "eval_users", "checkpoint_freq"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.eval_freq < 0:
            raise ConfigError(f"--eval-freq must be >= 0, got {self.eval_freq}")
        if self.device != "auto":
            try:
                th.device(self.device)
            except (RuntimeError, ValueError):
                raise ConfigError(
                    f"--device {self.device!r}: not a torch device (auto, cpu, cuda, cuda:1, ...)"
                ) from None
        seeds.valid_users(self.seed, self.eval_users)  # checks the seed and the counts
        seeds.train_users(self.seed, self.n_envs)

    @property
    def simulator(self) -> Simulator:
        """The simulator the run trains on."""
        if self.sim is None:
            return Simulator(self.preset, None, envs.get_preset(self.preset))
        return Simulator(self.preset, self.sim, load_sim(self.sim))

    @property
    def params(self) -> Hyperparams:
        """The parsed hyperparameters."""
        return hyperparams_from_entry(
            self.algo, env_id(self.preset), self.hyperparams, self.hyperparams_source
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
        hyperparams=params.raw,
        hyperparams_source=str(args.hyperparams) if args.hyperparams else f"agents/hyperparams/{algo}.yml",
    )


def settings_from_run(run_dir: Path, args: argparse.Namespace) -> TrainSettings:
    """Settings of the run to resume; an option that contradicts them is an error."""
    config_path = run_dir / RUN_CONFIG_FILE
    try:
        stored = json.loads(config_path.read_text())["config"]["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            f"--resume: {run_dir} is not a training run folder (no readable {config_path.name})"
        ) from None
    settings = TrainSettings(**stored)
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


class _Buffer(io.BytesIO):
    """A BytesIO that SB3 may 'close' after writing without losing the bytes."""

    def close(self) -> None:
        """Keep the buffer readable (SB3's save functions close the file they write)."""


def model_bytes(model: BaseAlgorithm) -> bytes:
    """The model's zip, in memory, for an atomic write."""
    buf = _Buffer()
    model.save(buf)
    return buf.getvalue()


def env_parts(env: VecEnv) -> tuple[VecNormalize | None, VecMonitor, VecEnv]:
    """(VecNormalize or None, VecMonitor, the simulator's VecEnv) of an env built by :func:`make_env`."""
    normalize = env if isinstance(env, VecNormalize) else None
    monitor = normalize.venv if normalize is not None else env
    if not isinstance(monitor, VecMonitor):
        raise TypeError(f"expected the env of make_env, got {env!r}")
    return normalize, monitor, monitor.venv


def make_env(settings: TrainSettings, num_users: int, training: bool, inner: VecEnv | None = None) -> VecEnv:
    """The SB3 env of the algorithm: adapter (one-at-a-time for DQN), VecMonitor, VecNormalize if asked."""
    if inner is None:
        if settings.algo == "dqn":
            inner = OneAtATimeVecEnv(num_users, preset=settings.preset, **settings.simulator.env_kwargs())
        else:
            inner = InterestDecaySB3VecEnv(
                num_users, preset=settings.preset, **settings.simulator.env_kwargs()
            )
    env: VecEnv = VecMonitor(inner)
    params = settings.params
    if params.normalize is not None:
        kwargs = {"gamma": params.algo_kwargs.get("gamma", 0.99), **params.normalize}
        if not training:
            kwargs.update(training=False, norm_reward=False)
        env = VecNormalize(env, **kwargs)
    return env


def rng_state(model: BaseAlgorithm) -> dict[str, Any]:
    """Every random state training draws from: Python, NumPy and torch globals, SB3's action space.

    SB3 samples actions with torch's global generator, shuffles minibatches and explores (DQN)
    with NumPy's, and samples random actions from the model's action space.
    """
    state: dict[str, Any] = {
        "random": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002  (SB3 draws from NumPy's global generator)
        "torch": th.get_rng_state(),
        "action_space": model.action_space.np_random.bit_generator.state,
    }
    if th.cuda.is_available():
        state["cuda"] = th.cuda.get_rng_state_all()
    return state


def set_rng_state(model: BaseAlgorithm, state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    th.set_rng_state(state["torch"])
    model.action_space.np_random.bit_generator.state = state["action_space"]
    if "cuda" in state and th.cuda.is_available():
        th.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(model: BaseAlgorithm, run_dir: Path, callbacks: dict[str, BaseCallback]) -> Path:
    """Write everything training depends on to a new folder, point ``latest.json`` at it, drop older ones.

    Called between rollouts (after an update, before the next collection), so that resuming
    from it continues exactly as the uninterrupted run would have: model and optimiser, DQN's
    replay buffer, the simulated users in mid-episode (the simulator's VecEnv, pickled), the
    VecMonitor and VecNormalize statistics, the random states and the callbacks' counters.
    """
    root = run_dir / CHECKPOINTS
    folder = root / f"step_{model.num_timesteps:012d}"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / MODEL_FILE, model_bytes(model))
    if isinstance(model, OffPolicyAlgorithm):
        buf = _Buffer()
        model.save_replay_buffer(buf)
        atomic_write_bytes(folder / REPLAY_FILE, buf.getvalue())
    normalize, monitor, inner = env_parts(model.get_env())  # type: ignore[arg-type]
    if normalize is not None:
        atomic_write_bytes(folder / VECNORMALIZE_FILE, pickle.dumps(normalize))
    extras: dict[str, Any] = {
        "env": inner,
        "monitor": {k: getattr(monitor, k) for k in MONITOR_FIELDS},
        "normalize_returns": None if normalize is None else normalize.returns,
        "rng": rng_state(model),
        # RecurrentPPO does not save its LSTM states in the zip
        "lstm_states": getattr(model, "_last_lstm_states", None),
    }
    atomic_write_bytes(folder / STATE_FILE, pickle.dumps(extras))
    counters: dict[str, Any] = {"num_timesteps": int(model.num_timesteps)}
    for name, callback in callbacks.items():
        counters[name] = {"n_calls": int(callback.n_calls)}
        if isinstance(callback, EvalCallback):
            counters[name].update(
                best_mean_reward=float(callback.best_mean_reward),
                last_mean_reward=float(callback.last_mean_reward),
                timesteps=[int(t) for t in callback.evaluations_timesteps],
                results=[[float(r) for r in rs] for rs in callback.evaluations_results],
                lengths=[[int(v) for v in ls] for ls in callback.evaluations_length],
            )
    atomic_write_json(folder / COUNTERS_FILE, counters)
    atomic_write_json(root / LATEST, {"folder": folder.name, "num_timesteps": int(model.num_timesteps)})
    for old in root.glob("step_*"):
        if old.is_dir() and old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The folder ``checkpoints/latest.json`` points to, if any."""
    pointer = run_dir / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    folder = run_dir / CHECKPOINTS / json.loads(pointer.read_text())["folder"]
    return folder if (folder / MODEL_FILE).is_file() else None


def restore_checkpoint(
    folder: Path, settings: TrainSettings, run_dir: Path
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """The model of a checkpoint with its env, buffer and random states restored; and its counters."""
    extras = pickle.loads((folder / STATE_FILE).read_bytes())
    env = make_env(settings, settings.n_envs, training=True, inner=extras["env"])
    normalize, monitor, _ = env_parts(env)
    for key, value in extras["monitor"].items():
        setattr(monitor, key, value)
    if normalize is not None:
        stats: VecNormalize = pickle.loads((folder / VECNORMALIZE_FILE).read_bytes())
        stats.set_venv(monitor)
        stats.returns = extras["normalize_returns"]
        env = stats
    model = ALGOS[settings.algo].load(
        folder / MODEL_FILE,
        env=env,
        device=settings.device,
        force_reset=False,  # keep the last observation: the users go on where they were
        tensorboard_log=str(run_dir / "tb"),
    )
    if isinstance(model, OffPolicyAlgorithm):
        model.load_replay_buffer(folder / REPLAY_FILE)
    if extras["lstm_states"] is not None:
        model._last_lstm_states = extras["lstm_states"]  # type: ignore[attr-defined]
    set_rng_state(model, extras["rng"])  # last: loading draws from the generators
    return model, json.loads((folder / COUNTERS_FILE).read_text())


class Checkpointer(BaseCallback):
    """Checkpoints (:func:`save_checkpoint`) between rollouts, every ``every`` timesteps or more."""

    def __init__(self, run_dir: Path, every: int, callbacks: dict[str, BaseCallback], last: int = 0) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.every = every
        self.callbacks = callbacks
        self.last = last

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps - self.last >= self.every:
            self.save()

    def _on_step(self) -> bool:
        return True

    def save(self) -> Path:
        """Checkpoint now (call between rollouts only)."""
        self.last = self.model.num_timesteps
        return save_checkpoint(self.model, self.run_dir, self.callbacks)


class ProgressCallback(BaseCallback):
    """Moves a rich progress bar to the model's timestep count."""

    def __init__(self, bar: Progress, task: TaskID) -> None:
        super().__init__()
        self.bar = bar
        self.task = task

    def _on_step(self) -> bool:
        self.bar.update(self.task, completed=self.num_timesteps)
        return True


class _Reseeded:
    """Re-seeds the evaluation env before each evaluation, so every evaluation meets the same users."""

    eval_env: VecEnv
    eval_freq: int
    n_calls: int
    user_seed: int

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            self.eval_env.seed(self.user_seed)
        return super()._on_step()  # type: ignore[misc]


class SeededEvalCallback(_Reseeded, EvalCallback):
    """``EvalCallback`` on fixed validation users."""


class SeededMaskableEvalCallback(_Reseeded, MaskableEvalCallback):
    """``MaskableEvalCallback`` (masked predictions) on fixed validation users."""


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports."""

    run_dir: Path
    num_timesteps: int
    summary: dict[str, Any]


def train(settings: TrainSettings, run_dir: Path, resume: bool = False) -> TrainResult:
    """Train (or resume) one run into ``run_dir``; see the module docstring for what is written."""
    started = time.perf_counter()
    params = settings.params
    users = seeds.train_users(settings.seed, settings.n_envs)
    valid = seeds.valid_users(settings.seed, settings.eval_users)
    counters: dict[str, Any] = {}
    if resume:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise ConfigError(
                f"--resume: {run_dir} has no checkpoint yet; start the run again (the same command "
                "without --resume)"
            )
        model, counters = restore_checkpoint(checkpoint, settings, run_dir)
        env = model.get_env()
        assert env is not None
    else:
        env = make_env(settings, settings.n_envs, training=True)
        model = ALGOS[settings.algo](
            params.policy_class(),
            env,
            seed=settings.seed,
            device=settings.device,
            tensorboard_log=str(run_dir / "tb"),
            policy_kwargs=params.policy_kwargs,
            verbose=0,
            **params.algo_kwargs,
        )
        env.seed(users.start)  # after the model: SB3 seeds the env with the model seed
        atomic_write_json(
            run_dir / SEEDS_FILE,
            {
                "scheme": seeds.scheme(),
                "train": users.to_dict(),
                "valid": valid.to_dict(),
                "model_seed": settings.seed,
            },
        )

    eval_env = make_env(settings, settings.eval_users, training=False)
    callback_cls = SeededMaskableEvalCallback if settings.algo == "maskable_ppo" else SeededEvalCallback
    eval_callback = callback_cls(
        eval_env,
        n_eval_episodes=settings.eval_users,
        eval_freq=max(1, settings.eval_freq // settings.n_envs) if settings.eval_freq else 0,
        log_path=str(run_dir / "eval"),
        best_model_save_path=str(run_dir),
        deterministic=True,
        verbose=0,
    )
    eval_callback.user_seed = valid.start
    if "eval" in counters:
        saved = counters["eval"]
        eval_callback.n_calls = saved["n_calls"]
        eval_callback.best_mean_reward = saved["best_mean_reward"]
        eval_callback.last_mean_reward = saved["last_mean_reward"]
        eval_callback.evaluations_timesteps = saved["timesteps"]
        eval_callback.evaluations_results = saved["results"]
        eval_callback.evaluations_length = saved["lengths"]
    checkpointer = Checkpointer(
        run_dir, settings.checkpoint_freq, {"eval": eval_callback}, last=int(model.num_timesteps)
    )
    remaining = settings.timesteps - model.num_timesteps
    with progress() as bar:
        task = bar.add_task(
            f"{settings.algo} on {settings.preset}", total=settings.timesteps, completed=model.num_timesteps
        )
        if remaining > 0:
            model.learn(
                remaining,
                callback=[eval_callback, checkpointer, ProgressCallback(bar, task)],
                reset_num_timesteps=not resume,
                tb_log_name=settings.algo,
            )
        bar.update(task, completed=model.num_timesteps)
    if not resume or remaining > 0:
        checkpointer.save()
    atomic_write_bytes(run_dir / MODEL_FILE, model_bytes(model))
    normalize, _, _ = env_parts(env)
    if normalize is not None:
        atomic_write_bytes(run_dir / VECNORMALIZE_FILE, pickle.dumps(normalize))
    env.close()
    eval_env.close()

    records = evaluate(
        load_policy(run_dir, settings.preset, device="cpu"),
        preset=settings.preset,
        seeds=valid.seeds(),
        label=settings.algo,
        **settings.simulator.env_kwargs(),
    )
    summary_path = run_dir / SUMMARY_FILE
    resumed_at = json.loads(summary_path.read_text()).get("resumed_at", []) if summary_path.is_file() else []
    summary = {
        "algo": settings.algo,
        "preset": settings.preset,
        "num_timesteps": int(model.num_timesteps),
        "resumed_at": [*resumed_at, counters["num_timesteps"]] if resume and remaining > 0 else resumed_at,
        "validation_users": valid.to_dict(),
        "final_model_on_validation_users": summarize(records, seed=settings.seed).to_dict(orient="index"),
        "best_validation_mean_reward": float(eval_callback.best_mean_reward)
        if np.isfinite(eval_callback.best_mean_reward)
        else None,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    atomic_write_json(summary_path, summary)
    return TrainResult(run_dir, int(model.num_timesteps), summary)


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
        if args.out and latest_checkpoint(Path(args.out)) is not None:
            raise ConfigError(
                f"{args.out} already holds a run; continue it with --resume or choose another --out"
            )
        run_dir = make_run_dir(
            args.out, "train", f"{settings.algo}_{settings.simulator.label}", settings.seed
        )
        config = {
            "algo": settings.algo,
            "preset": settings.preset,
            "env_id": env_id(settings.preset),
            "settings": asdict(settings),
            "simulator": settings.simulator.record(),
            "sim_config": settings.simulator.config.to_dict(),
            "hyperparams": settings.hyperparams,
            "seeds": {
                "scheme": seeds.scheme(),
                "train": seeds.train_users(settings.seed, settings.n_envs).to_dict(),
                "valid": seeds.valid_users(settings.seed, settings.eval_users).to_dict(),
                "model_seed": settings.seed,
            },
            "versions": versions(_EXTRA_PACKAGES),
        }
        command = list(argv) if argv is not None else sys.argv[1:]
        write_provenance(run_dir, config, settings.seed, ["scripts.train", *command])
    result = train(settings, run_dir, resume=args.resume)
    ret = result.summary["final_model_on_validation_users"]["return"]
    print(
        f"{settings.algo} on {settings.preset}: {result.num_timesteps} timesteps; final model on "
        f"{settings.eval_users} validation users: return {ret['mean']:.3f} "
        f"[{ret['ci_low']:.3f}, {ret['ci_high']:.3f}]; written to {run_dir}"
    )
    return 0


def cli(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    run_cli("decaygym-train", main, argv)


if __name__ == "__main__":
    cli()
