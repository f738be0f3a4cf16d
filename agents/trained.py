"""Trained SB3 agents: the algorithms, their hyperparameter files, and loading a model as a ``Policy``.

``ALGOS`` names the five algorithms ``scripts/train.py`` trains. Their hyperparameters live in
one YAML file per algorithm in ``agents/hyperparams/`` (``ppo.yml``, ...), keyed by env id,
in RL Zoo's format, so that the same files serve ``decaygym-train`` and
``python -m rl_zoo3.train --conf-file``; :func:`load_hyperparams` reads them.

:func:`load_policy` turns a run folder (or a model zip) into something with SB3's ``predict``
on flat observations (N, K·9 + 3) -> (N, K), whatever the algorithm: MaskablePPO gets its masks
from the observation, RecurrentPPO passes its LSTM state through ``state``, the one-at-a-time
DQN is asked K times per visit, and saved ``VecNormalize`` statistics are applied. So trained
models are evaluated by ``agents.evaluation`` exactly as the rules are.
"""

from __future__ import annotations

import importlib
import json
import pickle
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray
from sb3_contrib import MaskablePPO, RecurrentPPO
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import VecNormalize
from stable_baselines3.dqn.policies import DQNPolicy

from agents.per_item_policy import (
    DEFAULT_ATTENTION_HEADS,
    DEFAULT_ATTENTION_LAYERS,
    check_encoder,
    split_arch,
)
from agents.policy import SHOW, as_batch, num_slots
from agents.wrappers import DECISION_OBS_SIZE, action_masks, one_at_a_time_predict
from decay_model.errors import ArtifactError, ConfigError
from envs import VERSION, env_id
from envs.config import get_preset
from envs.layout import EMPTY_BLOCK

ALGOS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
    "maskable_ppo": MaskablePPO,
    "recurrent_ppo": RecurrentPPO,
}
#: each algorithm's name in RL Zoo (``--algo``); MaskablePPO is not one of RL Zoo's algorithms
ZOO_NAMES: dict[str, str | None] = {
    "ppo": "ppo",
    "a2c": "a2c",
    "dqn": "dqn",
    "maskable_ppo": None,
    "recurrent_ppo": "ppo_lstm",
}
MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
RUN_CONFIG_FILE = "config.json"
#: what SB3 raises on a file that is not a model of the expected kind (bad zip, missing keys, shapes)
LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError, EOFError, TypeError, AttributeError)
#: RL Zoo keys that ``decaygym-train`` reads itself (the rest are the algorithm's arguments)
ZOO_KEYS = ("n_envs", "n_timesteps", "policy", "policy_kwargs", "normalize", "env_wrapper")
#: RL Zoo keys ``decaygym-train`` does not implement
UNSUPPORTED_KEYS = ("frame_stack", "callback", "vec_env_wrapper", "env_kwargs", "monitor_kwargs")


def hyperparams_file(algo: str) -> Path:
    """The packaged YAML file of ``algo``."""
    if algo not in ALGOS:
        raise ConfigError(f"unknown algorithm {algo!r}; known: {', '.join(ALGOS)}")
    return Path(str(files("agents") / "hyperparams" / f"{algo}.yml"))


@dataclass(frozen=True)
class Hyperparams:
    """One algorithm's settings for one env id, read from an RL Zoo-format YAML file."""

    algo: str
    """Key of :data:`ALGOS`."""
    env_id: str
    """The YAML entry they come from."""
    n_envs: int
    """Users stepped together (the vector env's N)."""
    n_timesteps: int
    """Default training budget in env steps (decisions for DQN)."""
    policy: str
    """SB3 policy alias (``MlpPolicy``) or ``module.Class`` of a custom policy."""
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the policy."""
    normalize: dict[str, Any] | None = None
    """``VecNormalize`` keyword arguments, or None for no normalisation."""
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    """Every other key: arguments of the algorithm's constructor."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The YAML entry as read, for the run folder."""

    def policy_class(self) -> Any:
        """The policy to pass to SB3: an alias string, or the imported ``module.Class``."""
        if "." not in self.policy:
            return self.policy
        module, _, name = self.policy.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            raise ConfigError(f"policy {self.policy!r}: cannot import it") from None


def entry_ids(preset: str) -> list[str]:
    """The YAML keys an entry for ``preset`` may have, the canonical env id first."""
    return [env_id(preset)] + ([f"decaygym/InterestDecay-{preset}-v{VERSION}"] if preset == "default" else [])


def has_entry(path: str | Path, preset: str) -> bool:
    """Whether the YAML file at ``path`` has an entry for ``preset``.

    Raises:
        ConfigError: the file cannot be read or parsed (a broken file must not read as "no entry").
    """
    try:
        entries = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the hyperparameters ({exc})") from None
    return isinstance(entries, dict) and any(i in entries for i in entry_ids(preset))


def load_hyperparams(algo: str, preset: str, path: str | Path | None = None) -> Hyperparams:
    """The hyperparameters of ``algo`` on ``preset`` from ``path`` (default: the packaged file).

    Raises:
        ConfigError: unknown algorithm, unreadable file, no entry for the preset's env id, or a
            value decaygym-train cannot use (see :func:`hyperparams_from_entry`).
    """
    get_preset(preset)  # ConfigError names the known presets
    file = Path(path) if path is not None else hyperparams_file(algo)
    try:
        entries = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{file}: cannot read the hyperparameters ({exc})") from None
    ids = entry_ids(preset)
    entry = next((entries[i] for i in ids if isinstance(entries, dict) and i in entries), None)
    if not isinstance(entry, dict):
        raise ConfigError(f"{file}: no entry for {ids[0]} (preset {preset!r})")
    return hyperparams_from_entry(algo, ids[0], entry, str(file))


def hyperparams_from_entry(algo: str, env: str, entry: dict[str, Any], source: str) -> Hyperparams:
    """Parse one YAML entry (RL Zoo's keys) of ``algo``; ``source`` names it in errors.

    Raises:
        ConfigError: a missing key, policy_kwargs as a string (RL Zoo evaluates Python there;
            decaygym-train reads mappings only), per-item encoder settings (``encoder``,
            ``attention_heads``, ``attention_layers``) the per-item policy would refuse, a
            schedule given as a string, or an RL Zoo feature decaygym-train does not implement.
    """
    where = f"{source} [{env}]"
    if algo not in ALGOS:
        raise ConfigError(f"unknown algorithm {algo!r}; known: {', '.join(ALGOS)}")
    raw = dict(entry)
    bad = [k for k in UNSUPPORTED_KEYS if k in raw]
    if bad:
        raise ConfigError(f"{where}: decaygym-train does not support {', '.join(bad)}")
    policy_kwargs = raw.get("policy_kwargs") or {}
    if not isinstance(policy_kwargs, dict):
        raise ConfigError(
            f"{where}: write policy_kwargs as a YAML mapping, not {type(policy_kwargs).__name__}"
        )
    _check_encoder_kwargs(policy_kwargs, where)
    strings = [k for k, v in raw.items() if k not in ZOO_KEYS and isinstance(v, str)]
    if strings:
        raise ConfigError(
            f"{where}: {', '.join(strings)} must be numbers (string schedules are not supported)"
        )
    normalize = raw.get("normalize", False)
    if normalize is True:
        normalize = {}
    elif normalize is False or normalize is None:
        normalize = None
    elif not isinstance(normalize, dict):
        raise ConfigError(f"{where}: normalize must be true, false or a mapping")
    try:
        n_envs, n_timesteps, policy = int(raw["n_envs"]), int(float(raw["n_timesteps"])), str(raw["policy"])
    except KeyError as exc:
        raise ConfigError(f"{where}: missing {exc.args[0]}") from None
    algo_kwargs = {k: v for k, v in raw.items() if k not in ZOO_KEYS}
    if isinstance(algo_kwargs.get("train_freq"), list):
        algo_kwargs["train_freq"] = tuple(algo_kwargs["train_freq"])
    return Hyperparams(
        algo=algo,
        env_id=env,
        n_envs=n_envs,
        n_timesteps=n_timesteps,
        policy=policy,
        policy_kwargs=dict(policy_kwargs),
        normalize=normalize,
        algo_kwargs=algo_kwargs,
        raw=raw,
    )


def _check_encoder_kwargs(policy_kwargs: dict[str, Any], where: str) -> None:
    """The per-item policy's checks of its encoder settings, at load time rather than at training."""
    if not any(k in policy_kwargs for k in ("encoder", "attention_heads", "attention_layers")):
        return
    try:
        pi, vf = split_arch(policy_kwargs.get("net_arch"))
        check_encoder(
            policy_kwargs.get("encoder", "pool"),
            policy_kwargs.get("attention_heads", DEFAULT_ATTENTION_HEADS),
            policy_kwargs.get("attention_layers", DEFAULT_ATTENTION_LAYERS),
            (pi[0], vf[0]),
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: policy_kwargs {exc}") from None


def _run_config(model_file: Path) -> tuple[Path | None, dict[str, Any] | None]:
    """The run folder above a model file (up to three levels) and its config, if it is a training run."""
    for folder in list(model_file.parents)[:3]:
        config_path = folder / RUN_CONFIG_FILE
        if config_path.is_file():
            try:
                config = json.loads(config_path.read_text()).get("config", {})
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(config, dict) and config.get("algo") in ALGOS:
                return folder, config
    return None, None


def algo_of_zip(model_file: Path) -> str:
    """The algorithm of a bare SB3 zip, from its policy class (PPO and A2C by PPO's own settings)."""
    try:
        data, _, _ = load_from_zip_file(model_file, device="cpu")
    except LOAD_ERRORS as exc:
        raise ArtifactError(f"{model_file}: not a readable SB3 model ({type(exc).__name__}: {exc})") from None
    policy = (data or {}).get("policy_class")
    if not isinstance(policy, type):
        raise ArtifactError(f"{model_file}: the model's policy class cannot be read")
    if issubclass(policy, MaskableActorCriticPolicy):
        return "maskable_ppo"
    if issubclass(policy, RecurrentActorCriticPolicy):
        return "recurrent_ppo"
    if issubclass(policy, DQNPolicy):
        return "dqn"
    return "ppo" if "clip_range" in (data or {}) else "a2c"


class TrainedPolicy:
    """A trained SB3 model behind the ``Policy`` interface (see the module docstring).

    Actions on empty slots are set to 0 (the env ignores them), as the rules do, so action shares
    count the same way for every policy.
    """

    def __init__(
        self,
        model: BaseAlgorithm,
        algo: str,
        num_slots: int | None,
        vec_normalize: VecNormalize | None = None,
        name: str | None = None,
    ) -> None:
        self.model = model
        self.algo = algo
        self.num_slots = num_slots
        self.vec_normalize = vec_normalize
        self.name = name or algo

    def _model_obs(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.vec_normalize is None:
            return obs
        return np.asarray(self.vec_normalize.normalize_obs(obs), dtype=np.float32)

    def predict(
        self,
        observation: NDArray[np.floating],
        state: tuple[NDArray[Any], ...] | None = None,
        episode_start: NDArray[np.bool_] | None = None,
        deterministic: bool = True,
    ) -> tuple[NDArray[np.int64], tuple[NDArray[Any], ...] | None]:
        """SB3's signature on flat env observations: (N, K·9 + 3) -> (N, K), or one observation -> (K,)."""
        obs, single = as_batch(observation)
        k = num_slots(obs.shape[1])
        if self.num_slots is not None and k != self.num_slots:
            raise ValueError(
                f"{self.name}: expected observations of length {self.num_slots * 9 + 3} "
                f"(K={self.num_slots}), got {obs.shape[1]}"
            )
        if self.algo == "dqn":

            def predict_one(decision: NDArray[np.float32], det: bool) -> NDArray[np.int64]:
                return self.model.predict(self._model_obs(decision), deterministic=det)[0]

            actions = one_at_a_time_predict(predict_one, obs, deterministic)
        elif self.algo == "maskable_ppo":
            masks = action_masks(obs)
            actions, _ = self.model.predict(  # type: ignore[call-arg]
                self._model_obs(obs), deterministic=deterministic, action_masks=masks
            )
        elif self.algo == "recurrent_ppo":
            actions, state = self.model.predict(
                self._model_obs(obs), state=state, episode_start=episode_start, deterministic=deterministic
            )
        else:
            actions, _ = self.model.predict(self._model_obs(obs), deterministic=deterministic)
        actions = np.asarray(actions, dtype=np.int64).reshape(obs.shape[0], k)
        empty = obs[:, EMPTY_BLOCK * k : (EMPTY_BLOCK + 1) * k] > 0.5
        actions = np.where(empty, SHOW, actions).astype(np.int64)
        return (actions[0] if single else actions), state

    def __repr__(self) -> str:
        return f"TrainedPolicy({self.name!r})"


def load_policy(path: str | Path, preset: str | None = None, *, device: str = "cpu") -> TrainedPolicy:
    """A trained model as a ``Policy``: a run folder of ``decaygym-train`` (its final ``model.zip``) or a zip.

    The algorithm comes from the run folder's ``config.json`` (or, for a bare zip, from the
    model's policy class). The model's observation space is checked against ``preset`` (default:
    the preset the run trained on); ``VecNormalize`` statistics next to the zip are applied.

    Raises:
        ArtifactError: missing or unreadable file, or a model made for another observation shape,
            named in a one-line message with the expected and found shapes.
        ConfigError: unknown preset.
    """
    path = Path(path)
    if path.is_dir():
        model_file = path / MODEL_FILE
        if not model_file.is_file():
            raise ArtifactError(f"{path}: no {MODEL_FILE} in this folder (training not finished?)")
    elif path.is_file():
        model_file = path
    else:
        raise ArtifactError(f"{path}: no such model file or run folder")
    run_dir, config = _run_config(model_file)
    algo = str(config["algo"]) if config else algo_of_zip(model_file)
    run_preset = config.get("preset") if config else None
    target = preset if preset is not None else run_preset
    try:
        model = ALGOS[algo].load(model_file, device=device)
    except LOAD_ERRORS as exc:
        raise ArtifactError(f"{model_file}: cannot load it as {algo} ({type(exc).__name__}: {exc})") from None
    found = tuple(model.observation_space.shape or ())
    k: int | None
    if algo == "dqn":
        if found != (DECISION_OBS_SIZE,):
            raise ArtifactError(
                f"{model_file}: a one-at-a-time DQN needs observations of shape ({DECISION_OBS_SIZE},), "
                f"the model has {found}"
            )
        k = get_preset(target).num_slots if target is not None else None  # else any K: it is per item
        if run_preset is not None and get_preset(run_preset).num_slots != k:
            raise ArtifactError(
                f"{model_file}: trained on preset {run_preset!r} (K={get_preset(run_preset).num_slots}), "
                f"used on {target!r} (K={k})"
            )
    else:
        if len(found) != 1:
            raise ArtifactError(f"{model_file}: expected a flat observation space, the model has {found}")
        k = num_slots(found[0])
        if target is not None:
            expected = (get_preset(target).obs_size,)
            if found != expected:
                raise ArtifactError(
                    f"{model_file}: the model expects observations of shape {found} but preset {target!r} "
                    f"gives {expected}"
                    + (f" (it was trained on preset {run_preset!r})" if run_preset else "")
                )
    vec_normalize = None
    stats = model_file.parent / VECNORMALIZE_FILE
    if stats.is_file():
        try:
            vec_normalize = pickle.loads(stats.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
            raise ArtifactError(f"{stats}: cannot read the VecNormalize statistics ({exc})") from None
        vec_normalize.training = False
    name = f"{algo}:{run_dir.name if run_dir else model_file.stem}"
    return TrainedPolicy(model, algo, k, vec_normalize, name=name)
