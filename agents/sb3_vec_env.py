"""Stable-Baselines3 glue for the simulator: the vector env as an SB3 ``VecEnv``.

It lives in ``agents`` because ``envs`` knows nothing about SB3 (see DESIGN.md): the
simulator is a plain Gymnasium env and vector env; this adapter lets SB3 train on
thousands of simulated users per step without a Python loop over users.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from agents.vec_env_adapter import VectorEnvAdapter
from agents.wrappers import action_masks
from envs.vector import InterestDecayVectorEnv

#: what the adapter answers per user itself instead of forwarding to the vector env
PER_USER_METHODS = ("action_masks",)


class InterestDecaySB3VecEnv(VectorEnvAdapter):
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

    per_user_methods = PER_USER_METHODS

    def __init__(self, num_envs: int = 1, venv: InterestDecayVectorEnv | None = None, **kwargs: Any) -> None:
        super().__init__(num_envs, venv, None, None, **kwargs)
        self._actions: NDArray[np.int64] | None = None
        self._last_obs: NDArray[np.float32] | None = None

    def reset(self) -> NDArray[np.float32]:
        """Reset all users (with the seeds from :meth:`seed`, if any)."""
        obs = self._reset_venv()
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
