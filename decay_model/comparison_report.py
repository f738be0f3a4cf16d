"""Fitted decay models compared, as text and pictures: the metrics table, decay curves, calibration.

The numbers come from ``decay_model.artifact.fit_and_save`` and ``decay_model.metrics``; this
module only lays them out. matplotlib and rich load only when a plot or table is drawn.

What ``decaygym-fit-decay`` writes into its run folder: ``metrics.json`` (model -> split ->
metric, including the ranking metrics ``hr@10``, ``ndcg@10``, ``n_rank`` of
``decay_model.ranking``), ``table.md``, ``config.json`` (settings, seed, versions, commit), one
artifact per model under ``artifacts/<model>/``, ``decay_curves.png``, ``reliability.png``,
``reliability_per_model.png`` and, when neural and exponential are both fitted,
``lambda_by_category.png`` (+ ``.json``: λ per top-20 category).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from decay_model.atomic import atomic_write_bytes, atomic_write_json
from decay_model.figures import pyplot, save_png
from decay_model.logs import BehaviourLog
from decay_model.metrics import TABLE_NAMES, calibration_table
from decay_model.task import EvalTask

REPORTED_SPLITS = ("valid", "test")


def format_table(metrics: dict[str, dict[str, dict[str, float | None]]]) -> str:
    """Markdown table: one row per model and split."""
    header = "| model | split | " + " | ".join(TABLE_NAMES) + " |"
    lines = [header, "|" + "---|" * (len(TABLE_NAMES) + 2)]
    for model, splits in metrics.items():
        for split, row in splits.items():
            cells = []
            for name in TABLE_NAMES:
                value = row[name]
                if value is None:
                    cells.append("n/a")
                elif name in ("n", "n_rank"):
                    cells.append(f"{int(value):,}")
                else:
                    cells.append(f"{value:.4f}")
            lines.append(f"| {model} | {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_table(metrics: dict[str, dict[str, dict[str, float | None]]]) -> None:
    """The comparison table on stdout, with the best value of each split in bold."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Re-engagement within the horizon: decay models compared")
    for col in ("model", "split", *TABLE_NAMES):
        table.add_column(col, justify="left" if col in ("model", "split") else "right")
    for split in REPORTED_SPLITS:
        rows = {m: s[split] for m, s in metrics.items() if split in s}
        best_ll = min(r["log_loss"] for r in rows.values())
        best_auc = max((r["auc"] for r in rows.values() if r["auc"] is not None), default=None)
        for model, row in rows.items():
            cells = []
            for name in TABLE_NAMES:
                value = row[name]
                count = name in ("n", "n_rank")
                text = "n/a" if value is None else (f"{int(value):,}" if count else f"{value:.4f}")
                if (name == "log_loss" and value == best_ll) or (name == "auc" and value == best_auc):
                    text = f"[bold]{text}[/bold]"
                cells.append(text)
            table.add_row(model, split, *cells)
    Console(width=140).print(table)


def plot_decay_curves(path: Path, models: dict[str, Any], log: BehaviourLog, top: int = 8) -> None:
    """Fitted decay of one event's interest, e^{-λ_c t}, for the most frequent categories."""
    plt = pyplot()

    hours = np.linspace(0, 96, 200)
    fig, ax = plt.subplots(figsize=(8, 5))
    counts = log.events["category_id"].value_counts().head(top)
    rates = models["exponential"].category_rates() if "exponential" in models else {}
    colors = plt.get_cmap("tab10")
    for i, category in enumerate(counts.index):
        lam = rates.get(int(category))
        if lam is None:
            continue
        ax.plot(
            hours,
            np.exp(-lam * hours),
            color=colors(i % 10),
            label=f"category {category} (λ={lam:.3f}/h, half-life {math.log(2) / lam:.0f} h)",
        )
    if "global_decay" in models:
        lam0 = math.exp(models["global_decay"].log_lambda0)
        ax.plot(hours, np.exp(-lam0 * hours), "k--", lw=2, label=f"global_decay (λ={lam0:.3f}/h)")
    ax.set_xlabel("hours since the event")
    ax.set_ylabel("remaining interest e^{-λt}")
    ax.set_title("Fitted interest decay of the most frequent categories")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def plot_reliability(path: Path, task: EvalTask, predictions: dict[str, np.ndarray]) -> None:
    """Reliability diagram on the test period: mean prediction against observed rate per bin."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls=":")
    y = task.labels("test")
    for name, p in predictions.items():
        rows = calibration_table(y, p)
        ax.plot([r["mean_pred"] for r in rows], [r["observed"] for r in rows], marker="o", label=name)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed re-engagement rate")
    ax.set_title("Calibration on the test period")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


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


def write_report(
    run_dir: Path,
    metrics: dict[str, dict[str, dict[str, float | None]]],
    task: EvalTask,
    log: BehaviourLog,
    fitted: dict[str, Any],
    test_predictions: dict[str, np.ndarray],
    encoded: dict[str, Any],
) -> None:
    """Everything ``decaygym-fit-decay`` writes after the fits (see the module docstring)."""
    atomic_write_json(run_dir / "metrics.json", metrics)
    periods = task.describe().astype({"start": str, "end": str}).to_dict(orient="records")
    atomic_write_json(run_dir / "task.json", {"config": task.config.to_dict(), "periods": periods})
    atomic_write_bytes(run_dir / "table.md", (format_table(metrics) + "\n").encode())
    plot_reliability(run_dir / "reliability.png", task, test_predictions)
    plot_reliability_per_model(run_dir / "reliability_per_model.png", task.labels("test"), test_predictions)
    if encoded.get("neural") is not None and encoded.get("exponential") is not None:
        top = [int(c) for c in log.events["category_id"].value_counts().index[:20]]
        pair = {k: encoded[k] for k in ("exponential", "neural")}
        lam = plot_lambda_by_category(run_dir / "lambda_by_category.png", pair, top)
        atomic_write_json(run_dir / "lambda_by_category.json", lam.to_dict(orient="records"))
    if "exponential" in fitted or "global_decay" in fitted:
        plot_decay_curves(run_dir / "decay_curves.png", fitted, log)
