"""decay_model: behaviour logs in, fitted models of fading interest out.

Nothing here knows about Gymnasium or agents: the simulator (``envs``) reads
the artifacts this package writes.
"""

from decay_model.artifact import DecayModel, load_artifact, register_model, save_artifact
from decay_model.errors import ArtifactError, ConfigError, DataValidationError, DecaygymError
from decay_model.exponential import DecayFitConfig, ExponentialDecay, GlobalDecay, Popularity, fit_curve
from decay_model.logs import BEHAVIORS, BehaviourLog, from_frame, load_log
from decay_model.neural import NeuralDecay, NeuralDecayConfig
from decay_model.task import EvalTask, TaskConfig

#: The models every comparison table shows, in the order it shows them.
MODELS: dict[str, type] = {
    "popularity": Popularity,
    "global_decay": GlobalDecay,
    "exponential": ExponentialDecay,
    "neural": NeuralDecay,
}
for _name, _cls in MODELS.items():
    register_model(_name, _cls.from_config)

__all__ = [
    "BEHAVIORS",
    "MODELS",
    "ArtifactError",
    "BehaviourLog",
    "ConfigError",
    "DataValidationError",
    "DecayFitConfig",
    "DecayModel",
    "DecaygymError",
    "EvalTask",
    "ExponentialDecay",
    "GlobalDecay",
    "NeuralDecay",
    "NeuralDecayConfig",
    "Popularity",
    "TaskConfig",
    "fit_curve",
    "from_frame",
    "load_artifact",
    "load_log",
    "register_model",
    "save_artifact",
]
