"""The figures of the run folders, each written as a PNG.

Fitted decay models: one reliability diagram per model, and λ per top category. Policy
comparisons: the return per user, and the lifecycle shares by item age or predicted interest.

Every PNG is written atomically, and matplotlib (Agg) is imported lazily, so importing this
module costs nothing.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.evaluation import AGE_LABELS, AGE_TITLES, INTEREST_LABELS
from decay_model.atomic import atomic_write_bytes
from decay_model.metrics import calibration_table


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, imported only when a plot is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path) -> None:
    """Write a figure as PNG atomically, so an interrupted run never leaves half a file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(Path(path), buffer.getvalue())


def plot_reliability_per_model(path: Path, labels: np.ndarray, predictions: dict[str, np.ndarray]) -> None:
    """One reliability diagram per model (panel): observed rate against mean prediction per bin.

    Marker area follows the bin's share of examples; the grey histogram at the
    bottom of each panel is the distribution of predictions.
    """
    plt = pyplot()
    n = max(len(predictions), 1)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.2 * rows), squeeze=False)
    for ax, (name, p) in zip(axes.flat, predictions.items(), strict=False):
        table = calibration_table(labels, p)
        total = sum(r["n"] for r in table)
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls=":")
        ax.scatter(
            [r["mean_pred"] for r in table],
            [r["observed"] for r in table],
            s=[max(4.0, 400 * r["n"] / total) for r in table],
            alpha=0.8,
        )
        ax.plot([r["mean_pred"] for r in table], [r["observed"] for r in table], lw=1)
        ax.hist(p, bins=30, range=(0, 1), weights=np.full(len(p), 0.3 / len(p)), color="grey", alpha=0.4)
        ax.set_title(name)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("observed rate")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Reliability on the test period")
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def lambda_by_category(encoded: dict[str, pd.DataFrame], categories: list[int]) -> pd.DataFrame:
    """Median and quartiles of λ (1/hour) per model and category, for the given categories."""
    rows = []
    for name, frame in encoded.items():
        sub = frame[frame["category_id"].isin(categories)]
        for category, part in sub.groupby("category_id"):
            q1, med, q3 = np.quantile(part["lam"], [0.25, 0.5, 0.75])
            rows.append(
                {
                    "model": name,
                    "category_id": int(category),
                    "pairs": len(part),
                    "q1": q1,
                    "median": med,
                    "q3": q3,
                }
            )
    return pd.DataFrame(rows)


def plot_lambda_by_category(
    path: Path, encoded: dict[str, pd.DataFrame], categories: list[int]
) -> pd.DataFrame:
    """Box plots of the fitted λ per category (most frequent first), one box per model side by side.

    Returns the medians table (:func:`lambda_by_category`) that the plot shows.
    """
    plt = pyplot()
    names = list(encoded)
    fig, ax = plt.subplots(figsize=(min(16, max(8, 0.4 * len(categories) * len(names))), 5))
    width = 0.8 / max(len(names), 1)
    colors = plt.get_cmap("tab10")
    for j, name in enumerate(names):
        frame = encoded[name]
        data = [frame.loc[frame["category_id"] == c, "lam"].to_numpy() for c in categories]
        positions = np.arange(len(categories)) + (j - (len(names) - 1) / 2) * width
        keep = [i for i, d in enumerate(data) if len(d)]
        box = ax.boxplot(
            [data[i] for i in keep],
            positions=positions[keep],
            widths=width * 0.9,
            showfliers=False,
            patch_artist=True,
        )
        for patch in box["boxes"]:
            patch.set_facecolor(colors(j % 10))
            patch.set_alpha(0.6)
        ax.plot([], [], color=colors(j % 10), lw=8, alpha=0.6, label=name)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(categories)))
    ax.set_xticklabels([str(c) for c in categories], rotation=60, fontsize=7)
    ax.set_xlabel("category (most frequent first)")
    ax.set_ylabel("fitted decay rate λ (1/hour, log scale)")
    ax.set_title("Decay rate per (user, category) pair, by category")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
    return lambda_by_category(encoded, categories)


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
