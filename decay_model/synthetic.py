"""The built-in default log: synthetic behaviour with known decay rates.

Each (user, category) pair is a self-exciting point process (a Hawkes process
with an exponential kernel): a baseline rate μ plus a lift after every event
that fades as e^{-λ_c Δt}. Because λ_c is chosen here, a model fitted on this
log can be checked against the truth (the recovery test), and the package can
run its main job without any real data.
"""

from __future__ import annotations

import bisect
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
    cdf: list[float],
    weights: np.ndarray,
) -> tuple[list[float], list[int]]:
    """Ogata thinning of μ + κ Σ w_j e^{-λ(t - t_j)} on [0, horizon] hours.

    A behaviour is drawn by bisecting ``cdf`` with one uniform: the same draw as
    ``rng.choice(len(probs), p=probs)`` (which bisects the normalised cumulative sum the
    same way), at a fraction of its per-call cost.
    """
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
            b = bisect.bisect_right(cdf, rng.random())
            times.append(t)
            behaviours.append(b)
            excitation += weights[b]


@dataclass(frozen=True)
class _Dynamics:
    """What is drawn once per log, before any user: the categories' rates and popularity."""

    lambdas: np.ndarray  # true decay rate per hour of each category
    popularity: np.ndarray
    cdf: list[float]  # normalised cumulative behaviour probabilities
    weights: np.ndarray
    mean_weight: float
    category_ids: np.ndarray

    @classmethod
    def draw(cls, cfg: SyntheticConfig, rng: np.random.Generator) -> _Dynamics:
        """The first draws of ``rng`` for a log of ``cfg``."""
        lo, hi = cfg.lambda_range
        lambdas = np.exp(rng.uniform(math.log(lo), math.log(hi), cfg.n_categories))
        popularity = 1.0 / np.arange(1, cfg.n_categories + 1) ** cfg.popularity_exponent
        popularity /= popularity.sum()
        probs = np.asarray(cfg.behavior_probs, dtype=np.float64)
        cdf = probs.cumsum()
        cdf /= cdf[-1]
        weights = np.asarray(cfg.behavior_weights, dtype=np.float64)
        return cls(
            lambdas=lambdas,
            popularity=popularity,
            cdf=cdf.tolist(),
            weights=weights,
            mean_weight=float(probs @ weights),
            category_ids=1000 + np.arange(cfg.n_categories),
        )

    def truth(self) -> dict[int, float]:
        """category_id -> true decay rate per hour."""
        return {int(c): float(lam) for c, lam in zip(self.category_ids, self.lambdas, strict=True)}


EVENT_COLUMNS = ("user_id", "item_id", "category_id", "behavior", "timestamp")


def _draw_users(
    rng: np.random.Generator, cfg: SyntheticConfig, dyn: _Dynamics, first_user: int, n_users: int
) -> dict[str, np.ndarray]:
    """Events of users ``first_user .. first_user + n_users - 1``, drawn in that order from ``rng``.

    Users are drawn one after another from one generator, so drawing them in several calls
    gives the same events as one call: the chunked dataset writer relies on it.
    """
    horizon = cfg.days * 24.0
    parts: dict[str, list[np.ndarray]] = {c: [] for c in EVENT_COLUMNS}
    for user in range(first_user, first_user + n_users):
        k = min(cfg.n_categories, 1 + rng.poisson(cfg.categories_per_user - 1))
        chosen = rng.choice(cfg.n_categories, size=k, replace=False, p=dyn.popularity)
        user_multiplier = math.exp(rng.normal(0.0, cfg.user_rate_sd))
        for c in chosen:
            lam = float(dyn.lambdas[c]) * user_multiplier
            # κ = branching · λ / E[w], so each event triggers `branching` events on average.
            kappa = cfg.branching * lam / dyn.mean_weight
            mu = cfg.base_rate_per_day / 24.0 * math.exp(rng.normal(0.0, cfg.pair_rate_sd))
            times, behaviours = _hawkes_pair(rng, mu, lam, kappa, horizon, dyn.cdf, dyn.weights)
            n = len(times)
            category = int(dyn.category_ids[c])
            parts["user_id"].append(np.full(n, user, dtype=np.int64))
            parts["category_id"].append(np.full(n, category, dtype=np.int64))
            parts["item_id"].append(category * 10_000 + rng.integers(0, cfg.items_per_category, n))
            parts["behavior"].append(np.asarray(behaviours, dtype=np.int8))
            parts["timestamp"].append((cfg.start + np.floor(np.asarray(times) * 3600)).astype(np.int64))
    dtypes = {c: np.int8 if c == "behavior" else np.int64 for c in EVENT_COLUMNS}
    return {c: np.concatenate(v) if v else np.empty(0, dtypes[c]) for c, v in parts.items()}


def generate(config: SyntheticConfig | None = None, seed: int = 0) -> SyntheticLog:
    """Draw a synthetic log; the same config and seed give the same log."""
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(seed)
    dyn = _Dynamics.draw(cfg, rng)
    frame = pd.DataFrame(_draw_users(rng, cfg, dyn, 1, cfg.n_users))
    log = from_frame(frame, name=f"synthetic(seed={seed})")
    return SyntheticLog(log=log, true_lambda=dyn.truth(), config=cfg, seed=seed)


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
