"""Stable-Baselines3 glue for the simulator: the vector env as an SB3 ``VecEnv``.

It lives in ``agents`` because ``envs`` knows nothing about SB3 (see DESIGN.md): the
simulator is a plain Gymnasium env and vector env; this adapter lets SB3 train on
thousands of simulated users per step without a Python loop over users.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from agents.wrappers import action_masks
from envs.vector import InterestDecayVectorEnv

#: what the adapter answers per user itself instead of forwarding to the vector env
PER_USER_METHODS = ("action_masks",)


class InterestDecaySB3VecEnv(VecEnv):
    """A Stable-Baselines3 ``VecEnv`` over ``InterestDecayVectorEnv``: thousands of users per step.

    SB3 semantics: ``step_wait`` returns (obs, rewards, dones, infos) with a list of one dict per
    user; an ended user's dict holds ``terminal_observation``, ``TimeLimit.truncated`` and
    ``episode`` ({"r", "l"}, as SB3's Monitor writes it, so ``ep_rew_mean`` is logged).
    ``TimeLimit.truncated`` is ``truncated and not terminated``, as SB3's own ``DummyVecEnv``
    sets it: a user who churned on the horizon's last visit is terminated, and SB3 bootstraps
    the value only of users cut off by the horizon.
    ``seed(s)`` gives user i the seed s + i at the next ``reset()``.

    Action masks for MaskablePPO: ``action_masks()`` gives (N, 3K) masks of the current
    observations (``agents.wrappers.action_masks``: only show on empty slots), and
    ``env_method("action_masks")`` / ``get_attr("action_masks")`` answer per user, as
    sb3_contrib's ``get_action_masks`` and ``is_masking_supported`` expect.

    Args:
        num_envs: N users; other keyword arguments go to ``InterestDecayVectorEnv``.
        venv: or an existing vector env to wrap.
    """

    def __init__(self, num_envs: int = 1, venv: InterestDecayVectorEnv | None = None, **kwargs: Any) -> None:
        self.venv = venv if venv is not None else InterestDecayVectorEnv(num_envs, **kwargs)
        self.render_mode = None
        super().__init__(
            self.venv.num_envs, self.venv.single_observation_space, self.venv.single_action_space
        )
        self._actions: NDArray[np.int64] | None = None
        self._last_obs: NDArray[np.float32] | None = None

    def reset(self) -> NDArray[np.float32]:
        """Reset all users (with the seeds from :meth:`seed`, if any)."""
        seeds = self._seeds
        obs, _ = self.venv.reset(seed=None if seeds[0] is None else [int(s) for s in seeds])
        self._reset_seeds()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._last_obs = obs
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions, shape (N, K)."""
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Step all users; see the class docstring for the infos."""
        if self._actions is None:
            raise RuntimeError("step_async() must be called before step_wait()")
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if "final_obs" in info:
            final, ep = info["final_obs"], info["episode"]
            for i in dones.nonzero()[0]:
                infos[i] = {
                    "terminal_observation": final[i],
                    "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                    "episode": {"r": float(ep["r"][i]), "l": int(ep["l"][i])},
                }
        self._last_obs = obs
        return obs, reward.astype(np.float32), dones, infos

    def action_masks(self) -> NDArray[np.bool_]:
        """(N, 3K) masks of the current observations for MaskablePPO; call after ``reset()``."""
        if self._last_obs is None:
            raise RuntimeError("action_masks() needs an observation: call reset() first")
        return action_masks(self._last_obs)

    def close(self) -> None:
        """Close the wrapped vector env."""
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's attribute, once per selected user (the adapter's own per-user methods first)."""
        if attr_name in PER_USER_METHODS:
            return [getattr(self, attr_name) for _ in self._get_indices(indices)]
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the (shared) vector env."""
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call a method of the vector env once and report its result for every selected user.

        The adapter's per-user methods (``action_masks``) give each selected user its own row.
        """
        if method_name in PER_USER_METHODS:
            rows = getattr(self, method_name)(*method_args, **method_kwargs)
            return [rows[i] for i in self._get_indices(indices)]
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """Users are not wrapped in gymnasium wrappers."""
        return [False for _ in self._get_indices(indices)]

    def _get_indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices
