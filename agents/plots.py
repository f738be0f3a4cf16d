"""Plots of fitted decay models: one reliability diagram per model, and λ per top category.

Both functions write a PNG atomically and import matplotlib (Agg) lazily, so
importing this module costs nothing.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
