"""Many users in one call: ``InterestDecayVectorEnv`` (its SB3 adapter is agents.sb3_vec_env).

It runs ``envs.dynamics.Simulator.step`` once per call for all N users (no Python loop
over users). User i of a vector env reset with seed s behaves exactly like
``InterestDecayEnv`` reset with seed s + i, episode after episode.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from numpy.typing import NDArray

from envs import rng
from envs.config import SimConfig
from envs.dynamics import SimState, Simulator
from envs.env import HIDDEN_INFO_KEYS, check_action, check_time_limit, make_config, step_info
from envs.population import Population


class InterestDecayVectorEnv(gym.vector.VectorEnv):
    """N independent users of ``InterestDecayEnv``, stepped together by one batched step.

    Spaces: ``single_observation_space`` / ``single_action_space`` are those of
    ``InterestDecayEnv``; ``observation_space`` is ``Box(0, 1, (N, K*F + U))`` and
    ``action_space`` ``MultiDiscrete`` of shape (N, K). Rewards, terminations and
    truncations have shape (N,).

    Termination and truncation follow Gymnasium's vector envs (``SyncVectorEnv`` over envs
    wrapped in ``TimeLimit``): ``terminations[i]`` is True when user i churned on this visit,
    ``truncations[i]`` when this visit was the episode's ``max_episode_steps``-th, whether or
    not the user also churned on it. Only ``truncations & ~terminations`` may be bootstrapped
    (the SB3 adapter reports exactly that as ``TimeLimit.truncated``).

    Autoreset: ``AutoresetMode.SAME_STEP``. A user whose episode ended is replaced in the same
    call by the next episode of its stream; the returned observation is the new episode's
    first one. The reward and the visit's own info (``clicks`` ... ``organic_purchases``)
    belong to the visit just taken; ``visit`` and the hidden truth belong to the returned
    observation (0 and the new user's for a reset user). For the ended users, as Gymnasium
    does: ``info["final_obs"]`` (an object array, ``info["_final_obs"]`` marking them),
    ``info["final_info"]`` (the info of their last visit, arrays of shape (N,), including
    ``visit`` and, with ``hidden_info``, the hidden truth of their last observation;
    ``info["_final_info"]`` marks them) and ``info["episode"]`` = {"r": return, "l":
    length} (``info["_episode"]``).

    ``info`` holds the keys of the single env's info (``envs.env.STEP_INFO_KEYS``) as arrays of
    shape (N,); with ``hidden_info=True``, ``reset`` and ``step`` add ``true_interest`` and
    ``true_appeal`` of shape (N, K) (for the oracle baseline only).

    Seeding: ``reset(seed=s)`` gives user i the seed s + i (a list gives each user its own);
    ``reset()`` without a seed starts the next episode of every user's stream.

    Args:
        num_envs: N, the number of users stepped together.
        preset, config, artifact, population, sim, **overrides: as for ``InterestDecayEnv``.
        max_episode_steps: truncation horizon; default ``config.horizon``; more is refused.
        hidden_info: add the hidden truth to ``info`` (costs one gather per step).
    """

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}  # noqa: RUF012

    def __init__(
        self,
        num_envs: int = 1,
        preset: str | None = None,
        config: SimConfig | None = None,
        artifact: str | None = None,
        population: Population | None = None,
        max_episode_steps: int | None = None,
        hidden_info: bool = False,
        render_mode: str | None = None,
        sim: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> None:
        if not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.config = make_config(config, preset, artifact, sim, **overrides)
        self.num_envs = int(num_envs)
        self.max_episode_steps = check_time_limit(max_episode_steps, self.config)
        self.hidden_info = hidden_info
        self.render_mode = render_mode
        self.sim = Simulator(self.config, population)
        k = self.config.num_slots
        self.single_action_space = spaces.MultiDiscrete(np.full(k, 3, dtype=np.int64))
        self.single_observation_space = spaces.Box(0.0, 1.0, shape=(self.config.obs_size,), dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.state = SimState.allocate(self.num_envs, self.config)
        self._obs = np.zeros((self.num_envs, self.config.obs_size), np.float32)
        self._returns = np.zeros(self.num_envs, np.float64)
        self._seeded = False
        self._started = False

    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Start every user's next episode (a new user stream per user when seeded)."""
        super().reset(seed=seed if isinstance(seed, int | None) else None)
        n = self.num_envs
        if seed is not None:
            seeds = [int(seed) + i for i in range(n)] if isinstance(seed, int | np.integer) else list(seed)
            if len(seeds) != n:
                raise ValueError(f"reset(seed=...) got {len(seeds)} seeds for {n} users")
            self.state.key[:] = [rng.key_from_seed(s) for s in seeds]
            self.state.episode[:] = 0
        elif not self._seeded:
            self.state.key[:] = self.np_random.integers(0, 2**64, size=n, dtype=np.uint64)
            self.state.episode[:] = 0
        else:
            self.state.episode += np.uint64(1)
        self._seeded = True
        self._started = True
        rows = np.arange(n)
        self.sim.reset_users(self.state, rows)
        self.sim.observe(self.state, self._obs)
        self._returns[:] = 0
        info: dict[str, Any] = {"visit": np.zeros(n, np.int64)}
        self._add_hidden(info)
        return self._obs.copy(), info

    def step(
        self, actions: NDArray[np.int64]
    ) -> tuple[
        NDArray[np.float32], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], dict[str, Any]
    ]:
        """One visit of every user; ended users are reset in the same call (see the class docstring)."""
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before step()")
        act = check_action(actions, (self.num_envs, self.config.num_slots))
        state = self.state
        res = self.sim.step(state, act, obs=self._obs)
        terminated = res.churned
        truncated = state.visit >= self.max_episode_steps  # as TimeLimit: also when terminated
        reward = res.reward.astype(np.float64)
        self._returns += reward
        info = step_info(res, state.visit)
        done = (terminated | truncated).nonzero()[0]
        if done.size:
            mask = np.zeros(self.num_envs, bool)
            mask[done] = True
            final = np.empty(self.num_envs, dtype=object)
            final[done] = list(self._obs[done])  # rows of one copy
            final_info = {key: value.copy() for key, value in info.items()}
            self._add_hidden(final_info)
            info["final_obs"], info["_final_obs"] = final, mask
            info["final_info"], info["_final_info"] = final_info, mask
            info["episode"] = {
                "r": np.where(mask, self._returns, 0.0),
                "l": np.where(mask, state.visit, 0).astype(np.int64),
            }
            info["_episode"] = mask
            self._returns[done] = 0
            state.episode[done] += np.uint64(1)
            self.sim.reset_users(state, done)
            self.sim.observe(state, self._obs, rows=done)
            info["visit"][done] = 0
        self._add_hidden(info)
        return self._obs.copy(), reward, terminated.copy(), truncated, info

    def _add_hidden(self, info: dict[str, Any]) -> None:
        """The hidden truth of the current observations (the oracle's), when asked for."""
        if self.hidden_info:
            hidden = self.sim.hidden(self.state)
            info.update(zip(HIDDEN_INFO_KEYS, hidden, strict=True))

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release."""
