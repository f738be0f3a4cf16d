"""Many users in one call: ``InterestDecayVectorEnv`` (its SB3 adapter is agents.sb3_vec_env).

It runs ``envs.dynamics.Simulator.step`` once per call for all N users (no Python loop
over users). User i of a vector env reset with seed s behaves exactly like
``InterestDecayEnv`` reset with seed s + i, episode after episode.
"""

from __future__ import annotations

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
from envs.env import check_action, make_config
from envs.population import Population


class InterestDecayVectorEnv(gym.vector.VectorEnv):
    """N independent users of ``InterestDecayEnv``, stepped together by one batched step.

    Spaces: ``single_observation_space`` / ``single_action_space`` are those of
    ``InterestDecayEnv``; ``observation_space`` is ``Box(0, 1, (N, K*F + U))`` and
    ``action_space`` ``MultiDiscrete`` of shape (N, K). Rewards, terminations and
    truncations have shape (N,).

    Autoreset: ``AutoresetMode.SAME_STEP``. A user who leaves (terminated) or reaches
    ``max_episode_steps`` (truncated) is replaced in the same call by the next episode of
    its stream; the returned observation is the new episode's first one, and the last
    observation of the ended episode is in ``info["final_obs"]`` (an object array, with
    ``info["_final_obs"]`` marking the users that ended) together with
    ``info["episode"]`` = {"r": return, "l": length} of the ended episodes.

    ``info`` (arrays of shape (N,)): ``clicks``, ``purchases``, ``slots_used``,
    ``click_reward``, ``purchase_reward``, ``slot_cost``, ``gap_h``, ``organic_events``,
    ``organic_purchases`` (the user's own browsing this visit, not rewarded); with
    ``hidden_info=True`` also ``true_interest`` and ``true_appeal`` of shape (N, K)
    (for the oracle baseline only).

    Seeding: ``reset(seed=s)`` gives user i the seed s + i (a list gives each user its own);
    ``reset()`` without a seed starts the next episode of every user's stream.

    Args:
        num_envs: N, the number of users stepped together.
        preset, config, artifact, population, **overrides: as for ``InterestDecayEnv``.
        max_episode_steps: truncation horizon; default ``config.horizon``.
        hidden_info: add the true interest to ``info`` (costs one gather per step).
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
        **overrides: Any,
    ) -> None:
        if not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.config = make_config(config, preset, artifact, **overrides)
        self.num_envs = int(num_envs)
        self.max_episode_steps = int(max_episode_steps or self.config.horizon)
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
            self.state.key[:] = self.np_random.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
            self.state.episode[:] = 0
        else:
            self.state.episode += np.uint32(1)
        self._seeded = True
        self._started = True
        rows = np.arange(n)
        self.sim.reset_users(self.state, rows)
        self.sim.observe(self.state, self._obs)
        self._returns[:] = 0
        return self._obs.copy(), {}

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
        info: dict[str, Any] = {
            "clicks": res.clicks,
            "purchases": res.purchases,
            "slots_used": res.slots_used,
            "click_reward": res.click_reward,
            "purchase_reward": res.purchase_reward,
            "slot_cost": res.slot_cost,
            "gap_h": res.gap_h,
            "organic_events": res.organic_events,
            "organic_purchases": res.organic_purchases,
        }
        if self.hidden_info:
            info["true_interest"], info["true_appeal"] = self.sim.hidden(state)
        done = (terminated | truncated).nonzero()[0]
        if done.size:
            final = np.empty(self.num_envs, dtype=object)
            final[done] = list(self._obs[done])  # rows of one copy
            mask = np.zeros(self.num_envs, bool)
            mask[done] = True
            info["final_obs"], info["_final_obs"] = final, mask
            info["episode"] = {
                "r": np.where(mask, self._returns, 0.0),
                "l": np.where(mask, state.visit, 0).astype(np.int64),
            }
            info["_episode"] = mask
            self._returns[done] = 0
            state.episode[done] += np.uint32(1)
            self.sim.reset_users(state, done)
            self.sim.observe(state, self._obs, rows=done)
        return self._obs.copy(), reward, terminated.copy(), truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release."""
