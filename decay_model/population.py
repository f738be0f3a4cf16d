"""Per-user decay parameters and the population summary the simulator draws users from.

Every decay model encodes a user's history into, per (user, category) pair,
three numbers on the probability scale of the evaluation task:

- ``interest`` a: P(re-engagement within the horizon) right now;
- ``lam`` λ (1/hour): how fast interest fades toward the floor;
- ``floor`` b: where it fades to, P(re-engagement) once the history has decayed away.

The simulator moves interest between events as I(t+Δ) = b + (I(t) - b)·e^{-λΔ}.
The population summary condenses many encoded users into per-category
distributions, so that new simulated users can be drawn without real data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from decay_model.errors import DataValidationError

ENCODED_COLUMNS = ("user_id", "category_id", "interest", "lam", "floor", "n_events")


def check_encoded(frame: pd.DataFrame) -> pd.DataFrame:
    """Raise if an encoded frame breaks the contract the simulator relies on."""
    missing = [c for c in ENCODED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"encoded users: missing columns {missing}; expected {list(ENCODED_COLUMNS)}"
        )
    lam = frame["lam"].to_numpy()
    if not np.all(np.isfinite(lam) & (lam > 0)):
        raise DataValidationError("encoded users: every decay rate lam must be positive and finite")
    for col in ("interest", "floor"):
        values = frame[col].to_numpy()
        if not np.all((values >= 0) & (values <= 1)):
            raise DataValidationError(f"encoded users: {col} must lie in [0, 1]")
    return frame


def summarize_population(encoded: pd.DataFrame, top: int = 200) -> dict[str, Any]:
    """Per-category distributions of λ and b (and the category's share of pairs).

    λ is summarised on the log scale (it is positive and right-skewed), b on the
    logit scale; ``other`` pools every category beyond the ``top`` most common.
    Statistics are computed in float64.
    """
    check_encoded(encoded)
    frame = encoded.assign(
        log_lam=np.log(encoded["lam"]),
        logit_floor=np.log(
            encoded["floor"].clip(1e-6, 1 - 1e-6) / (1 - encoded["floor"].clip(1e-6, 1 - 1e-6))
        ),
    )
    counts = frame["category_id"].value_counts()
    head = counts.index[:top]
    frame["group"] = np.where(frame["category_id"].isin(head), frame["category_id"].astype(str), "other")
    columns = {
        name: frame[name].to_numpy(np.float64)
        for name in ("log_lam", "lam", "logit_floor", "floor", "interest")
    }

    def describe(rows: np.ndarray | slice) -> dict[str, float]:
        # NumPy on each group's rows: the same sums as pandas' reductions, without their per-call cost
        # (a log has thousands of categories)
        part = {name: values[rows] for name, values in columns.items()}
        n = len(part["lam"])
        return {
            "pairs": n,
            "share": float(n / len(frame)),
            "log_lam_mean": float(np.mean(part["log_lam"])),
            "log_lam_sd": float(np.std(part["log_lam"])),
            "lam_median": float(np.median(part["lam"])),
            "logit_floor_mean": float(np.mean(part["logit_floor"])),
            "logit_floor_sd": float(np.std(part["logit_floor"])),
            "floor_median": float(np.median(part["floor"])),
            "interest_mean": float(np.mean(part["interest"])),
        }

    groups = frame.groupby("group", sort=False).indices  # group -> row positions, first-seen order
    return {
        "n_users": int(frame["user_id"].nunique()),
        "n_pairs": len(frame),
        "categories_per_user": float(frame.groupby("user_id").size().mean()),
        "overall": describe(slice(None)),
        "categories": {str(k): describe(rows) for k, rows in groups.items()},
        "half_life_hours_median": float(math.log(2) / frame["lam"].median()),
    }
