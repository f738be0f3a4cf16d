"""The decay models every comparison table shows, by name, in the order it shows them.

Importing this module imports the models (and torch, for ``NeuralDecay``); ``load_artifact``
imports it on demand, so reading a card or a population summary stays light.
"""

from __future__ import annotations

from decay_model.exponential import ExponentialDecay, GlobalDecay, Popularity
from decay_model.neural.model import NeuralDecay
from decay_model.registry import register_model

MODELS: dict[str, type] = {
    "popularity": Popularity,
    "global_decay": GlobalDecay,
    "exponential": ExponentialDecay,
    "neural": NeuralDecay,
}
for _name, _cls in MODELS.items():
    register_model(_name, _cls.from_config)
