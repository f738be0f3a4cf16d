"""Ranking metrics: how well a model ranks the category a user engages with next.

For each (user, cutoff T) of a period:

- the **candidates** are the user's examples at T (every category the user
  engaged with before T), scored by the model's probabilities;
- the **target** is the category of the user's first event in [T, T + h)
  (h the task's horizon; ties in time go to the event first in log order);
- only (user, T) whose target is among the candidates count: a user with no
  event in the horizon, or whose next event is in a new category, has nothing
  to rank. Their number is reported as ``n_rank``.

The target's rank is 1 + (candidates scored strictly higher) + (other
candidates scored equal) / 2, the mid-rank, so that a constant score earns the
random-ordering expectation rather than a perfect hit. HR@k is the share of
counted (user, T) with rank ≤ k; NDCG@k averages 1 / log2(1 + rank) over them
(0 when rank > k): there is one relevant item, so the ideal DCG is 1. The
ranking is over all candidates (no sampled negatives).
"""

from __future__ import annotations

import numpy as np

from decay_model.errors import ConfigError
from decay_model.task import EvalTask

K = 10


def next_category(task: EvalTask, period: str) -> tuple[np.ndarray, np.ndarray]:
    """Per example of a period: its (user, cutoff) group and that group's target category (-1: none)."""
    ex = task.examples(period)
    ev = task.log.events
    users = ev["user_id"].to_numpy().astype(np.int64)
    ts = ev["timestamp"].to_numpy().astype(np.int64)
    cats = ev["category_id"].to_numpy().astype(np.int64)
    order = np.lexsort((ts, users))  # stable: equal times keep log order
    users, ts, cats = users[order], ts[order], cats[order]
    uniq = np.unique(users)
    t0 = int(ts.min())
    span = int(max(int(ts.max()), int(task.split.end)) - t0 + 2)
    key = np.searchsorted(uniq, users) * span + (ts - t0)
    ex_user = ex["user_id"].to_numpy().astype(np.int64)
    ex_cut = ex["cutoff"].to_numpy().astype(np.int64)
    group_keys = np.stack([ex_user, ex_cut], axis=1)
    groups, group = np.unique(group_keys, axis=0, return_inverse=True)
    group = group.reshape(-1)
    g_user, g_cut = groups[:, 0], groups[:, 1]
    pos = np.searchsorted(key, np.searchsorted(uniq, g_user) * span + np.clip(g_cut - t0, 0, span - 1))
    idx = np.minimum(pos, len(key) - 1)
    h = task.config.seconds("horizon_hours")
    found = (pos < len(key)) & (users[idx] == g_user) & (ts[idx] < g_cut + h)
    target = np.where(found, cats[idx], -1)
    return group, target


def ranking_metrics(task: EvalTask, period: str, probabilities: np.ndarray, k: int = K) -> dict[str, float]:
    """``{"hr@10", "ndcg@10", "n_rank"}`` of a model's probabilities for one period (see module docstring).

    Args:
        task: the evaluation task.
        period: "train", "valid" or "test".
        probabilities: one score per example of the period, in the examples' order.
        k: the cut-off of HR and NDCG (the keys keep the name ``@10`` only for k = 10).

    Returns:
        HR@k and NDCG@k (NaN when no (user, cutoff) counts) and ``n_rank``, how many counted.
    """
    ex = task.examples(period)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape != (len(ex),):
        raise ConfigError(
            f"ranking_metrics: need one probability per example ({len(ex)}), got shape {p.shape}"
        )
    group, target = next_category(task, period)
    is_target = ex["category_id"].to_numpy() == target[group]
    n_groups = len(target)
    p_target = np.full(n_groups, np.nan)
    p_target[group[is_target]] = p[is_target]
    counted = ~np.isnan(p_target)
    ref = p_target[group]
    greater = np.bincount(group, weights=(p > ref).astype(np.float64), minlength=n_groups)
    equal = np.bincount(group, weights=(p == ref).astype(np.float64), minlength=n_groups) - 1
    rank = (1 + greater + equal / 2)[counted]
    n_rank = int(counted.sum())
    if not n_rank:
        return {f"hr@{k}": float("nan"), f"ndcg@{k}": float("nan"), "n_rank": 0}
    hit = rank <= k
    return {
        f"hr@{k}": float(hit.mean()),
        f"ndcg@{k}": float(np.where(hit, 1.0 / np.log2(1.0 + rank), 0.0).mean()),
        "n_rank": n_rank,
    }
