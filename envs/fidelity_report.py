"""The fidelity report as text and pictures: its table (Markdown and console) and the overlay plots.

The numbers come from ``envs.fidelity``; ``decaygym-fidelity`` and ``decaygym-build-sim`` write
them the same way through ``write_table_and_plots``.

What ``decaygym-fidelity`` writes into its run folder: ``fidelity.json`` (per statistic:
simulated, real, distance, target, pass; plus the re-engagement curve, counts and definitions),
``table.md``, ``config.json`` (settings, seed, versions, commit) and the overlays
``time_between_visits.png``, ``events_per_user.png``, ``reengagement.png``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from decay_model.atomic import atomic_write_bytes
from decay_model.figures import pyplot, save_png
from decay_model.text_tables import markdown_table, print_tables
from envs.fidelity import FidelityReport


def _fmt(value: float | None, metric: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3f}" if metric != "count" else f"{value:g}"


def table_rows(report: FidelityReport) -> list[list[str]]:
    """Statistic | simulated | real | distance | target | pass, as text cells."""
    rows = []
    for s in report.statistics:
        name = "KS" if s.metric == "ks" else "rel. err."
        verdict = "n/a" if not math.isfinite(s.distance) else ("yes" if s.passed else "no")
        rows.append(
            [
                s.label,
                _fmt(s.simulated),
                _fmt(s.real),
                f"{_fmt(s.distance)} ({name})",
                f"<= {s.target:g}",
                verdict,
            ]
        )
    return rows


HEADER = ("statistic", "simulated", "real", "distance", "target", "pass")


def format_table(report: FidelityReport) -> str:
    """The table as Markdown."""
    return "\n".join(markdown_table(HEADER, table_rows(report)))


def print_table(report: FidelityReport) -> None:
    """The table on stdout."""
    title = f"Simulator fidelity: {report.n_users:,} users of the test period"
    print_tables({title: (HEADER, table_rows(report))}, width=140)


def _ecdf(ax: Any, values: np.ndarray, label: str) -> None:
    if len(values) == 0:
        return
    x = np.sort(values)
    ax.step(x, np.arange(1, len(x) + 1) / len(x), where="post", label=f"{label} (n={len(x):,})")


def plot_overlays(run_dir: Path, report: FidelityReport) -> list[str]:
    """Simulated against real: ECDFs of the two distributions and the re-engagement curve."""
    plt = pyplot()
    written = []
    by_name = {s.name: s for s in report.statistics}
    for name, values, xlabel, log_x in (
        (
            "time_between_visits",
            (report.simulated.gaps_h, report.real.gaps_h),
            "hours between visit starts",
            True,
        ),
        (
            "events_per_user",
            (report.simulated.events_per_user, report.real.events_per_user),
            "events per user in the window",
            False,
        ),
    ):
        fig, ax = plt.subplots(figsize=(6, 4.5))
        _ecdf(ax, np.asarray(values[0], float), "simulated")
        _ecdf(ax, np.asarray(values[1], float), "real")
        stat = by_name["time_between_visits_h" if name == "time_between_visits" else name]
        ax.set_title(f"{stat.label.split(' (')[0]}: KS = {_fmt(stat.distance)}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction ≤ x")
        if log_x and (len(values[0]) or len(values[1])):
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        save_png(fig, run_dir / f"{name}.png")
        plt.close(fig)
        written.append(f"{name}.png")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    hours = np.asarray(report.real.curve_hours)
    ax.plot(hours, report.simulated.curve, marker="o", label="simulated")
    ax.plot(hours, report.real.curve, marker="s", label="real")
    ax.set_xscale("log")
    ax.set_xlabel("hours since the engagement")
    ax.set_ylabel("P(same category again, later visit)")
    ax.set_title("Category re-engagement curve")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_png(fig, run_dir / "reengagement.png")
    plt.close(fig)
    written.append("reengagement.png")
    return written


def write_table_and_plots(report: FidelityReport, folder: Path) -> None:
    """``table.md`` and the overlay plots of a report, into ``folder``."""
    atomic_write_bytes(folder / "table.md", (format_table(report) + "\n").encode())
    plot_overlays(folder, report)
