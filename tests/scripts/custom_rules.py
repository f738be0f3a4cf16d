"""Rules of one's own, imported by module path (``custom_rules:Name``) in the tests of custom policies."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from agents.policy import RETIRE, SHOW, GreedyPolicy, RandomPolicy, RulePolicy, block
from envs.config import SimConfig
from envs.layout import PREDICTED_INTEREST_BLOCK


class Cutoff(RulePolicy):
    """Show while the predicted interest reaches the cutoff, retire below it (never reduce)."""

    tuning_grid: ClassVar[dict[str, list[float]]] = {"cutoff": [0.6, 0.05, 0.3]}

    def __init__(self, cutoff: float = 0.3) -> None:
        if not 0 <= cutoff <= 1:
            raise ValueError(f"cutoff={cutoff!r} is not in [0, 1]")
        self.cutoff = float(cutoff)

    def decide(self, obs: NDArray[np.float32]) -> NDArray[np.integer]:
        return np.where(block(obs, PREDICTED_INTEREST_BLOCK) >= self.cutoff, SHOW, RETIRE)

    def __repr__(self) -> str:
        return f"Cutoff(cutoff={self.cutoff!r})"


def myopic(config: SimConfig, cost_aware: bool = False) -> GreedyPolicy:
    """A factory that needs the simulator's config (passed because the signature names it)."""
    return GreedyPolicy(config, cost_aware=cost_aware)


def seeded(seed: int, show: float = 0.5) -> RandomPolicy:
    """A factory of a rule that draws: it gets the run's seed because its signature names ``seed``."""
    return RandomPolicy(seed, (show, 1 - show, 0.0))


class NoPredict:
    """Not a policy: it has no predict."""

    def act(self, obs: object) -> None:
        return None


class OldPredict:
    """Not a policy: its predict does not take SB3's arguments."""

    def predict(self, observation: object) -> None:
        return None


NOT_CALLABLE = 3
