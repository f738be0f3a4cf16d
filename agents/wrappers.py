"""Wrappers that fit the simulator to SB3 algorithms with other action needs: DQN and MaskablePPO.

**One candidate at a time (DQN).** DQN needs one discrete action, but a visit asks for K of
them (show / reduce / retire per candidate; 3^K joint actions). :class:`OneAtATime` (one env)
and :class:`OneAtATimeVecEnv` (many users, batched) turn one visit into K decisions: at
decision j the agent sees candidate j alone, with its context (:func:`decision_observation`),
and answers 0, 1 or 2 (``Discrete(3)``). After the K-th decision the K answers go to the env as
one action, the env steps once, and its reward is given at that K-th decision; the K - 1
decisions before it get reward 0, so the rewards of an episode sum to the env's return. The
episode ends (terminated or truncated) at the decision that completes its last visit.

Why this design: the Q-network is then one network shared by every candidate (per item, as the
per-item policy of ``agents.per_item_policy``), and the action space stays 3 instead of 3^K.
What it costs: a visit is K steps, so DQN's discount applies per decision (per-visit discount
is gamma^K: the hyperparameter files set gamma accordingly), and credit for a visit's reward
must flow back through K - 1 zero-reward steps. Decisions are asked for every slot, empty ones
included (the env ignores actions on empty slots), so a visit is always exactly K decisions.

The decision observation (``Box(0, 1, (35,))``, all values in [0, 1]):

| Index  | Feature                                                                        |
|--------|--------------------------------------------------------------------------------|
| 0-8    | candidate j's 9 features (blocks 0-8 of the env observation, block 6 = empty)  |
| 9-11   | the 3 user features                                                            |
| 12-20  | mean of each item feature over the non-empty candidates (0 if none)            |
| 21-29  | max of each item feature over the non-empty candidates (0 if none)             |
| 30     | progress through the visit: j / (K - 1) (the platform, not the slot, sets rank) |
| 31     | share of the other non-empty candidates with higher predicted interest         |
| 32-34  | decisions already taken this visit on non-empty slots: show, reduce, retire / K |

**Action masks (MaskablePPO).** :func:`action_masks` forbids acting on empty slots: only 0
(show, which the env ignores there) is allowed. Masks come from the observation itself (block
6), so they hold for any source of observations: the SB3 adapter
(``agents.sb3_vec_env.InterestDecaySB3VecEnv.action_masks``), :class:`ActionMasks` on one env,
or a stored observation. A retired slot is empty in the next observation until retrieval
refills it with a fresh candidate, so retired items are masked too.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from agents.policy import SHOW, as_batch, num_slots
from agents.vec_env_adapter import VectorEnvAdapter
from decay_model.errors import ConfigError
from envs.layout import EMPTY_BLOCK, NUM_ITEM_FEATURES, NUM_USER_FEATURES, PREDICTED_INTEREST_BLOCK
from envs.vector import InterestDecayVectorEnv

NUM_ACTIONS = 3
#: own features, user features, pool mean and max, position, interest rank, decisions so far
DECISION_OBS_SIZE = NUM_ITEM_FEATURES + NUM_USER_FEATURES + 2 * NUM_ITEM_FEATURES + 2 + NUM_ACTIONS
DECISION_SPACE = spaces.Box(0.0, 1.0, shape=(DECISION_OBS_SIZE,), dtype=np.float32)


def action_masks(observation: NDArray[np.floating]) -> NDArray[np.bool_]:
    """MaskablePPO masks of flat observations: (N, obs_dim) -> (N, 3K), or (obs_dim,) -> (3K,).

    Slot-major, as the logits of ``MultiDiscrete([3] * K)``: [slot 0: show, reduce, retire,
    slot 1: ...]. A non-empty slot allows all three actions, an empty slot only show.
    """
    obs, single = as_batch(observation)
    k = num_slots(obs.shape[1])
    empty = obs[:, EMPTY_BLOCK * k : (EMPTY_BLOCK + 1) * k] > 0.5  # (N, K)
    masks = np.ones((obs.shape[0], k, NUM_ACTIONS), dtype=bool)
    masks[:, :, 1:] = ~empty[:, :, None]
    masks = masks.reshape(obs.shape[0], k * NUM_ACTIONS)
    return masks[0] if single else masks


def decision_observation(
    observation: NDArray[np.floating], slot: int, decided: NDArray[np.integer]
) -> NDArray[np.float32]:
    """What the one-at-a-time agent sees when deciding ``slot`` (table in the module docstring).

    Args:
        observation: env observations, shape (N, K·9 + 3).
        slot: the candidate being decided, 0 <= slot < K.
        decided: decisions so far this visit, shape (N, K), -1 where not decided yet.

    Returns:
        Float32 array of shape (N, 35).
    """
    obs, _ = as_batch(observation)
    n, k = obs.shape[0], num_slots(obs.shape[1])
    items = obs[:, : k * NUM_ITEM_FEATURES].reshape(n, NUM_ITEM_FEATURES, k)  # (N, F, K)
    user = obs[:, k * NUM_ITEM_FEATURES :]
    empty = items[:, EMPTY_BLOCK, :] > 0.5  # (N, K)
    full = ~empty
    count = full.sum(axis=1)  # (N,)
    mean = np.where(full[:, None, :], items, 0.0).sum(axis=2) / np.maximum(count, 1)[:, None]
    mx = np.where(full[:, None, :], items, 0.0).max(axis=2)
    interest = items[:, PREDICTED_INTEREST_BLOCK, :]  # (N, K)
    higher = ((interest > interest[:, slot : slot + 1]) & full).sum(axis=1)
    rank = higher / np.maximum(count - full[:, slot], 1)
    before = decided[:, :slot]
    counts = [((before == a) & full[:, :slot]).sum(axis=1) / k for a in range(NUM_ACTIONS)]
    out = np.concatenate(
        [
            items[:, :, slot],
            user,
            mean,
            mx,
            np.full((n, 1), slot / max(k - 1, 1)),
            rank[:, None],
            np.stack(counts, axis=1),
        ],
        axis=1,
    )
    return out.astype(np.float32)


def _check_env_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> int:
    """K of an InterestDecayEnv-like pair of spaces; ConfigError otherwise."""
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
        raise ConfigError(f"expected a flat Box observation (K*9 + 3,), got {observation_space}")
    try:
        k = num_slots(int(observation_space.shape[0]))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(action_space, spaces.MultiDiscrete) or list(action_space.nvec) != [NUM_ACTIONS] * k:
        raise ConfigError(f"expected MultiDiscrete([3] * {k}) actions, got {action_space}")
    return k


class OneAtATime(gym.Wrapper[NDArray[np.float32], int, NDArray[np.float32], NDArray[np.int64]]):
    """One env, one candidate decision per step (see the module docstring); for DQN and RL Zoo.

    ``info`` is the env's at the step that completes a visit, empty at the other steps.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.k = _check_env_spaces(env.observation_space, env.action_space)
        self.observation_space = DECISION_SPACE
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self._obs: NDArray[np.float32] | None = None
        self._slot = 0
        self._decided = np.full((1, self.k), -1, dtype=np.int64)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Reset the env and ask for the first candidate of the first visit."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = np.asarray(obs, dtype=np.float32)
        self._slot = 0
        self._decided[:] = -1
        return decision_observation(self._obs, 0, self._decided)[0], info

    def step(self, action: int) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """Record the decision for the current candidate; step the env after the K-th."""
        if self._obs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        a = int(np.asarray(action).reshape(()))
        if not 0 <= a < NUM_ACTIONS:
            raise ValueError(f"action must be 0 (show), 1 (reduce) or 2 (retire), got {action!r}")
        self._decided[0, self._slot] = a
        if self._slot < self.k - 1:
            self._slot += 1
            return decision_observation(self._obs, self._slot, self._decided)[0], 0.0, False, False, {}
        obs, reward, terminated, truncated, info = self.env.step(self._decided[0].copy())
        self._obs = np.asarray(obs, dtype=np.float32)
        self._slot = 0
        self._decided[:] = -1
        return (
            decision_observation(self._obs, 0, self._decided)[0],
            float(reward),
            terminated,
            truncated,
            info,
        )


class ActionMasks(
    gym.Wrapper[NDArray[np.float32], NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]
):
    """One env with ``action_masks()`` of its last observation, for MaskablePPO on a single env."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        _check_env_spaces(env.observation_space, env.action_space)
        self._obs: NDArray[np.float32] | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Reset and remember the observation."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = np.asarray(obs, dtype=np.float32)
        return obs, info

    def step(
        self, action: NDArray[np.int64]
    ) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """Step and remember the observation."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._obs = np.asarray(obs, dtype=np.float32)
        return obs, float(reward), terminated, truncated, info

    def action_masks(self) -> NDArray[np.bool_]:
        """(3K,) mask of the last observation (see :func:`action_masks`)."""
        if self._obs is None:
            raise gym.error.ResetNeeded("call reset() before action_masks()")
        return action_masks(self._obs)


class OneAtATimeVecEnv(VectorEnvAdapter):
    """Many users deciding one candidate at a time, batched: an SB3 ``VecEnv`` for DQN.

    All N users decide slot j together; after slot K - 1 the ``InterestDecayVectorEnv`` steps
    once for everybody (same-step autoreset). An ended user's info holds ``terminal_observation``
    (the first decision observation of the final env observation), ``TimeLimit.truncated`` (the
    horizon was reached and the user did not leave) and ``episode`` ({"r": return, "l": length in
    decisions, K per visit}). ``seed(s)`` gives user i the seed s + i at the next ``reset()``.

    Args:
        num_envs: N users; other keyword arguments go to ``InterestDecayVectorEnv``.
        venv: or an existing vector env to wrap.
    """

    def __init__(self, num_envs: int = 1, venv: InterestDecayVectorEnv | None = None, **kwargs: Any) -> None:
        super().__init__(num_envs, venv, DECISION_SPACE, spaces.Discrete(NUM_ACTIONS), **kwargs)
        self.k = _check_env_spaces(self.venv.single_observation_space, self.venv.single_action_space)
        self._actions: NDArray[np.int64] | None = None
        self._env_obs: NDArray[np.float32] | None = None
        self._slot = 0
        self._decided = np.full((self.num_envs, self.k), -1, dtype=np.int64)

    def reset(self) -> NDArray[np.float32]:
        """Reset all users (with the seeds from :meth:`seed`, if any); the first decision of a visit."""
        obs = self._reset_venv()
        self._env_obs = obs
        self._slot = 0
        self._decided[:] = -1
        return decision_observation(obs, 0, self._decided)

    def step_async(self, actions: np.ndarray) -> None:
        """Store one decision per user, shape (N,)."""
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        """Record the decisions; after the K-th, step the vector env (see the class docstring)."""
        if self._actions is None or self._env_obs is None:
            raise RuntimeError("reset() and step_async() must be called before step_wait()")
        n = self.num_envs
        self._decided[:, self._slot] = self._actions
        self._actions = None
        if self._slot < self.k - 1:
            self._slot += 1
            obs = decision_observation(self._env_obs, self._slot, self._decided)
            return obs, np.zeros(n, np.float32), np.zeros(n, bool), [{} for _ in range(n)]
        env_obs, reward, terminated, truncated, info = self.venv.step(self._decided.copy())
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        if "final_obs" in info:
            final, ep = info["final_obs"], info["episode"]
            fresh = np.full((1, self.k), -1, dtype=np.int64)
            for i in dones.nonzero()[0]:
                infos[i] = {
                    "terminal_observation": decision_observation(final[i][None, :], 0, fresh)[0],
                    "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                    "episode": {"r": float(ep["r"][i]), "l": int(ep["l"][i]) * self.k},
                }
        self._env_obs = env_obs
        self._slot = 0
        self._decided[:] = -1
        return decision_observation(env_obs, 0, self._decided), reward.astype(np.float32), dones, infos


def one_at_a_time_predict(
    predict_one: Any, observation: NDArray[np.floating], deterministic: bool = True
) -> NDArray[np.int64]:
    """(N, K) actions from a one-at-a-time model: K calls of ``predict_one(decision_obs, deterministic)``.

    ``predict_one`` maps (N, 35) decision observations to (N,) actions (e.g. a DQN's
    ``predict``, first element). Empty slots get show (0), as the rule policies give them.
    """
    obs, _ = as_batch(observation)
    k = num_slots(obs.shape[1])
    decided = np.full((obs.shape[0], k), -1, dtype=np.int64)
    for slot in range(k):
        decided[:, slot] = np.asarray(predict_one(decision_observation(obs, slot, decided), deterministic))
    empty = obs[:, EMPTY_BLOCK * k : (EMPTY_BLOCK + 1) * k] > 0.5
    return np.where(empty, SHOW, decided).astype(np.int64)
