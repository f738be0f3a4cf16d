"""ExponentialDecay, the closed form i(t) = e^{-λt}, and the two trivial baselines.

The interest of user u in category c at time T is a floor plus a
behaviour-weighted sum of the user's past events in c, each fading as e^{-λ Δt}:

    i(u, c, T) = b_{u,c} + Σ_j w_{b_j} · exp(-λ_{u,c} · (T - t_j))     (Δt in hours)
    P(u engages with c within h after T) = σ(α + β · log i(u, c, T))

with w_view = 1 fixed (the scale), λ_{u,c} = λ_0 · exp(δ_c + η_u) and
b_{u,c} = b_0 · exp(φ_c + ψ_u). The shared parameters (α, β, b_0, w, λ_0) are
fitted by maximum likelihood on the training period. Each category's and each
user's offsets are penalised maximum-likelihood estimates shrunk toward zero
by empirical Bayes: a normal prior whose variance is fitted to the estimates'
spread by marginal likelihood, with cluster-robust standard errors because one
(user, category) pair recurs at every cutoff. A category or user with little
data so keeps the rate and floor of the level above it. Interest drifts from
week to week, so how much of the training-period spread carries over is then
chosen on the validation period (a prior scale per effect, from a small grid).

The same module fits the closed form directly to observed (time, interest)
pairs by least squares: :func:`fit_curve`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import ClassVar, Self

import numpy as np
import pandas as pd
import torch
from scipy.optimize import curve_fit, minimize_scalar

from decay_model.errors import ConfigError, DataValidationError
from decay_model.logs.schema import BEHAVIORS, BehaviourLog
from decay_model.metrics import log_loss
from decay_model.task import EvalTask, History

DTYPE = torch.float64


@dataclass(frozen=True)
class CurveFit:
    """A least-squares fit of i(t) = A · e^{-λt} to observed points."""

    lam: float
    amplitude: float
    rmse: float
    residuals: np.ndarray

    @property
    def half_life(self) -> float:
        """Time for interest to halve: ln 2 / λ."""
        return math.log(2) / self.lam


def fit_curve(t: np.ndarray, y: np.ndarray, *, amplitude: bool = False) -> CurveFit:
    """Least-squares fit of e^{-λt} (or A·e^{-λt} with ``amplitude``) to (t, y) pairs.

    Fitted in the original scale (not on log y), so the residuals are those of
    the interest values themselves.
    """
    t = np.asarray(t, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1 or len(t) < (2 if amplitude else 1):
        raise ConfigError(
            f"fit_curve needs matching 1-D t and y with enough points, got {t.shape}, {y.shape}"
        )
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        raise ConfigError("fit_curve: t and y must be finite")
    positive = y > 0
    # Start from the log-linear fit, then refine by nonlinear least squares.
    if positive.sum() >= 2:
        slope, intercept = np.polyfit(t[positive], np.log(y[positive]), 1)
        lam0, a0 = max(-slope, 1e-6), math.exp(intercept)
    else:
        lam0, a0 = 1.0, 1.0
    if amplitude:
        (a, lam), _ = curve_fit(lambda x, a, k: a * np.exp(-k * x), t, y, p0=(a0, lam0), maxfev=10_000)
    else:
        (lam,), _ = curve_fit(lambda x, k: np.exp(-k * x), t, y, p0=(lam0,), maxfev=10_000)
        a = 1.0
    residuals = y - a * np.exp(-lam * t)
    return CurveFit(
        lam=float(lam), amplitude=float(a), rmse=float(np.sqrt(np.mean(residuals**2))), residuals=residuals
    )


@dataclass(frozen=True)
class DecayFitConfig:
    """Knobs of the fit.

    Attributes:
        max_events: only each example's most recent events in the category
            count; older ones have decayed to nothing and only cost time.
        max_iter: L-BFGS iterations of each maximum-likelihood fit.
        raw_prior_sd: weak prior sd that keeps raw offsets finite before
            empirical Bayes shrinks them.
        shrinkage_grid: factors on the users' empirical-Bayes prior variance
            tried on the validation period; empty keeps pure EB.
        shrinkage_tolerance: a less-shrunk factor must lower validation
            log-loss by this relative margin to be chosen (parsimony).
    """

    max_events: int = 64
    max_iter: int = 500
    raw_prior_sd: float = 2.0
    shrinkage_grid: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
    shrinkage_tolerance: float = 1e-3

    def __post_init__(self) -> None:
        if self.max_events < 1 or self.max_iter < 1 or self.raw_prior_sd <= 0:
            raise ConfigError(
                f"DecayFitConfig: max_events, max_iter and raw_prior_sd must be positive: {self}"
            )
        if any(f < 0 for f in self.shrinkage_grid) or self.shrinkage_tolerance < 0:
            raise ConfigError(f"DecayFitConfig: shrinkage factors and tolerance must be >= 0: {self}")


@dataclass
class RandomEffect:
    """One offset per id of a column, shrunk toward 0 by empirical Bayes.

    ``raw`` are penalised maximum-likelihood offsets and ``se2`` their
    cluster-robust variances; ``values`` are the posterior means under a
    normal prior of variance ``scale * prior_sd**2``.
    """

    column: str  # "category_id" or "user_id"
    kind: str  # where the offset goes: "rate" (log λ), "floor" (log b) or "level" (the logit)
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    values: np.ndarray = field(default_factory=lambda: np.empty(0))
    raw: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    se2: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    prior_sd: float = 0.0
    scale: float = 1.0

    def shrink(self, scale: float) -> None:
        """Posterior means under the empirical-Bayes prior variance times ``scale``."""
        self.scale = scale
        tau2 = scale * self.prior_sd**2
        self.values = self.raw * tau2 / (tau2 + self.se2) if tau2 > 0 else np.zeros_like(self.raw)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Offsets for the given ids; 0 (the population centre) for ids never seen in training."""
        if not len(self.ids):
            return np.zeros(len(ids))
        pos = np.clip(np.searchsorted(self.ids, ids), 0, len(self.ids) - 1)
        return np.where(self.ids[pos] == ids, self.values[pos], 0.0)

    @property
    def key(self) -> str:
        """Name of the effect in artifacts and cards, e.g. ``category_id.rate``."""
        return f"{self.column}.{self.kind}"


KINDS = ("rate", "floor", "level")


class _DecayCore:
    """Shared machinery of the global and per-category decay models."""

    name: ClassVar[str]
    effects_spec: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, config: DecayFitConfig | None = None) -> None:
        self.config = config or DecayFitConfig()
        self.alpha = 0.0
        self.beta = 1.0
        self.log_b0 = math.log(0.1)
        self.log_w = np.zeros(len(BEHAVIORS))  # view's weight stays 1: it sets the scale
        self.log_lambda0 = math.log(0.1)
        self.effects = [RandomEffect(col, kind) for col, kind in self.effects_spec]

    # -- prediction ---------------------------------------------------------------------
    def _offsets(self, ex: pd.DataFrame, kind: str, skip: Sequence[RandomEffect] = ()) -> np.ndarray:
        total = np.zeros(len(ex))
        for eff in self.effects:
            if eff.kind == kind and all(eff is not other for other in skip):
                total += eff.lookup(ex[eff.column].to_numpy())
        return total

    def _offset_tensors(self, ex: pd.DataFrame, skip: Sequence[RandomEffect] = ()) -> dict[str, torch.Tensor]:
        return {kind: torch.as_tensor(self._offsets(ex, kind, skip)) for kind in KINDS}

    def log_rates(self, user_ids: np.ndarray, category_ids: np.ndarray) -> np.ndarray:
        """Log λ per (user, category) in 1/hours; unseen ids fall back to the level above."""
        ex = pd.DataFrame({"user_id": user_ids, "category_id": category_ids})
        return self.log_lambda0 + self._offsets(ex, "rate")

    def category_rates(self) -> dict[int, float]:
        """λ_c per hour of every category seen in training, for a user at the population centre."""
        for eff in self.effects:
            if eff.key == "category_id.rate":
                return {
                    int(c): math.exp(self.log_lambda0 + d) for c, d in zip(eff.ids, eff.values, strict=True)
                }
        return {}

    def encode(self, log: BehaviourLog, at: int | None = None) -> pd.DataFrame:
        """Interest now, decay rate and floor of every (user, category) pair with events before ``at``.

        ``at`` defaults to just after the last event. Interest and floor are on
        the probability scale of the evaluation task (see decay_model.population).
        """
        at = log.t_max + 1 if at is None else int(at)
        ev = log.events.loc[log.events["timestamp"] < at, ["user_id", "category_id", "behavior", "timestamp"]]
        if ev.empty:
            raise DataValidationError(f"{log.report.path}: no events before {at}; nothing to encode")
        ev = ev.sort_values(
            ["user_id", "category_id", "timestamp"], ascending=[True, True, False], kind="stable"
        )
        ev = ev[ev.groupby(["user_id", "category_id"]).cumcount() < self.config.max_events]
        pairs = ev.groupby(["user_id", "category_id"], sort=True).size().rename("n_events").reset_index()
        pair_index = pairs.set_index(["user_id", "category_id"]).index
        example = pair_index.get_indexer(pd.MultiIndex.from_frame(ev[["user_id", "category_id"]]))
        hist = History(
            example=example.astype(np.int64),
            age_hours=((at - ev["timestamp"].to_numpy()) / 3600.0).astype(np.float64),
            behavior=ev["behavior"].to_numpy().astype(np.int8),
        )
        off = self._offset_tensors(pairs)
        shared = self._shared_tensors()
        with torch.no_grad():
            interest = torch.sigmoid(self._logit(hist, off, **shared)).numpy()
            faded = History(np.empty(0, np.int64), np.empty(0), np.empty(0, np.int8))
            floor = torch.sigmoid(self._logit(faded, off, **shared)).numpy()
        lam = np.exp(self.log_lambda0 + off["rate"].numpy())
        return pairs.assign(interest=interest, lam=lam, floor=floor)[
            ["user_id", "category_id", "interest", "lam", "floor", "n_events"]
        ]

    @staticmethod
    def _logit(
        hist: History,
        off: dict[str, torch.Tensor],
        log_lam0: torch.Tensor,
        alpha: torch.Tensor,
        beta: torch.Tensor,
        log_b0: torch.Tensor,
        log_w: torch.Tensor,
    ) -> torch.Tensor:
        ex = torch.as_tensor(hist.example)
        age = torch.as_tensor(hist.age_hours, dtype=DTYPE)
        beh = torch.as_tensor(hist.behavior.astype(np.int64))
        contrib = torch.exp(log_w[beh] - torch.exp(log_lam0 + off["rate"][ex]) * age)
        s = torch.zeros(len(off["rate"]), dtype=DTYPE).index_add_(0, ex, contrib)
        return alpha + off["level"] + beta * torch.log(torch.exp(log_b0 + off["floor"]) + s)

    def _shared_tensors(self) -> dict[str, torch.Tensor]:
        return {
            "log_lam0": torch.tensor(self.log_lambda0, dtype=DTYPE),
            "alpha": torch.tensor(self.alpha, dtype=DTYPE),
            "beta": torch.tensor(self.beta, dtype=DTYPE),
            "log_b0": torch.tensor(self.log_b0, dtype=DTYPE),
            "log_w": torch.tensor(self.log_w, dtype=DTYPE),
        }

    def predict(self, task: EvalTask, period: str) -> np.ndarray:
        """P(re-engagement within the horizon) for every example of a period."""
        ex = task.examples(period)
        hist = task.history(period, self.config.max_events)
        with torch.no_grad():
            logit = self._logit(hist, self._offset_tensors(ex), **self._shared_tensors())
        return torch.sigmoid(logit).numpy()

    # -- fitting ------------------------------------------------------------------------
    def _fit_ml(self, hist: History, y: torch.Tensor, ex: pd.DataFrame, column: str | None = None) -> None:
        """Maximum likelihood of the shared parameters, and of one column's raw offsets.

        A column's offsets (a category's rate, floor and level) are fitted
        together with the shared parameters, not kind by kind: they all move
        the same re-engagement rate, and coordinate-wise fits of such
        near-collinear blocks stall far from the optimum. A weak ridge
        penalty keeps the raw offsets of ids with little data finite.
        """
        shared = {k: v.clone().requires_grad_(True) for k, v in self._shared_tensors().items()}
        free = [eff for eff in self.effects if eff.column == column]
        fixed = self._offset_tensors(ex, skip=free)
        groups = []
        for eff in free:
            eff.ids, group = np.unique(ex[eff.column].to_numpy(), return_inverse=True)
            start = eff.raw if len(eff.raw) == len(eff.ids) else np.zeros(len(eff.ids))
            groups.append((eff, torch.tensor(start, dtype=DTYPE, requires_grad=True), torch.as_tensor(group)))
        params = list(shared.values()) + [theta for _, theta, _ in groups]
        opt = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=self.config.max_iter,
            tolerance_grad=1e-9,
            tolerance_change=1e-12,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            off = dict(fixed)
            penalty = torch.zeros((), dtype=DTYPE)
            for eff, theta, group in groups:
                off[eff.kind] = off[eff.kind] + theta[group]
                penalty = penalty + 0.5 * (theta**2).sum() / self.config.raw_prior_sd**2
            log_w = torch.cat([torch.zeros(1, dtype=DTYPE), shared["log_w"][1:].clamp(-8, 8)])
            logit = self._logit(
                hist, off, **{**shared, "log_w": log_w, "log_b0": shared["log_b0"].clamp(-12, 5)}
            )
            loss = (_nll(logit, y) + penalty) / len(y)
            loss.backward()
            return loss

        opt.step(closure)
        self.log_lambda0 = float(shared["log_lam0"].detach())
        self.alpha = float(shared["alpha"].detach())
        self.beta = float(shared["beta"].detach())
        self.log_b0 = float(shared["log_b0"].detach().clamp(-12, 5))
        self.log_w = np.concatenate([[0.0], shared["log_w"].detach()[1:].clamp(-8, 8).numpy()])
        for eff, theta, _ in groups:
            eff.raw = theta.detach().numpy().copy()
            eff.values = eff.raw.copy()

    def _empirical_bayes(
        self, column: str, hist: History, y: torch.Tensor, ex: pd.DataFrame, cluster: np.ndarray
    ) -> None:
        """Cluster-robust variances of one column's raw offsets, then each kind's prior.

        Every example belongs to one id of the column, so the curvature over
        the column's offsets is block-diagonal, one K x K block per id for its
        K kinds. The kinds of an id are near-collinear, so an offset's variance
        is read from the inverted block, not from its own curvature alone.
        Scores summed by (user, category) pair make it cluster-robust: a pair
        recurs at every cutoff with overlapping histories and is not
        independent evidence. The prior sd of each kind then maximises the
        marginal likelihood of the raw offsets (normal-normal empirical Bayes).
        """
        effs = [eff for eff in self.effects if eff.column == column]
        k, n_ids = len(effs), len(effs[0].ids)
        group = np.searchsorted(effs[0].ids, ex[column].to_numpy())
        off = self._offset_tensors(ex)
        z = [torch.zeros(len(y), dtype=DTYPE, requires_grad=True) for _ in effs]
        for eff, zi in zip(effs, z, strict=True):
            off[eff.kind] = off[eff.kind] + zi
        loss = _nll(self._logit(hist, off, **self._shared_tensors()), y)
        scores = torch.autograd.grad(loss, z, create_graph=True)
        hess = np.zeros((n_ids, k, k))
        for i, score in enumerate(scores):
            rows = torch.autograd.grad(score.sum(), z, retain_graph=True)
            for j, row in enumerate(rows):
                hess[:, i, j] = np.bincount(group, weights=row.detach().numpy(), minlength=n_ids)
        hess = 0.5 * (hess + hess.transpose(0, 2, 1)) + np.eye(k) / self.config.raw_prior_sd**2
        eigval, eigvec = np.linalg.eigh(hess)
        inv = (eigvec / np.maximum(eigval, 1e-8)[:, None, :]) @ eigvec.transpose(0, 2, 1)
        pair_scores = np.stack([np.bincount(cluster, weights=sc.detach().numpy()) for sc in scores], axis=1)
        id_of_pair = np.zeros(len(pair_scores), dtype=np.int64)
        id_of_pair[cluster] = group
        meat = np.zeros((n_ids, k, k))
        np.add.at(meat, id_of_pair, pair_scores[:, :, None] * pair_scores[:, None, :])
        sandwich = inv @ meat @ inv
        for j, eff in enumerate(effs):
            eff.se2 = np.maximum(inv[:, j, j], sandwich[:, j, j])
            eff.prior_sd = math.sqrt(_marginal_tau2(eff.raw, eff.se2))
            eff.shrink(1.0)

    def _tune_shrinkage(self, task: EvalTask, hist: History, y: torch.Tensor, ex: pd.DataFrame) -> None:
        """Choose the users' prior-variance factor on the validation period (never on test).

        Empirical Bayes measures how much users differ inside the training
        period, but a user's pace drifts from day to day and a handful of
        events is weak evidence, so less of that spread may carry over.
        Categories are left at pure empirical Bayes: they pool many users.
        Each factor in a small grid gets its own refit of the shared
        parameters and is scored by validation log-loss; the most-shrunk
        factor within ``shrinkage_tolerance`` of the best loss wins.
        """
        effs = [eff for eff in self.effects if eff.column == "user_id"]
        if not effs or not self.config.shrinkage_grid:
            return
        y_valid = task.labels("valid")
        grid = sorted(self.config.shrinkage_grid)
        start = self._shared_tensors()
        losses = []
        for factor in grid:
            self._set_shared(start)
            for eff in effs:
                eff.shrink(factor)
            self._fit_ml(hist, y, ex)
            losses.append(log_loss(y_valid, self.predict(task, "valid")))
        bound = min(losses) * (1 + self.config.shrinkage_tolerance)
        chosen = next(f for f, loss in zip(grid, losses, strict=True) if loss <= bound)
        self._set_shared(start)
        for eff in effs:
            eff.shrink(chosen)
        self._fit_ml(hist, y, ex)

    def fit(self, task: EvalTask) -> _DecayCore:
        """Fit on the training period; validation only picks the shrinkage, test is never read."""
        ex = task.examples("train")
        hist = task.history("train", self.config.max_events)
        y = torch.tensor(ex["label"].to_numpy(), dtype=DTYPE)
        self._fit_ml(hist, y, ex)
        if not self.effects:
            return self
        cluster = np.unique(ex["pair"].to_numpy(), return_inverse=True)[1]
        # Categories first, then users given their categories' shrunk offsets.
        for column in dict.fromkeys(eff.column for eff in self.effects):
            self._fit_ml(hist, y, ex, column)
            self._empirical_bayes(column, hist, y, ex, cluster)
        self._fit_ml(hist, y, ex)
        self._tune_shrinkage(task, hist, y, ex)
        return self

    # -- artifact -----------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        """Every fitted number, as tensors for the artifact."""
        out = dict(self._shared_tensors())
        for eff in self.effects:
            out[f"{eff.key}.ids"] = torch.as_tensor(eff.ids, dtype=torch.int64)
            out[f"{eff.key}.values"] = torch.as_tensor(eff.values, dtype=DTYPE)
            out[f"{eff.key}.prior_sd"] = torch.tensor(eff.prior_sd, dtype=DTYPE)
            out[f"{eff.key}.scale"] = torch.tensor(eff.scale, dtype=DTYPE)
        return out

    def _set_shared(self, state: dict[str, torch.Tensor]) -> None:
        self.log_lambda0 = float(state["log_lam0"])
        self.alpha = float(state["alpha"])
        self.beta = float(state["beta"])
        self.log_b0 = float(state["log_b0"])
        self.log_w = state["log_w"].numpy().astype(np.float64)

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`state`."""
        self._set_shared(state)
        for eff in self.effects:
            eff.ids = state[f"{eff.key}.ids"].numpy()
            eff.values = state[f"{eff.key}.values"].numpy().astype(np.float64)
            eff.prior_sd = float(state[f"{eff.key}.prior_sd"])
            eff.scale = float(state[f"{eff.key}.scale"])

    def config_dict(self) -> dict[str, object]:
        """The fit settings, JSON-ready (for the artifact card)."""
        return asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, object]) -> Self:
        """An unfitted model with the settings of :meth:`config_dict`."""
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
        return cls(DecayFitConfig(**fields))  # type: ignore[arg-type]

    def describe(self) -> dict[str, object]:
        """Readable summary of the fit for the artifact card."""
        return {
            "lambda0_per_hour": math.exp(self.log_lambda0),
            "half_life0_hours": math.log(2) / math.exp(self.log_lambda0),
            "floor0": math.exp(self.log_b0),
            "behavior_weights": dict(zip(BEHAVIORS, np.exp(self.log_w).round(4).tolist(), strict=True)),
            "link": {"alpha": self.alpha, "beta": self.beta},
            "effects": {
                eff.key: {"n_ids": len(eff.ids), "eb_prior_sd": eff.prior_sd, "valid_factor": eff.scale}
                for eff in self.effects
            },
        }


def _nll(eta: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed Bernoulli negative log-likelihood of logits."""
    return torch.nn.functional.binary_cross_entropy_with_logits(eta, y, reduction="sum")


def _marginal_tau2(raw: np.ndarray, se2: np.ndarray) -> float:
    """Prior variance τ² maximising Σ log N(raw; 0, τ² + se²): the empirical-Bayes step."""
    if len(raw) < 2:
        return 0.0

    def neg_marginal(log_tau2: float) -> float:
        v = math.exp(log_tau2) + se2
        return float(0.5 * np.sum(np.log(v) + raw**2 / v))

    res = minimize_scalar(neg_marginal, bounds=(math.log(1e-6), math.log(25.0)), method="bounded")
    return math.exp(float(res.x))


class ExponentialDecay(_DecayCore):
    """Per-category decay (rate, floor, level), with per-user offsets shrunk toward the category's."""

    name = "exponential"
    effects_spec = (
        ("category_id", "rate"),
        ("category_id", "floor"),
        ("category_id", "level"),
        ("user_id", "rate"),
    )


class GlobalDecay(_DecayCore):
    """One decay rate λ for every category and user: the trivial decay baseline."""

    name = "global_decay"


class Popularity:
    """Each category's training re-engagement rate, smoothed toward the overall rate.

    Ignores time entirely: the trivial baseline a decay model must beat.
    """

    name = "popularity"

    def __init__(self, prior_strength: float = 20.0) -> None:
        self.prior_strength = prior_strength
        self.base_rate = 0.5
        self.category_ids = np.empty(0, dtype=np.int64)
        self.category_rate = np.empty(0, dtype=np.float64)

    def fit(self, task: EvalTask) -> Popularity:
        """Count positives per category on the training period."""
        ex = task.examples("train")
        self.base_rate = float(ex["label"].mean())
        grouped = ex.groupby("category_id")["label"].agg(["sum", "count"])
        m = self.prior_strength
        self.category_ids = grouped.index.to_numpy(dtype=np.int64)
        self.category_rate = ((grouped["sum"] + m * self.base_rate) / (grouped["count"] + m)).to_numpy()
        return self

    def predict(self, task: EvalTask, period: str) -> np.ndarray:
        """The category's smoothed rate for every example."""
        cats = task.examples(period)["category_id"].to_numpy()
        if not len(self.category_ids):
            return np.full(len(cats), self.base_rate)
        pos = np.clip(np.searchsorted(self.category_ids, cats), 0, len(self.category_ids) - 1)
        return np.where(self.category_ids[pos] == cats, self.category_rate[pos], self.base_rate)

    def state(self) -> dict[str, torch.Tensor]:
        """Fitted numbers for the artifact."""
        return {
            "base_rate": torch.tensor(self.base_rate, dtype=DTYPE),
            "prior_strength": torch.tensor(self.prior_strength, dtype=DTYPE),
            "category_ids": torch.tensor(self.category_ids, dtype=torch.int64),
            "category_rate": torch.tensor(self.category_rate, dtype=DTYPE),
        }

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`state`."""
        self.base_rate = float(state["base_rate"])
        self.prior_strength = float(state["prior_strength"])
        self.category_ids = state["category_ids"].numpy()
        self.category_rate = state["category_rate"].numpy().astype(np.float64)

    def config_dict(self) -> dict[str, object]:
        """The settings, JSON-ready."""
        return {"prior_strength": self.prior_strength}

    @classmethod
    def from_config(cls, config: dict[str, object]) -> Popularity:
        """An unfitted baseline with the settings of :meth:`config_dict`."""
        return cls(float(config.get("prior_strength", 20.0)))  # type: ignore[arg-type]

    def describe(self) -> dict[str, object]:
        """Readable summary for the artifact card."""
        return {
            "base_rate": self.base_rate,
            "prior_strength": self.prior_strength,
            "n_categories": len(self.category_ids),
        }
