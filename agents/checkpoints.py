"""Checkpoints of a training run that let ``--resume`` end with the same model as an uninterrupted run.

A checkpoint is taken between rollouts and holds everything training depends on: the model and
its optimiser, DQN's replay buffer, the simulated users in mid-episode, the VecMonitor and
VecNormalize statistics, the random generators and the callbacks' counters. It is written to
a new folder, then pointed to by ``checkpoints/latest.json`` with an atomic write, so a kill
never leaves a half checkpoint. On CPU, with the same torch version and thread count, a run
resumed from it ends with the same model as an uninterrupted one (GPU kernels need not be
bitwise deterministic).
"""

from __future__ import annotations

import io
import json
import pickle
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from agents.trained import MODEL_FILE, VECNORMALIZE_FILE
from decay_model.atomic import atomic_write_bytes, atomic_write_json

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
REPLAY_FILE = "replay_buffer.pkl"
STATE_FILE = "state.pkl"
COUNTERS_FILE = "counters.json"
MONITOR_FIELDS = ("episode_returns", "episode_lengths", "episode_count")


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
    """(VecNormalize or None, VecMonitor, simulator VecEnv) of an env of ``agents.training.make_env``."""
    normalize = env if isinstance(env, VecNormalize) else None
    monitor = normalize.venv if normalize is not None else env
    if not isinstance(monitor, VecMonitor):
        raise TypeError(f"expected the env of make_env, got {env!r}")
    return normalize, monitor, monitor.venv


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
    folder: Path,
    algo: type[BaseAlgorithm],
    wrap: Callable[[VecEnv], VecEnv],
    *,
    device: str,
    tensorboard_log: str,
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """The model of a checkpoint with its env, buffer and random states restored; and its counters.

    ``wrap`` puts the restored simulator's VecEnv in the VecMonitor (and VecNormalize) the run
    trains on; the checkpoint's statistics are then set on them.
    """
    extras = pickle.loads((folder / STATE_FILE).read_bytes())
    env = wrap(extras["env"])
    normalize, monitor, _ = env_parts(env)
    for key, value in extras["monitor"].items():
        setattr(monitor, key, value)
    if normalize is not None:
        stats: VecNormalize = pickle.loads((folder / VECNORMALIZE_FILE).read_bytes())
        stats.set_venv(monitor)
        stats.returns = extras["normalize_returns"]
        env = stats
    model = algo.load(
        folder / MODEL_FILE,
        env=env,
        device=device,
        force_reset=False,  # keep the last observation: the users go on where they were
        tensorboard_log=tensorboard_log,
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
