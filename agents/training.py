"""Train a Stable-Baselines3 agent on the simulator into a run folder, or resume one.

``train(settings, run_dir)`` is what ``decaygym-train`` runs; :class:`TrainSettings` holds
everything the run depends on. PPO, A2C, MaskablePPO and RecurrentPPO train on
``InterestDecayVectorEnv`` through the SB3 adapter (``n_envs`` users stepped together); DQN
decides one candidate at a time (``agents.wrappers.OneAtATimeVecEnv``, K decisions per visit,
so its timesteps count decisions). Users come from ``agents.seeds``: training users from the
run's training range, validation users for ``EvalCallback`` from another range; the held-out
evaluation users of the evaluate and benchmark commands are a third range that training never
sees.

What :func:`train` writes into the run folder: ``seeds.json`` (the user-seed ranges and model
seed), ``model.zip`` (final model; ``vecnormalize.pkl`` beside it if the YAML normalises),
``best_model.zip`` and ``eval/evaluations.npz`` (``EvalCallback`` on the validation users),
``tb/`` (TensorBoard: ``tensorboard --logdir DIR/tb``), ``checkpoints/`` (the last checkpoint,
``agents.checkpoints``) and ``summary.json`` (the final model on the validation users: mean
and 95 % bootstrap interval per metric). ``config.json`` (settings with their provenance) is
the caller's: ``decaygym-train`` writes it, and ``agents.trained.load_policy`` reads the
algorithm from it (or, without it, from the model's policy class).

``train(settings, run_dir, resume=True)`` continues from the last checkpoint to the run's total
timesteps and ends with the same model as an uninterrupted run (``agents.checkpoints``).
"""

from __future__ import annotations

import json
import pickle
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from rich.progress import Progress, TaskID
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

import envs
from agents import seeds
from agents.checkpoints import Checkpointer, env_parts, latest_checkpoint, model_bytes, restore_checkpoint
from agents.evaluation import evaluate, summarize
from agents.provenance import versions
from agents.sb3_vec_env import InterestDecaySB3VecEnv
from agents.trained import (
    ALGOS,
    MODEL_FILE,
    RUN_CONFIG_FILE,
    VECNORMALIZE_FILE,
    Hyperparams,
    env_id,
    hyperparams_from_entry,
    load_policy,
)
from agents.wrappers import OneAtATimeVecEnv
from decay_model.atomic import atomic_write_bytes, atomic_write_json
from decay_model.errors import ConfigError
from decay_model.threads import torch_threads
from envs.simulator_folder import load_sim

SEEDS_FILE = "seeds.json"
SUMMARY_FILE = "summary.json"
DEFAULT_EVAL_USERS = 256
#: torch threads of a training run unless asked otherwise: two on every machine, the count the
#: published figures were trained with (pinned, so that a 64-core server gives the same numbers)
DEFAULT_TORCH_THREADS = 2


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
    torch_threads: int = DEFAULT_TORCH_THREADS
    """Torch CPU threads while training. Results depend on it (float sums are split differently),
    so every run pins it and records it: the same seed and thread count give the same model on
    any machine."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ConfigError(f"unknown --algo {self.algo!r}; known: {', '.join(ALGOS)}")
        envs.get_preset(self.preset)  # ConfigError names the known presets
        if self.sim is not None:
            load_sim(self.sim)  # ConfigError names the folder and its missing or incompatible part
        for name in ("timesteps", "n_envs", "eval_users", "checkpoint_freq", "torch_threads"):
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

    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every env (and ``agents``' ``**overrides``) needs for the run's simulator."""
        return {} if self.sim is None else {"sim": self.sim}

    @property
    def params(self) -> Hyperparams:
        """The parsed hyperparameters."""
        return hyperparams_from_entry(
            self.algo, env_id(self.preset), self.hyperparams, self.hyperparams_source
        )


def make_env(settings: TrainSettings, num_users: int, training: bool, inner: VecEnv | None = None) -> VecEnv:
    """The SB3 env of the algorithm: adapter (one-at-a-time for DQN), VecMonitor, VecNormalize if asked."""
    if inner is None:
        if settings.algo == "dqn":
            inner = OneAtATimeVecEnv(num_users, preset=settings.preset, **settings.env_kwargs())
        else:
            inner = InterestDecaySB3VecEnv(num_users, preset=settings.preset, **settings.env_kwargs())
    env: VecEnv = VecMonitor(inner)
    params = settings.params
    if params.normalize is not None:
        kwargs = {"gamma": params.algo_kwargs.get("gamma", 0.99), **params.normalize}
        if not training:
            kwargs.update(training=False, norm_reward=False)
        env = VecNormalize(env, **kwargs)
    return env


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


def train(
    settings: TrainSettings,
    run_dir: str | Path,
    resume: bool = False,
    *,
    progress: Progress | None = None,
    after_eval: BaseCallback | None = None,
) -> TrainResult:
    """Train (or resume) one run into ``run_dir``; see the module docstring for what is written.

    ``progress`` shows the timesteps done (default: no display). ``after_eval`` runs after each
    validation (SB3's ``callback_after_eval``: its ``parent.last_mean_reward`` is the validation
    return; returning False ends training early, as a hyperparameter search's pruner does). Torch runs on
    ``settings.torch_threads`` threads meanwhile (restored afterwards).

    Raises:
        ConfigError: ``resume`` but the folder has no checkpoint yet.
    """
    with torch_threads(settings.torch_threads):
        return _train(settings, Path(run_dir), resume, progress, after_eval)


def _train(
    settings: TrainSettings,
    run_dir: Path,
    resume: bool,
    progress: Progress | None,
    after_eval: BaseCallback | None,
) -> TrainResult:
    started = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
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
        model, counters = restore_checkpoint(
            checkpoint,
            ALGOS[settings.algo],
            lambda inner: make_env(settings, settings.n_envs, training=True, inner=inner),
            device=settings.device,
            tensorboard_log=str(run_dir / "tb"),
        )
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
        callback_after_eval=after_eval,
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
    bar = progress if progress is not None else Progress(disable=True)
    with bar:
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
        **settings.env_kwargs(),
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


#: packages recorded in a run's ``config.json`` beside the project's own
RECORDED_PACKAGES = ("sb3-contrib", "tensorboard", "rl-zoo3", "optuna")


def run_record(
    settings: TrainSettings, simulator: dict[str, Any], sim_config: dict[str, Any]
) -> dict[str, Any]:
    """What a run's ``config.json`` records: settings, simulator, hyperparameters, seeds, versions."""
    return {
        "algo": settings.algo,
        "preset": settings.preset,
        "env_id": env_id(settings.preset),
        "settings": asdict(settings),
        "simulator": simulator,
        "sim_config": sim_config,
        "hyperparams": settings.hyperparams,
        "seeds": {
            "scheme": seeds.scheme(),
            "train": seeds.train_users(settings.seed, settings.n_envs).to_dict(),
            "valid": seeds.valid_users(settings.seed, settings.eval_users).to_dict(),
            "model_seed": settings.seed,
        },
        "versions": versions(RECORDED_PACKAGES),
    }


def stored_settings(run_dir: Path, torch_threads: int | None = None) -> TrainSettings:
    """The settings a run folder's ``config.json`` records (what ``--resume`` continues with).

    A ``config.json`` written before runs recorded their thread count needs ``torch_threads``,
    the count it trained with: filling in today's default could claim a count it never had.
    """
    config_path = run_dir / RUN_CONFIG_FILE
    try:
        stored = json.loads(config_path.read_text())["config"]["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            f"--resume: {run_dir} is not a training run folder (no readable {config_path.name})"
        ) from None
    if "torch_threads" not in stored:
        if torch_threads is None:
            raise ConfigError(
                f"{config_path} records no torch thread count; give --torch-threads N, the count the "
                "run trained with (torch's default: the machine's cores)"
            )
        stored = {**stored, "torch_threads": torch_threads}
    return TrainSettings(**stored)
