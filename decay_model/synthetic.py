"""The built-in default log: synthetic behaviour with known decay rates.

Each (user, category) pair is a self-exciting point process (a Hawkes process
with an exponential kernel): a baseline rate μ plus a lift after every event
that fades as e^{-λ_c Δt}. Because λ_c is chosen here, a model fitted on this
log can be checked against the truth (the recovery test), and the package can
run its main job without any real data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from decay_model.atomic import atomic_write_bytes
from decay_model.errors import ConfigError
from decay_model.logs.load import from_frame, load_log
from decay_model.logs.schema import BEHAVIORS, BehaviourLog

# 2017-11-25 00:00 in UTC+8, the first day of the Taobao log, so both look alike.
DEFAULT_START = 1511539200


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and dynamics of a synthetic log.

    Attributes:
        n_users: users simulated.
        n_categories: categories; their popularity follows a Zipf law.
        popularity_exponent: exponent of that Zipf law (0: all equally popular).
        categories_per_user: mean number of categories a user is interested in.
        days: length of the log.
        lambda_range: true decay rates per hour are log-uniform in this range.
        base_rate_per_day: mean baseline rate μ of a (user, category) pair.
        branching: expected number of follow-up events one event triggers (< 1).
        user_rate_sd: sd of a user's log-multiplier on every decay rate.
        pair_rate_sd: sd of the log baseline rate of each (user, category) pair:
            unobserved heterogeneity that no per-category model can see.
        behavior_probs: probabilities of view, click, cart, fav, buy.
        behavior_weights: how much each behaviour lifts interest (view = 1).
        items_per_category: catalogue size per category.
    """

    n_users: int = 400
    n_categories: int = 24
    categories_per_user: float = 6.0
    days: float = 9.0
    lambda_range: tuple[float, float] = (0.03, 0.4)
    base_rate_per_day: float = 0.35
    branching: float = 0.75
    user_rate_sd: float = 0.2
    pair_rate_sd: float = 0.5
    behavior_probs: tuple[float, ...] = (0.84, 0.0, 0.08, 0.04, 0.04)
    behavior_weights: tuple[float, ...] = (1.0, 1.0, 2.0, 1.5, 1.0)
    items_per_category: int = 200
    popularity_exponent: float = 0.8
    start: int = DEFAULT_START

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.n_categories < 1 or self.items_per_category < 1:
            raise ConfigError("SyntheticConfig: n_users, n_categories, items_per_category must be >= 1")
        lo, hi = self.lambda_range
        if not 0 < lo <= hi:
            raise ConfigError(
                f"SyntheticConfig.lambda_range must satisfy 0 < lo <= hi, got {self.lambda_range}"
            )
        if not 0 <= self.branching < 1:
            raise ConfigError(f"SyntheticConfig.branching must be in [0, 1), got {self.branching}")
        if len(self.behavior_probs) != len(BEHAVIORS) or len(self.behavior_weights) != len(BEHAVIORS):
            raise ConfigError(f"SyntheticConfig: behaviour probs and weights need {len(BEHAVIORS)} entries")
        if not math.isclose(sum(self.behavior_probs), 1.0, abs_tol=1e-9):
            raise ConfigError(f"SyntheticConfig.behavior_probs must sum to 1, got {sum(self.behavior_probs)}")


@dataclass(frozen=True)
class SyntheticLog:
    """A generated log with the ground truth it was drawn from."""

    log: BehaviourLog
    true_lambda: dict[int, float]  # category_id -> decay rate per hour
    config: SyntheticConfig
    seed: int

    def card(self) -> dict[str, object]:
        """What generated this log, for run folders."""
        return {"generator": "decay_model.synthetic", "seed": self.seed, "config": asdict(self.config)}


def _hawkes_pair(
    rng: np.random.Generator,
    mu: float,
    lam: float,
    kappa: float,
    horizon: float,
    probs: np.ndarray,
    weights: np.ndarray,
) -> tuple[list[float], list[int]]:
    """Ogata thinning of μ + κ Σ w_j e^{-λ(t - t_j)} on [0, horizon] hours."""
    times: list[float] = []
    behaviours: list[int] = []
    t, excitation = 0.0, 0.0
    while True:
        bound = mu + kappa * excitation  # the intensity only falls until the next event
        wait = rng.exponential(1.0 / bound)
        t += wait
        if t >= horizon:
            return times, behaviours
        excitation *= math.exp(-lam * wait)
        if rng.random() * bound <= mu + kappa * excitation:
            b = int(rng.choice(len(probs), p=probs))
            times.append(t)
            behaviours.append(b)
            excitation += weights[b]


def generate(config: SyntheticConfig | None = None, seed: int = 0) -> SyntheticLog:
    """Draw a synthetic log; the same config and seed give the same log."""
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(seed)
    lo, hi = cfg.lambda_range
    lambdas = np.exp(rng.uniform(math.log(lo), math.log(hi), cfg.n_categories))
    popularity = 1.0 / np.arange(1, cfg.n_categories + 1) ** cfg.popularity_exponent
    popularity /= popularity.sum()
    probs = np.asarray(cfg.behavior_probs, dtype=np.float64)
    weights = np.asarray(cfg.behavior_weights, dtype=np.float64)
    mean_weight = float(probs @ weights)
    horizon = cfg.days * 24.0
    category_ids = 1000 + np.arange(cfg.n_categories)

    rows: dict[str, list] = {"user_id": [], "item_id": [], "category_id": [], "behavior": [], "timestamp": []}
    for user in range(cfg.n_users):
        k = min(cfg.n_categories, 1 + rng.poisson(cfg.categories_per_user - 1))
        chosen = rng.choice(cfg.n_categories, size=k, replace=False, p=popularity)
        user_multiplier = math.exp(rng.normal(0.0, cfg.user_rate_sd))
        for c in chosen:
            lam = float(lambdas[c]) * user_multiplier
            # κ = branching · λ / E[w], so each event triggers `branching` events on average.
            kappa = cfg.branching * lam / mean_weight
            mu = cfg.base_rate_per_day / 24.0 * math.exp(rng.normal(0.0, cfg.pair_rate_sd))
            times, behaviours = _hawkes_pair(rng, mu, lam, kappa, horizon, probs, weights)
            n = len(times)
            rows["user_id"].extend([user + 1] * n)
            rows["category_id"].extend([int(category_ids[c])] * n)
            rows["item_id"].extend(
                (int(category_ids[c]) * 10_000 + rng.integers(0, cfg.items_per_category, n)).tolist()
            )
            rows["behavior"].extend(behaviours)
            rows["timestamp"].extend(
                (cfg.start + np.floor(np.asarray(times) * 3600)).astype(np.int64).tolist()
            )
    frame = pd.DataFrame(rows)
    frame["behavior"] = frame["behavior"].astype(np.int8)
    log = from_frame(frame, name=f"synthetic(seed={seed})")
    truth = {int(category_ids[c]): float(lambdas[c]) for c in range(cfg.n_categories)}
    return SyntheticLog(log=log, true_lambda=truth, config=cfg, seed=seed)


def load_log_or_synthetic(
    logs: str | os.PathLike[str] | None,
    source: str | None = None,
    seed: int = 0,
    item_categories: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
) -> tuple[BehaviourLog, dict[str, Any], str]:
    """The log at ``logs``, else the built-in synthetic log of ``seed``.

    Returns the log, a description of it for a run folder's config.json, and a short label for
    the run folder's name, so every command that accepts either describes it the same way.
    """
    if logs:
        log = load_log(logs, source, item_categories=item_categories)
        return log, {"logs": logs, "source": log.report.source}, Path(logs).stem
    synthetic = generate(SyntheticConfig(), seed=seed)
    return synthetic.log, {"logs": "synthetic", **synthetic.card()}, "synthetic"


def write_synthetic_log(
    path: str | os.PathLike[str], config: SyntheticConfig | None = None, seed: int = 0
) -> SyntheticLog:
    """Write the synthetic log of ``seed`` as a canonical CSV (behaviour names, epoch seconds).

    Commands that need a log file (``decaygym-build-sim``) run on the built-in log this way; the
    same config and seed write the same bytes, so a rerun finds the same file. Written atomically.
    """
    synthetic = generate(config, seed=seed)
    frame = synthetic.log.events.copy()
    frame["behavior"] = [BEHAVIORS[b] for b in frame["behavior"]]
    atomic_write_bytes(Path(path), frame.to_csv(index=False).encode())
    return synthetic
