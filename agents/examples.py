"""A team's own rule, as docs/policies.md writes one: importable as ``agents.examples:Cutoff``.

Every command that takes ``--policies`` accepts it by name, so the "your logs, your
strategy" commands run on a fresh install without writing a file first; a team's own module
(``myrules:Cutoff`` with its folder on ``PYTHONPATH``) works the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from agents.policy import RETIRE, SHOW, RulePolicy, block
from envs.layout import PREDICTED_INTEREST_BLOCK


class Cutoff(RulePolicy):
    """Show while the predicted interest reaches the cutoff, retire below it (no reduce)."""

    tuning_grid: ClassVar[dict[str, list[Any]]] = {"cutoff": [0.1, 0.2, 0.3, 0.4]}
    """Candidate cutoffs, scored on the training users when a benchmark tunes the rule."""

    def __init__(self, cutoff: float = 0.3) -> None:
        self.cutoff = cutoff

    def decide(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        """One action per candidate slot from its predicted interest."""
        return np.where(block(obs, PREDICTED_INTEREST_BLOCK) >= self.cutoff, SHOW, RETIRE).astype(np.int64)
