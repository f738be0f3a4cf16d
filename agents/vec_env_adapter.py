"""The part every SB3 ``VecEnv`` over one ``InterestDecayVectorEnv`` shares.

The users of such an adapter are the rows of a single vector env, not N separate envs: an
attribute or method asked for "per user" is the vector env's one attribute or one call,
reported once per selected user. The adapters differ only in their spaces and in how a step
is taken (``agents.sb3_vec_env``: one action per slot; ``agents.wrappers``: one candidate at
a time).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from envs.vector import InterestDecayVectorEnv


class VectorEnvAdapter(VecEnv):
    """An SB3 ``VecEnv`` whose users all live in one ``InterestDecayVectorEnv`` (``self.venv``).

    Subclasses give the spaces SB3 sees and implement ``reset``, ``step_async`` and
    ``step_wait``; ``per_user_methods`` names the adapter's own methods that answer one row per
    user instead of forwarding to the vector env.

    Args:
        num_envs: N users; other keyword arguments go to ``InterestDecayVectorEnv``.
        venv: or an existing vector env to wrap.
    """

    per_user_methods: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        num_envs: int,
        venv: InterestDecayVectorEnv | None,
        observation_space: spaces.Space | None,
        action_space: spaces.Space | None,
        **kwargs: Any,
    ) -> None:
        self.venv = venv if venv is not None else InterestDecayVectorEnv(num_envs, **kwargs)
        self.render_mode = None
        super().__init__(
            self.venv.num_envs,
            self.venv.single_observation_space if observation_space is None else observation_space,
            self.venv.single_action_space if action_space is None else action_space,
        )

    def _reset_venv(self) -> NDArray[np.float32]:
        """Reset the vector env with the seeds from :meth:`seed`, if any; its observations."""
        seeds = self._seeds
        obs, _ = self.venv.reset(seed=None if seeds[0] is None else [int(s) for s in seeds])
        self._reset_seeds()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def close(self) -> None:
        """Close the wrapped vector env."""
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's attribute, once per selected user (the adapter's own per-user methods first)."""
        if attr_name in self.per_user_methods:
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

        The adapter's per-user methods give each selected user its own row.
        """
        if method_name in self.per_user_methods:
            rows = getattr(self, method_name)(*method_args, **method_kwargs)
            return [rows[i] for i in self._get_indices(indices)]
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """Users are not wrapped in gymnasium wrappers."""
        return [False for _ in self._get_indices(indices)]
