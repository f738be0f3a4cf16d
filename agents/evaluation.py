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
not how the simulator's fit to real users could be off. Comparisons resample users jointly:
the paired difference to the threshold baseline (``paired_difference``), the share of the
threshold-to-oracle gap a policy closes (``gap_closed``); ``lifecycle_ci`` gives the
lifecycle shares with intervals, and ``compare_policies`` all of it for a set of policies.

Hidden state: a policy with ``needs_hidden_info`` (the oracle, and nothing else) gets the
env's ``true_interest`` / ``true_appeal`` through ``set_hidden`` before each ``predict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from agents.policy import ACTION_NAMES, Policy, block, uses_hidden_info
from envs.env import HIDDEN_INFO_KEYS
from envs.layout import AGE_BLOCK, AGE_SCALE, EMPTY_BLOCK, PREDICTED_INTEREST_BLOCK
from envs.vector import InterestDecayVectorEnv

#: item-age bucket edges in hours (observation block 7 is age / (age + 720 h), the age in the user's
#: pool: visits are hours apart, so most decisions concern items less than a few days old)
AGE_EDGES_H = (6.0, 24.0, 72.0, 168.0)
AGE_LABELS = ("lt6h", "6h_1d", "1d_3d", "3d_1w", "ge1w")
AGE_TITLES = {
    "lt6h": "< 6 h",
    "6h_1d": "6 h - 1 d",
    "1d_3d": "1 - 3 d",
    "3d_1w": "3 d - 1 w",
    "ge1w": "≥ 1 w",
}
#: predicted-interest bucket edges (observation block 0)
INTEREST_EDGES = (0.05, 0.1, 0.2, 0.4)
INTEREST_LABELS = ("lt0.05", "0.05_0.1", "0.1_0.2", "0.2_0.4", "ge0.4")

#: the per-user metrics of a policy comparison (``compare_policies``)
REPORT_METRICS = ("return", "clicks", "purchases", "slots_used", "churned")

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


def hidden_of(info: dict[str, Any]) -> dict[str, NDArray[np.float32]]:
    """The hidden truth in an env's ``info`` (of ``reset`` or ``step``, run with ``hidden_info=True``).

    It belongs to the returned observations, reset users included, so it is what the oracle
    needs for its next decision.
    """
    return {key: info[key] for key in HIDDEN_INFO_KEYS}


def act(
    policy: Policy,
    obs: NDArray[np.float32],
    hidden: dict[str, Any] | None,
    state: Any,
    episode_start: NDArray[np.bool_],
    deterministic: bool,
) -> tuple[NDArray[np.int64], Any]:
    """One ``predict``, handing the hidden truth first to a policy that asks for it (the oracle only)."""
    if hidden is not None:
        policy.set_hidden(hidden)  # type: ignore[attr-defined]
    actions, state = policy.predict(
        obs, state=state, episode_start=episode_start, deterministic=deterministic
    )
    return np.asarray(actions, dtype=np.int64), state


def _evaluate_batch(
    policy: Policy, preset: str, seeds: list[int], deterministic: bool, overrides: dict[str, Any]
) -> pd.DataFrame:
    n = len(seeds)
    oracle = uses_hidden_info(policy)
    venv = InterestDecayVectorEnv(n, preset=preset, hidden_info=oracle, **overrides)
    obs, info = venv.reset(seed=seeds)
    hidden = hidden_of(info) if oracle else None
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
    age_edges = np.array([h / (h + AGE_SCALE) for h in AGE_EDGES_H], np.float32)
    int_edges = np.array(INTEREST_EDGES, np.float32)
    while active.any():
        actions, state = act(policy, obs, hidden, state, episode_start, deterministic)
        counted = (block(obs, EMPTY_BLOCK) < 0.5) & active[:, None]
        age_b = np.searchsorted(age_edges, block(obs, AGE_BLOCK), side="right")
        int_b = np.searchsorted(int_edges, block(obs, PREDICTED_INTEREST_BLOCK), side="right")
        age_counts += _bucket_counts(age_b, actions, counted, len(AGE_LABELS))
        int_counts += _bucket_counts(int_b, actions, counted, len(INTEREST_LABELS))
        obs, reward, terminated, truncated, info = venv.step(actions)
        if oracle:
            hidden = hidden_of(info)
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


def _resample_indices(n: int, n_boot: int, seed: int) -> NDArray[np.int64]:
    """(n_boot, n) user indices drawn with replacement: the same draws as :func:`bootstrap_ci`."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _quantiles(values: NDArray[np.floating], confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high)


def lifecycle_ci(
    records: pd.DataFrame,
    kind: str = "age",
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Action shares per item-age or predicted-interest bucket with bootstrap intervals over users.

    The shares are those of :func:`lifecycle_table` (decisions pooled over users); each interval
    resamples whole users, so a user with many decisions counts as one correlated unit.

    Returns:
        DataFrame with one row per (bucket, action): ``bucket``, ``action``, ``decisions`` (of the
        bucket), ``share``, ``ci_low``, ``ci_high``; buckets in age / interest order.
    """
    labels = {"age": AGE_LABELS, "interest": INTEREST_LABELS}.get(kind)
    if labels is None:
        raise ValueError(f"kind must be 'age' or 'interest', got {kind!r}")
    if len(records) == 0:
        raise ValueError("lifecycle_ci needs at least one record")
    cols = [f"n_{kind}_{label}_{a}" for label in labels for a in ACTION_NAMES]
    counts = records[cols].to_numpy(np.float64).reshape(len(records), len(labels), 3)
    n = len(records)
    idx = _resample_indices(n, n_boot, seed)
    flat = counts.reshape(n, -1)
    pooled = np.empty((n_boot, flat.shape[1]))
    chunk = max(1, 2**22 // n)  # resamples per product, so the weight matrix stays ~32 MiB
    for start in range(0, n_boot, chunk):
        part = idx[start : start + chunk]
        rows = np.arange(len(part))[:, None] * n
        weights = np.bincount((part + rows).ravel(), minlength=len(part) * n).reshape(len(part), n)
        pooled[start : start + len(part)] = weights @ flat  # each user's counts times its draws
    pooled = pooled.reshape(n_boot, len(labels), 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = pooled / pooled.sum(axis=2, keepdims=True)
    total = counts.sum(axis=0)
    rows = []
    for b, label in enumerate(labels):
        decisions = total[b].sum()
        for j, action in enumerate(ACTION_NAMES):
            share = total[b, j] / decisions if decisions else float("nan")
            low, high = _quantiles(boot[:, b, j], confidence)
            rows.append(
                {
                    "bucket": label,
                    "action": action,
                    "decisions": int(decisions),
                    "share": float(share),
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return pd.DataFrame(rows)


def align_users(*frames: pd.DataFrame) -> list[pd.DataFrame]:
    """The records sorted by seed, after checking they hold the same users (distinct seeds, same set).

    Raises:
        ValueError: some records hold other users, or a seed twice.
    """
    sets = [set(f["seed"]) for f in frames]
    if any(s != sets[0] or len(s) != len(f) for s, f in zip(sets, frames, strict=True)):
        raise ValueError(
            "comparing policies needs records of the same users (the same distinct seeds) for every "
            f"policy; got {[len(f) for f in frames]} records with {len(set.intersection(*sets))} shared seeds"
        )
    return [f.sort_values("seed", kind="stable").reset_index(drop=True) for f in frames]


def gap_closed(
    policy: pd.DataFrame,
    threshold: pd.DataFrame,
    oracle: pd.DataFrame,
    *,
    metric: str = "return",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Share of the threshold-to-oracle gap a policy closes: (policy - threshold) / (oracle - threshold).

    0 means no better than the tuned threshold rule, 1 as good as the oracle. The interval is a
    paired percentile bootstrap: each resample draws users once and takes all three policies'
    means over them. When the oracle is not clearly better than the threshold rule the
    denominator is near 0 and the ratio (and its interval) is meaningless; ``gap`` and its
    interval are returned so a reader can see that.

    Returns:
        ``mean``, ``ci_low``, ``ci_high`` of the share, ``gap`` (oracle - threshold mean),
        ``gap_ci_low``, ``gap_ci_high`` and ``n`` (users).
    """
    p, t, o = (f[metric].to_numpy(np.float64) for f in align_users(policy, threshold, oracle))
    n = len(p)
    idx = _resample_indices(n, n_boot, seed)
    pb, tb, ob = p[idx].mean(axis=1), t[idx].mean(axis=1), o[idx].mean(axis=1)
    gap = o.mean() - t.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (p.mean() - t.mean()) / gap if gap != 0 else float("nan")
        boot = (pb - tb) / (ob - tb)
    low, high = _quantiles(boot, confidence)
    gap_low, gap_high = _quantiles(ob - tb, confidence)
    return {
        "mean": float(share),
        "ci_low": low,
        "ci_high": high,
        "gap": float(gap),
        "gap_ci_low": gap_low,
        "gap_ci_high": gap_high,
        "n": n,
    }


def compare_policies(
    records: dict[str, pd.DataFrame],
    *,
    threshold: str,
    oracle: str | None = None,
    metrics: Sequence[str] = REPORT_METRICS,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Everything a comparison table reports, per policy, JSON-ready.

    Args:
        records: policy label -> its records on the same users (``evaluate`` with the same seeds).
        threshold: label of the tuned threshold baseline the differences are taken against.
        oracle: label of the oracle, for the share of the threshold-to-oracle gap (None: skipped).
        metrics: per-user columns to summarise and compare.
        n_boot: bootstrap resamples.
        confidence: interval level.
        seed: seed of the resampling (the same users are drawn for every policy and metric).

    Returns:
        label -> ``metrics`` (metric -> mean, ci_low, ci_high, n), ``diff_vs_threshold`` (same, of
        the paired difference), ``gap_closed`` (see :func:`gap_closed`; None without an oracle),
        ``lifecycle`` ({"age": [...], "interest": [...]} rows of :func:`lifecycle_ci`).
    """
    for name in (threshold, oracle):
        if name is not None and name not in records:
            raise ValueError(f"compare_policies: no records for {name!r}; have {sorted(records)}")
    align_users(*records.values())
    out: dict[str, dict[str, Any]] = {}
    kw = {"n_boot": n_boot, "confidence": confidence, "seed": seed}
    for label, rec in records.items():
        summary = summarize(rec, metrics=metrics, **kw)
        diff = paired_difference(rec, records[threshold], metrics=metrics, **kw)
        out[label] = {
            "metrics": summary.to_dict(orient="index"),
            "diff_vs_threshold": diff.to_dict(orient="index"),
            "gap_closed": (
                gap_closed(rec, records[threshold], records[oracle], **kw) if oracle is not None else None
            ),
            "lifecycle": {
                kind: lifecycle_ci(rec, kind, **kw).to_dict(orient="records") for kind in ("age", "interest")
            },
        }
    return out
