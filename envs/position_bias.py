"""Click-through by position in Open Bandit Dataset logs, beside the simulator's position-bias prior.

The simulator (``envs.dynamics``) multiplies the click chance by 1/log2(1 + position), a documented
prior rather than a fit: the OBD samples have about 13 clicks per position in each 10,000-row file,
too few to estimate a position curve. These statistics say in numbers whether they can tell the
prior from no position effect at all, instead of fitting the noise:

* per logging policy and position: impressions, clicks, CTR and its binomial interval (Wilson or
  Clopper-Pearson); the prior's relative CTR w_p = 1/log2(1 + p) scaled by
  s = clicks / Σ_p impressions_p · w_p, so that it predicts as many clicks as were observed (the
  policy's pooled CTR; s is the maximum-likelihood scale under a Poisson click model), and whether
  it lies inside each interval; a self-normalised IPS estimate of the CTR a uniform-random choice
  of item would get at each position (uses ``propensity_score``; equal to the raw CTR under the
  uniform-random logging policy, which needs no correction);
* per policy: "CTR is the same at every position" tested by Pearson's chi-square, the G-test and
  the exact (Freeman-Halton) test; the likelihood ratio of the scaled prior against a flat CTR
  (one free scale each); the 95 % profile-likelihood interval of γ in CTR ∝ w_p^γ (γ = 0 flat,
  γ = 1 the prior); and the impressions per position a chi-square test would need for 80 % power
  if the prior were true at the observed CTR.

The tables, Markdown and plot of these numbers are in ``envs.position_bias_report``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from decay_model.errors import DataValidationError

REQUIRED = ("position", "click", "propensity_score")
PRIOR = "1/log2(1 + position)"
INTERVALS = {"wilson": "wilson", "clopper-pearson": "exact"}
POWER = 0.8
ALPHA = 0.05
GAMMA_GRID = np.round(np.linspace(-10.0, 10.0, 2001), 2)
EXACT_MAX_TABLES = 2_000_000
# Royall's benchmarks for a likelihood ratio: beyond 8 (or below 1/8) is fairly strong evidence.
LR_STRONG = 8.0


def policy_label(path: Path) -> str:
    """``<policy>/<campaign>/all.csv`` → ``policy`` (``policy/campaign`` unless the campaign is "all")."""
    parts = path.parts
    if len(parts) >= 3:
        policy, campaign = parts[-3], parts[-2]
        return policy if campaign == "all" else f"{policy}/{campaign}"
    return path.stem


def _first_bad(frame: pd.DataFrame, column: str, bad: pd.Series) -> str:
    row = int(np.flatnonzero(bad.to_numpy())[0])
    value = frame[column].iloc[row]
    value = value.item() if isinstance(value, np.generic) else value
    return f"{value!r} on line {row + 2}"


def read_obd(path: Path) -> pd.DataFrame:
    """The position, click and propensity columns of an OBD file, validated, one row per impression.

    Raises:
        DataValidationError: the file is missing or unreadable, a column is absent, or a value is
            outside its range (positions are integers >= 1, clicks 0 or 1, propensities in (0, 1]).
    """
    if not path.is_file():
        raise DataValidationError(f"{path}: file not found (expected an OBD all.csv)")
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"{path}: cannot read as CSV ({exc})") from exc
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataValidationError(
            f"{path}: missing column {missing[0]!r} (an OBD all.csv has {', '.join(REQUIRED)})"
        )
    try:
        frame = pd.read_csv(path, usecols=list(REQUIRED))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"{path}: cannot read as CSV ({exc})") from exc
    for column in REQUIRED:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna()
        if column == "position":
            bad |= (values < 1) | (values != values.round())
        elif column == "click":
            bad |= ~values.isin((0, 1))
        else:
            bad |= (values <= 0) | (values > 1)
        if bad.any():
            expected = {
                "position": "an integer >= 1",
                "click": "0 or 1",
                "propensity_score": "a probability in (0, 1]",
            }[column]
            raise DataValidationError(
                f"{path}: column {column!r} must be {expected}, got {_first_bad(frame, column, bad)}"
            )
        frame[column] = values
    if frame.empty:
        raise DataValidationError(f"{path}: no rows")
    return frame.astype({"position": int, "click": int, "propensity_score": float})


def prior_relative(positions: np.ndarray) -> np.ndarray:
    """The simulator's position bias w_p = 1/log2(1 + p) (1 at the top position)."""
    return 1.0 / np.log2(1.0 + np.asarray(positions, dtype=float))


def proportion_interval(clicks: int, impressions: int, level: float, method: str) -> tuple[float, float]:
    """Binomial interval of clicks/impressions: ``wilson`` or ``clopper-pearson`` (scipy.stats)."""
    ci = stats.binomtest(int(clicks), int(impressions)).proportion_ci(level, method=INTERVALS[method])
    return float(ci.low), float(ci.high)


def binomial_loglik(clicks: np.ndarray, impressions: np.ndarray, ctr: np.ndarray) -> float:
    """Σ k log q + (n - k) log(1 - q), without the binomial coefficients (they cancel in ratios)."""
    q = np.clip(np.asarray(ctr, dtype=float), 0.0, 1.0 - 1e-12)
    return float(np.sum(special.xlogy(clicks, q) + special.xlog1py(impressions - clicks, -q)))


def scaled_ctr(clicks: np.ndarray, impressions: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
    """CTR ∝ weights with the scale that predicts the observed clicks: s = K / Σ n_p w_p."""
    scale = float(clicks.sum() / np.sum(impressions * weights))
    return scale * weights, scale


def exact_homogeneity_p(clicks: np.ndarray, impressions: np.ndarray) -> float | None:
    """Freeman-Halton exact p of "same CTR at every position" (None when the tables are too many).

    Given the total clicks, clicks per position are multivariate hypergeometric under the null;
    p sums the probabilities of every table no more likely than the observed one.
    """
    total = int(clicks.sum())
    ranges = [range(min(int(n), total) + 1) for n in impressions[:-1]]
    if math.prod(len(r) for r in ranges) > EXACT_MAX_TABLES:
        return None
    head = np.array(list(itertools.product(*ranges)), dtype=np.int64).reshape(-1, len(ranges))
    last = total - head.sum(axis=1)
    keep = (last >= 0) & (last <= impressions[-1])
    tables = np.column_stack([head[keep], last[keep]])

    def log_prob(k: np.ndarray) -> np.ndarray:
        n = impressions.astype(float)
        return np.sum(special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1), axis=-1)

    logp = log_prob(tables)
    observed = log_prob(clicks.astype(float))
    norm = special.logsumexp(logp)
    return float(min(1.0, np.exp(special.logsumexp(logp[logp <= observed + 1e-7]) - norm)))


def homogeneity_tests(clicks: np.ndarray, impressions: np.ndarray) -> dict[str, Any]:
    """Chi-square, G and exact tests of "CTR is the same at every position"."""
    if clicks.sum() == 0 or len(clicks) < 2:
        return {"chi2": None, "dof": len(clicks) - 1, "chi2_p": None, "g": None, "g_p": None, "exact_p": None}
    table = np.vstack([clicks, impressions - clicks])
    chi2, chi2_p, dof, _ = stats.chi2_contingency(table, correction=False)
    g, g_p, _, _ = stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")
    return {
        "chi2": float(chi2),
        "dof": int(dof),
        "chi2_p": float(chi2_p),
        "g": float(g),
        "g_p": float(g_p),
        "exact_p": exact_homogeneity_p(clicks, impressions),
    }


def gamma_profile(clicks: np.ndarray, impressions: np.ndarray, weights: np.ndarray, level: float) -> dict:
    """Profile likelihood of γ in CTR = s·w_p^γ (γ = 0: flat, γ = 1: the prior), s scaled as above.

    The interval is {γ : 2(ℓ_max - ℓ(γ)) <= χ²₁(level)} on a grid over [-10, 10]; an end at the
    grid's edge is reported as None (unbounded there).
    """
    loglik = np.array(
        [
            binomial_loglik(clicks, impressions, scaled_ctr(clicks, impressions, weights**g)[0])
            for g in GAMMA_GRID
        ]
    )
    best = int(np.argmax(loglik))
    inside = np.flatnonzero(2.0 * (loglik[best] - loglik) <= stats.chi2.ppf(level, 1))
    lo, hi = int(inside.min()), int(inside.max())
    return {
        "mle": float(GAMMA_GRID[best]),
        "low": None if lo == 0 else float(GAMMA_GRID[lo]),
        "high": None if hi == len(GAMMA_GRID) - 1 else float(GAMMA_GRID[hi]),
        "level": level,
    }


def impressions_for_power(ctr: np.ndarray, power: float = POWER, alpha: float = ALPHA) -> float | None:
    """Impressions per position for the chi-square test to reject a flat CTR with this power.

    ``ctr`` is the CTR per position under the alternative (here: the scaled prior). With n
    impressions at each position the test's noncentrality is n·Σ (q_p - q̄)² / (q̄(1 - q̄)).
    """
    q = np.asarray(ctr, dtype=float)
    mean = float(q.mean())
    if len(q) < 2 or not 0.0 < mean < 1.0:
        return None
    per_impression = float(np.sum((q - mean) ** 2) / (mean * (1.0 - mean)))
    if per_impression <= 0:
        return None
    dof = len(q) - 1
    critical = stats.chi2.ppf(1.0 - alpha, dof)
    noncentrality = optimize.brentq(lambda lam: stats.ncx2.sf(critical, dof, lam) - power, 1e-9, 1e4)
    return float(noncentrality / per_impression)


def ips_ctr(frame: pd.DataFrame) -> pd.DataFrame:
    """Self-normalised IPS CTR per position for a uniform-random choice of item, with a normal interval.

    Weights are 1/propensity (the target's constant 1/n_items cancels); under uniform-random
    logging every weight is equal and this is the raw CTR.
    """
    rows = []
    for position, part in frame.groupby("position"):
        w = 1.0 / part["propensity_score"].to_numpy()
        y = part["click"].to_numpy(dtype=float)
        estimate = float(np.sum(w * y) / np.sum(w))
        se = float(np.sqrt(np.sum(w**2 * (y - estimate) ** 2)) / np.sum(w))
        rows.append(
            {
                "position": int(position),
                "ips_ctr": estimate,
                "ips_se": se,
                "ips_ess": float(np.sum(w) ** 2 / np.sum(w**2)),
            }
        )
    return pd.DataFrame(rows)


def verdict(gamma: dict, lr: float, uniform: bool) -> str:
    """One sentence: can this policy's data tell the prior from no position effect?"""
    lo = -math.inf if gamma["low"] is None else gamma["low"]
    hi = math.inf if gamma["high"] is None else gamma["high"]
    has_flat, has_prior = lo <= 0.0 <= hi, lo <= 1.0 <= hi
    if has_flat and has_prior:
        strength = "neither strongly" if 1 / LR_STRONG < lr < LR_STRONG else "one more than the other"
        text = (
            "cannot tell them apart: the γ interval holds both 0 (flat) and 1 (prior), "
            f"and the likelihood ratio {lr:.2g} favours {strength}"
        )
    elif has_flat:
        text = "the prior is outside the γ interval (γ = 1 excluded) but a flat CTR is not (γ = 0 inside)"
    elif has_prior:
        text = "a flat CTR is outside the γ interval (γ = 0 excluded) and the prior inside it (γ = 1)"
    else:
        text = "both the prior (γ = 1) and a flat CTR (γ = 0) are outside the γ interval"
    if not uniform:
        text += (
            "; this is about the raw CTR, which mixes position with the items the policy chose to put "
            "there, not about position bias alone"
        )
    return text


def analyse_policy(frame: pd.DataFrame, level: float, method: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-position rows and the per-policy tests of one logging policy's file."""
    counts = frame.groupby("position")["click"].agg(impressions="size", clicks="sum").reset_index()
    positions = counts["position"].to_numpy()
    n = counts["impressions"].to_numpy(dtype=np.int64)
    k = counts["clicks"].to_numpy(dtype=np.int64)
    w = prior_relative(positions)
    prior, scale = scaled_ctr(k, n, w)
    flat = np.full(len(n), k.sum() / n.sum())
    bounds = [proportion_interval(ki, ni, level, method) for ki, ni in zip(k, n, strict=True)]
    rows = counts.assign(
        ctr=k / n,
        ctr_low=[b[0] for b in bounds],
        ctr_high=[b[1] for b in bounds],
        prior_relative=w,
        prior_ctr=prior,
        flat_ctr=flat,
    )
    rows["prior_inside"] = (rows["ctr_low"] <= rows["prior_ctr"]) & (rows["prior_ctr"] <= rows["ctr_high"])
    ips = ips_ctr(frame)
    z = stats.norm.ppf(0.5 + level / 2)
    rows = rows.merge(ips, on="position")
    rows["ips_low"] = (rows["ips_ctr"] - z * rows["ips_se"]).clip(lower=0.0)
    rows["ips_high"] = rows["ips_ctr"] + z * rows["ips_se"]
    rows = rows.drop(columns="ips_se")
    propensity = frame["propensity_score"].to_numpy()
    uniform = bool(np.ptp(propensity) <= 1e-12 * propensity.max())
    log_lr = binomial_loglik(k, n, prior) - binomial_loglik(k, n, flat)
    gamma = gamma_profile(k, n, w, level) if k.sum() > 0 and len(n) > 1 else None
    needed = impressions_for_power(prior)
    lr = float(np.exp(log_lr))
    summary = {
        "rows": int(n.sum()),
        "clicks": int(k.sum()),
        "pooled_ctr": float(k.sum() / n.sum()),
        "prior_scale": scale,
        "uniform_logging": uniform,
        "tests": homogeneity_tests(k, n),
        "log_lr_prior_vs_flat": log_lr,
        "lr_prior_vs_flat": lr,
        "gamma": gamma,
        "impressions_per_position_for_power": needed,
        "sample_multiple_for_power": None if needed is None else needed * len(n) / float(n.sum()),
        "prior_inside_all": bool(rows["prior_inside"].all()),
        "verdict": "no clicks: nothing to compare" if gamma is None else verdict(gamma, lr, uniform),
    }
    return rows, summary


def logging_note(label: str, uniform: bool) -> str:
    """Why one policy's CTR by position is (or is not) a clean position signal."""
    if uniform:
        return (
            f"{label}: every impression has the same propensity, so items are assigned to positions "
            "uniformly at random and its CTR by position needs no IPS correction: "
            "the cleanest position signal."
        )
    return (
        f"{label}: propensities vary, so the policy chose which items to place where; its raw CTR by "
        "position mixes position with item choice (the IPS column reweights toward uniform item choice, "
        "at the cost of a smaller effective sample)."
    )


def fingerprint(path: Path) -> str:
    """sha256 of a data file, recorded so a report names exactly what it read."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def analyse(
    files: Sequence[Path], level: float = 0.95, method: str = "wilson"
) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Read and analyse every file: the per-position table and the per-policy summaries."""
    tables, summaries = [], {}
    for path in files:
        label = policy_label(path)
        if label in summaries:
            label = f"{label} ({path})"
        rows, summary = analyse_policy(read_obd(path), level, method)
        tables.append(rows.assign(policy=label))
        summaries[label] = {"file": str(path), **summary}
    table = pd.concat(tables, ignore_index=True)
    table = table[["policy", *[c for c in table.columns if c != "policy"]]]
    return table, summaries
