"""envs: the Gymnasium simulator of shoppers whose interest decays.

``import envs`` registers ``decaygym/InterestDecay-v1`` (the ``default`` preset) and one id per
preset, ``decaygym/InterestDecay-<preset>-v1``, so that ``gymnasium.make`` and
``gymnasium.make_vec`` work. Episodes end at the config's ``horizon`` (the env truncates itself,
so ``gymnasium.make(id, horizon=5)`` is honoured); the registry sets no ``max_episode_steps``.
The vector env lives in ``envs.vector``. Importing ``envs`` loads what stepping needs (NumPy,
Numba, Gymnasium), not torch, pandas or pyarrow: the neural decay model loads only when
re-encoding is on.
"""

from __future__ import annotations

import gymnasium as gym

from envs.config import PRESETS, SimConfig, get_preset
from envs.env import InterestDecayEnv, ResetNeededError
from envs.population import Catalogue, Population

VERSION = 1
"""The dynamics' version: the ids' ``-v`` suffix (see the env docstring's version history)."""


def env_id(preset: str = "default") -> str:
    """The registered id of a preset (``default`` is ``decaygym/InterestDecay-v1``)."""
    get_preset(preset)
    return (
        f"decaygym/InterestDecay-v{VERSION}"
        if preset == "default"
        else f"decaygym/InterestDecay-{preset}-v{VERSION}"
    )


ENV_IDS: dict[str, str] = {env_id("default"): "default"}
ENV_IDS.update({f"decaygym/InterestDecay-{name}-v{VERSION}": name for name in PRESETS})

for _id, _preset in ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(
            id=_id,
            entry_point="envs.env:InterestDecayEnv",
            vector_entry_point="envs.vector:InterestDecayVectorEnv",
            kwargs={"preset": _preset},
        )

__all__ = [
    "ENV_IDS",
    "PRESETS",
    "VERSION",
    "Catalogue",
    "InterestDecayEnv",
    "Population",
    "ResetNeededError",
    "SimConfig",
    "env_id",
    "get_preset",
]
