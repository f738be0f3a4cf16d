"""NeuralDecay: a time-aware Transformer over a user's history with an explicit decay head.

The model (SASRec / TiSASRec family) reads a user's most recent events before
the cutoff T, every category, each embedded from its category (a vocabulary
of the training period's categories plus an out-of-vocabulary bucket), its
behaviour, and two log-scaled times: log(1 + hours since the previous event)
and log(1 + hours from the event to T). A Transformer encoder with a padding
mask turns them into context vectors. Each candidate category c of the user
(the categories the user engaged with before T: exactly the EvalTask
examples) queries that context with attention, and a head gives an explicit
decay for the pair:

    λ = λ_0 · exp(δ)                          (1/hour, clamped to [1e-4, 10])
    a = σ(z + β · log(ε + Σ_j w_{b_j} e^{-λ (T - t_j)}))   current interest
    b = σ(f)                                  floor

where δ, z, f come from the network (the Transformer's output plus, with
``linear_departures``, a linear term in the candidate's features fitted first
on its own) and the sum runs over the pair's own most recent events (as in
ExponentialDecay, so λ is identified by how the age of past events moves the
outcome, and keeps the meaning of a decay rate).
Interest at Δ after T is I(Δ) = b + (a − b) e^{-λΔ}; the probability of the
evaluation task is its **average over the horizon** h:

    P = (1/h) ∫_0^h I(Δ) dΔ = b + (a − b) · (1 − e^{-λh}) / (λh),

a convex combination of a and b, hence a probability in (0, 1). The horizon
average fades exactly like I itself: P(at T + Δ) = b + (P − b) e^{-λΔ}, so the
encoded ``interest`` (P), ``lam`` and ``floor`` obey the simulator's law on the
probability scale of the task (decay_model.population).

Training maximises the Bernoulli likelihood of the training period's labels,
batched by (user, cutoff) with padding, with AdamW and a warm-up + cosine
schedule; early stopping reads the validation period only. Every random draw
comes from a generator of the fit's own, seeded from the config's ``seed``: the
initial weights (CPU), the dropout masks (the model's device) and the batch
order; torch's global generator is neither read nor changed. A checkpoint
(weights, optimizer, scheduler, the shuffling and dropout generators' states,
config, epoch, best metric) is written atomically after every epoch, and
``resume=True`` continues it.

The modules: :mod:`~decay_model.neural.config` (sizes, training settings, presets),
:mod:`~decay_model.neural.network` (the torch network), :mod:`~decay_model.neural.train` (the
training loop), :mod:`~decay_model.neural.checkpoint` (the per-epoch checkpoint) and
:mod:`~decay_model.neural.model` (:class:`NeuralDecay`, which puts them together).
"""

from __future__ import annotations

from decay_model.neural.checkpoint import CHECKPOINT, CHECKPOINT_VERSION
from decay_model.neural.config import DEPARTURES, PRESETS, NeuralDecayConfig, preset
from decay_model.neural.model import NeuralDecay, default_device
from decay_model.neural.network import LAMBDA_RANGE, N_CAND_FEATURES, GeneratorDropout, NeuralDecayNet
from decay_model.neural.train import seeded_generators, stream_seed

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_VERSION",
    "DEPARTURES",
    "LAMBDA_RANGE",
    "N_CAND_FEATURES",
    "PRESETS",
    "GeneratorDropout",
    "NeuralDecay",
    "NeuralDecayConfig",
    "NeuralDecayNet",
    "default_device",
    "preset",
    "seeded_generators",
    "stream_seed",
]
