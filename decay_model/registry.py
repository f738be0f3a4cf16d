"""What every decay model offers (:class:`DecayModel`), and the models an artifact can name.

:func:`decay_model.artifact.load_artifact` builds the model its card names from
:data:`REGISTRY`; :mod:`decay_model.models` registers the built-in ones when it is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, Self

import numpy as np
import torch

from decay_model.task import EvalTask


class DecayModel(Protocol):
    """What every decay model offers, so tables, artifacts and the simulator treat them alike."""

    name: str

    def fit(self, task: EvalTask) -> Any:
        """Fit on the task's training period (validation may select settings)."""
        ...

    def predict(self, task: EvalTask, period: str) -> np.ndarray:
        """P(re-engagement within the horizon) for each example of a period."""
        ...

    def state(self) -> dict[str, torch.Tensor]:
        """Every fitted number, as tensors."""
        ...

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state` returned."""
        ...

    def describe(self) -> dict[str, object]:
        """Readable summary of the fit for the card."""
        ...

    def config_dict(self) -> dict[str, Any]:
        """The constructor's settings, JSON-ready."""
        ...

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        """Build an unfitted model from :meth:`config_dict`'s output."""
        ...


REGISTRY: dict[str, Callable[[dict[str, Any]], DecayModel]] = {}
"""Model name (as a card names it) -> the factory that builds it unfitted from its config."""


def register_model(name: str, factory: Callable[[dict[str, Any]], DecayModel]) -> None:
    """Make a model type loadable by name (its ``from_config``)."""
    REGISTRY[name] = factory
