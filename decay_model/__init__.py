"""decay_model: behaviour logs in, fitted models of fading interest out.

Nothing here knows about Gymnasium or agents: the simulator (``envs``) reads the artifacts
this package writes. The names below load on first use (PEP 562), so that ``import
decay_model.errors`` or ``decay_model.cards`` pulls in neither torch nor pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_EXPORTS = {
    "MODELS": "decay_model.models",
    "BEHAVIORS": "decay_model.logs",
    "BehaviourLog": "decay_model.logs",
    "from_frame": "decay_model.logs",
    "load_log": "decay_model.logs",
    "DecayModel": "decay_model.artifact",
    "load_artifact": "decay_model.artifact",
    "register_model": "decay_model.artifact",
    "save_artifact": "decay_model.artifact",
    "ArtifactError": "decay_model.errors",
    "ConfigError": "decay_model.errors",
    "DataValidationError": "decay_model.errors",
    "DecaygymError": "decay_model.errors",
    "DecayFitConfig": "decay_model.exponential",
    "ExponentialDecay": "decay_model.exponential",
    "GlobalDecay": "decay_model.exponential",
    "Popularity": "decay_model.exponential",
    "fit_curve": "decay_model.exponential",
    "NeuralDecay": "decay_model.neural",
    "NeuralDecayConfig": "decay_model.neural",
    "EvalTask": "decay_model.task",
    "TaskConfig": "decay_model.task",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'decay_model' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
