"""Probability metrics of the evaluation task: log-loss, ROC-AUC, Brier score, ECE.

Calibration matters as much as ranking here: the simulator samples from these
probabilities, so a model with a good AUC but a poor ECE makes wrong users.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

EPS = 1e-7
METRIC_NAMES = ("log_loss", "auc", "brier", "ece", "n", "base_rate")
#: Ranking metrics of decay_model.ranking, reported beside them in tables.
RANKING_NAMES = ("hr@10", "ndcg@10", "n_rank")
TABLE_NAMES = METRIC_NAMES + RANKING_NAMES


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative Bernoulli log-likelihood, probabilities clipped to [1e-7, 1 - 1e-7]."""
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the probabilities."""
    return float(np.mean((p - y) ** 2))


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC; NaN when only one class is present (undefined, not 0.5)."""
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, p))


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """Equal-width reliability bins: count, mean prediction and observed rate per bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    sum_p = np.bincount(idx, weights=p, minlength=bins)
    sum_y = np.bincount(idx, weights=y, minlength=bins)
    rows = []
    for b in range(bins):
        if count[b]:
            rows.append(
                {
                    "lo": float(edges[b]),
                    "hi": float(edges[b + 1]),
                    "n": int(count[b]),
                    "mean_pred": float(sum_p[b] / count[b]),
                    "observed": float(sum_y[b] / count[b]),
                }
            )
    return rows


def ece(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error over equal-width bins, weighted by bin size."""
    table = calibration_table(y, p, bins)
    n = sum(r["n"] for r in table)
    return float(sum(r["n"] * abs(r["mean_pred"] - r["observed"]) for r in table) / n)


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """All task metrics for one model on one split, with n and the base rate."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"labels have shape {y.shape} but predictions {p.shape}")
    if len(y) == 0:
        raise ValueError("cannot evaluate on zero examples")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("predictions must be finite probabilities in [0, 1]")
    return {
        "log_loss": log_loss(y, p),
        "auc": auc(y, p),
        "brier": brier(y, p),
        "ece": ece(y, p),
        "n": len(y),
        "base_rate": float(y.mean()),
    }
