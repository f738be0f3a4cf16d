"""Evaluate policies on fixed simulated users, with bootstrap confidence intervals.

Protocol (``evaluate``): every user seed in ``seeds`` is one simulated user (user i of the
vector env gets its own seed), run for exactly one episode with ``deterministic=True``.
The same seeds give the same users to every policy, so two policies can be compared user by
user (``paired_difference``), which removes most of the between-user variance. Users whose
episode has ended are autoreset by the vector env; their later episodes are ignored.

Records: one row per user episode, with ``seed``, ``return``, ``clicks``, ``purchases``,
``slots_used``, ``churned``, ``length``, the action shares over non-empty slots
(``share_show``, ``share_reduce``, ``share_retire``) and the raw decision counts by item-age
bucket and by predicted-interest bucket (``n_age_<bucket>_<action>``,
``n_interest_<bucket>_<action>``; ``lifecycle_table`` pools them into shares).

Intervals: percentile bootstrap over users (resampling whole user episodes) with a NumPy
Generator of explicit seed; they say how sure the mean over *these* simulated users is,
not how the simulator's fit to real users could be off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from agents.policy import (
    ACTION_NAMES,
    AGE_BLOCK,
    EMPTY_BLOCK,
    PREDICTED_INTEREST_BLOCK,
    Policy,
    block,
)
from envs.vector import InterestDecayVectorEnv

#: item-age bucket edges in hours (observation block 7 is age / (age + 720 h))
AGE_EDGES_H = (24.0, 168.0, 720.0)
AGE_LABELS = ("lt1d", "1d_1w", "1w_30d", "ge30d")
#: predicted-interest bucket edges (observation block 0)
INTEREST_EDGES = (0.05, 0.1, 0.2, 0.4)
INTEREST_LABELS = ("lt0.05", "0.05_0.1", "0.1_0.2", "0.2_0.4", "ge0.4")
AGE_SCALE_H = 720.0

#: the per-episode metrics ``summarize`` reports by default
METRICS = (
    "return",
    "clicks",
    "purchases",
    "slots_used",
    "churned",
    "length",
    "share_show",
    "share_reduce",
    "share_retire",
)


def _count_columns(kind: str, labels: Sequence[str]) -> list[str]:
    return [f"n_{kind}_{label}_{a}" for label in labels for a in ACTION_NAMES]


AGE_COLUMNS = _count_columns("age", AGE_LABELS)
INTEREST_COLUMNS = _count_columns("interest", INTEREST_LABELS)


def _bucket_counts(
    bucket: NDArray[np.intp], actions: NDArray[np.int64], mask: NDArray[np.bool_], num_buckets: int
) -> NDArray[np.int64]:
    """Decisions per (user, bucket, action) over the masked slots: shape (N, num_buckets·3)."""
    n = mask.shape[0]
    width = num_buckets * 3
    idx = np.arange(n)[:, None] * width + bucket * 3 + actions
    return np.bincount(idx[mask], minlength=n * width).reshape(n, width)


def evaluate(
    policy: Policy,
    *,
    preset: str = "default",
    seeds: Sequence[int],
    num_users: int | None = None,
    deterministic: bool = True,
    label: str | None = None,
    **overrides: Any,
) -> pd.DataFrame:
    """Run ``policy`` for one episode per user seed and return one record per user.

    Args:
        policy: anything with SB3's ``predict``.
        preset: simulator preset (``envs.config.PRESETS``).
        seeds: one seed per simulated user (user with seed s is ``InterestDecayEnv`` reset with s).
            Use the same seeds for every policy compared; keep evaluation seeds disjoint from the
            seeds used for tuning or training.
        num_users: users stepped together per vector env (a batch); default all seeds at once.
            The records do not depend on it for stateless policies.
        deterministic: passed to ``predict``.
        label: stored in a ``policy`` column (default ``repr(policy)``).
        **overrides: ``SimConfig`` field overrides (e.g. ``horizon=50``).

    Returns:
        DataFrame with one row per seed, in the order of ``seeds`` (see the module docstring).
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("evaluate needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError("evaluate: seeds must be distinct (each seed is one simulated user)")
    batch = len(seeds) if num_users is None else int(num_users)
    if batch < 1:
        raise ValueError(f"num_users must be >= 1, got {num_users!r}")
    frames = [
        _evaluate_batch(policy, preset, seeds[i : i + batch], deterministic, overrides)
        for i in range(0, len(seeds), batch)
    ]
    records = pd.concat(frames, ignore_index=True)
    records.insert(0, "policy", label if label is not None else repr(policy))
    return records


def _evaluate_batch(
    policy: Policy, preset: str, seeds: list[int], deterministic: bool, overrides: dict[str, Any]
) -> pd.DataFrame:
    n = len(seeds)
    venv = InterestDecayVectorEnv(n, preset=preset, **overrides)
    obs, _ = venv.reset(seed=seeds)
    active = np.ones(n, bool)
    ret = np.zeros(n)
    clicks = np.zeros(n)
    purchases = np.zeros(n)
    slots_used = np.zeros(n)
    length = np.zeros(n, np.int64)
    churned = np.zeros(n, bool)
    age_counts = np.zeros((n, len(AGE_COLUMNS)), np.int64)
    int_counts = np.zeros((n, len(INTEREST_COLUMNS)), np.int64)
    episode_start = np.ones(n, bool)
    state = None
    age_edges = np.array([h / (h + AGE_SCALE_H) for h in AGE_EDGES_H], np.float32)
    int_edges = np.array(INTEREST_EDGES, np.float32)
    while active.any():
        actions, state = policy.predict(
            obs, state=state, episode_start=episode_start, deterministic=deterministic
        )
        actions = np.asarray(actions, dtype=np.int64)
        counted = (block(obs, EMPTY_BLOCK) < 0.5) & active[:, None]
        age_b = np.searchsorted(age_edges, block(obs, AGE_BLOCK), side="right")
        int_b = np.searchsorted(int_edges, block(obs, PREDICTED_INTEREST_BLOCK), side="right")
        age_counts += _bucket_counts(age_b, actions, counted, len(AGE_LABELS))
        int_counts += _bucket_counts(int_b, actions, counted, len(INTEREST_LABELS))
        obs, reward, terminated, truncated, info = venv.step(actions)
        ret += np.where(active, reward, 0.0)
        clicks += np.where(active, info["clicks"], 0)
        purchases += np.where(active, info["purchases"], 0)
        slots_used += np.where(active, info["slots_used"], 0)
        length += active
        done = (terminated | truncated) & active
        churned |= terminated & active
        active &= ~done
        episode_start = terminated | truncated
    totals = age_counts.reshape(n, len(AGE_LABELS), 3).sum(axis=1)
    decisions = totals.sum(axis=1)
    shares = totals / np.maximum(decisions, 1)[:, None]
    data: dict[str, Any] = {
        "seed": seeds,
        "return": ret,
        "clicks": clicks,
        "purchases": purchases,
        "slots_used": slots_used,
        "churned": churned.astype(np.float64),
        "length": length,
        "decisions": decisions,
    }
    for j, name in enumerate(ACTION_NAMES):
        data[f"share_{name}"] = shares[:, j]
    frame = pd.DataFrame(data)
    counts = pd.DataFrame(
        np.concatenate([age_counts, int_counts], axis=1), columns=AGE_COLUMNS + INTEREST_COLUMNS
    )
    return pd.concat([frame, counts], axis=1)


def lifecycle_table(records: pd.DataFrame, kind: str = "age") -> pd.DataFrame:
    """Action shares pooled over all records, per item-age (``"age"``) or predicted-interest bucket.

    Returns:
        DataFrame indexed by bucket with columns ``decisions``, ``show``, ``reduce``, ``retire``.
    """
    labels = {"age": AGE_LABELS, "interest": INTEREST_LABELS}.get(kind)
    if labels is None:
        raise ValueError(f"kind must be 'age' or 'interest', got {kind!r}")
    rows = []
    for label in labels:
        counts = np.array([records[f"n_{kind}_{label}_{a}"].sum() for a in ACTION_NAMES], np.float64)
        total = counts.sum()
        shares = counts / total if total else np.full(3, np.nan)
        rows.append(
            {"bucket": label, "decisions": int(total), **dict(zip(ACTION_NAMES, shares, strict=True))}
        )
    return pd.DataFrame(rows).set_index("bucket")


def bootstrap_ci(
    values: NDArray[np.floating], *, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval of the mean, resampling the values (users).

    Returns:
        (mean, low, high).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"bootstrap_ci needs a non-empty 1-D array, got shape {x.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    gen = np.random.default_rng(seed)
    idx = gen.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    mean = float(x.mean())
    return mean, float(low), float(high)


def summarize(
    records: pd.DataFrame,
    *,
    metrics: Sequence[str] = METRICS,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean and bootstrap CI per metric over the users of ``records`` (one policy's records).

    Returns:
        DataFrame indexed by metric with columns ``mean``, ``ci_low``, ``ci_high``, ``n``.
    """
    rows = []
    for metric in metrics:
        mean, low, high = bootstrap_ci(
            records[metric].to_numpy(), n_boot=n_boot, confidence=confidence, seed=seed
        )
        rows.append({"metric": metric, "mean": mean, "ci_low": low, "ci_high": high, "n": len(records)})
    return pd.DataFrame(rows).set_index("metric")


def paired_difference(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    metrics: Sequence[str] = ("return", "clicks", "purchases", "churned"),
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean of a - b over the same users (matched by ``seed``) with a bootstrap CI.

    Raises:
        ValueError: the two sets of records do not hold the same user seeds.

    Returns:
        DataFrame indexed by metric with columns ``mean``, ``ci_low``, ``ci_high``, ``n``.
    """
    sa, sb = set(a["seed"]), set(b["seed"])
    if sa != sb or len(sa) != len(a) or len(sb) != len(b):
        raise ValueError(
            "paired_difference needs records of the same users (the same distinct seeds) for both "
            f"policies; got {len(sa)} and {len(sb)} seeds, {len(sa & sb)} shared"
        )
    merged = a.merge(b, on="seed", suffixes=("_a", "_b"), validate="one_to_one").sort_values("seed")
    rows = []
    for metric in metrics:
        diff = merged[f"{metric}_a"].to_numpy(np.float64) - merged[f"{metric}_b"].to_numpy(np.float64)
        mean, low, high = bootstrap_ci(diff, n_boot=n_boot, confidence=confidence, seed=seed)
        rows.append({"metric": metric, "mean": mean, "ci_low": low, "ci_high": high, "n": len(diff)})
    return pd.DataFrame(rows).set_index("metric")
