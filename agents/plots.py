"""The figures of policy comparisons, each written as a PNG.

The return per user, and the lifecycle shares by item age or predicted interest (the decay
models' figures are in ``decay_model.comparison_report``).

Every PNG is written atomically, and matplotlib (Agg) is imported lazily, so importing this
module costs nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.evaluation import AGE_LABELS, AGE_TITLES, INTEREST_LABELS
from decay_model.figures import pyplot, save_png


def plot_returns(path: Path, records: dict[str, pd.DataFrame]) -> None:
    """Distribution of the return per user, one box per policy, the mean as a dot."""
    plt = pyplot()
    labels = list(records)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(labels) + 2), 4.5))
    data = [records[k]["return"].to_numpy() for k in labels]
    ax.boxplot(data, showfliers=True, flierprops={"markersize": 2, "alpha": 0.3})
    ax.scatter(np.arange(1, len(labels) + 1), [d.mean() for d in data], color="C3", zorder=3, label="mean")
    ax.set_xticks(np.arange(1, len(labels) + 1))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("return per user (one episode)")
    ax.set_title("Distribution of returns over the held-out users")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def plot_lifecycle(path: Path, report: dict[str, dict[str, Any]], kind: str = "age") -> None:
    """Share of show / reduce / retire against item age (or predicted interest), one panel per policy."""
    plt = pyplot()
    labels = list(report)
    buckets = AGE_LABELS if kind == "age" else INTEREST_LABELS
    names = [AGE_TITLES[b] for b in buckets] if kind == "age" else list(buckets)
    cols = min(len(labels), 4)
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False, sharey=True)
    x = np.arange(len(buckets))
    for ax, label in zip(axes.flat, labels, strict=False):
        table = pd.DataFrame(report[label]["lifecycle"][kind])
        for j, action in enumerate(("show", "reduce", "retire")):
            part = table[table["action"] == action].set_index("bucket").loc[list(buckets)]
            ax.plot(x, part["share"], marker="o", color=f"C{j}", label=action)
            ax.fill_between(x, part["ci_low"], part["ci_high"], color=f"C{j}", alpha=0.2)
        ax.set_title(label)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30, fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(labels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    axes.flat[0].set_ylabel("share of decisions")
    what = "item age in the user's pool" if kind == "age" else "predicted interest"
    fig.suptitle(
        f"What each policy does as {'an item ages' if kind == 'age' else 'interest fades'} (by {what})"
    )
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
