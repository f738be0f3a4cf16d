"""envs: the Gymnasium simulator of shoppers whose interest decays.

``import envs`` registers ``decaygym/InterestDecay-v0`` (the ``default`` preset) and one id per
preset, ``decaygym/InterestDecay-<preset>-v0``, each with ``max_episode_steps`` = the preset's
horizon, so that ``gymnasium.make`` works. The vector env lives in ``envs.vector``.
"""

from __future__ import annotations

import gymnasium as gym

from envs.config import PRESETS, SimConfig, get_preset
from envs.env import InterestDecayEnv, ResetNeededError
from envs.population import Catalogue, Population

ENV_IDS: dict[str, str] = {"decaygym/InterestDecay-v0": "default"}
ENV_IDS.update({f"decaygym/InterestDecay-{name}-v0": name for name in PRESETS})

for _id, _preset in ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(
            id=_id,
            entry_point="envs.env:InterestDecayEnv",
            vector_entry_point="envs.vector:InterestDecayVectorEnv",
            max_episode_steps=PRESETS[_preset].horizon,
            kwargs={"preset": _preset},
        )

__all__ = [
    "ENV_IDS",
    "PRESETS",
    "Catalogue",
    "InterestDecayEnv",
    "Population",
    "ResetNeededError",
    "SimConfig",
    "get_preset",
]
