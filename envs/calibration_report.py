"""A calibration's result as text and pictures: its tables (Markdown and console) and the score map.

The numbers come from ``envs.calibration``; this module only lays them out.

What ``decaygym-calibrate`` writes into its run folder: ``calibration.json`` (every grid
point's scores and distances, the folds, the noise floor, the chosen constants as ``SimConfig``
overrides), ``table.md`` (the best points, the folds: chosen against shipped constants on
held-out users, and the sampling-noise floor: a real group against the other real users),
``config.json`` (settings, seed, versions, commit) and ``score_map.png`` (mean score over
``engagement_scale`` × ``engagement_lift`` at the chosen ``engagement_gap_power``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from decay_model.figures import pyplot, save_png
from decay_model.text_tables import markdown_table
from envs.calibration import KNOBS, Calibration

SHORT = {"engagement_scale": "κ", "engagement_gap_power": "β", "engagement_lift": "lift"}


def _f(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "n/a"


def table_sections(result: Calibration, top: int) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The printed and written tables: best grid points, folds, noise floor (header, rows)."""
    k = len(result.groups)
    head = [
        "rank",
        *(SHORT[n] for n in result.best.values),
        *(f"score g{g}" for g in range(k)),
        "mean",
        "worst",
    ]
    ranked = [*((str(j + 1), p) for j, p in enumerate(result.points[:top])), ("shipped", result.base)]
    rows = [
        [
            label,
            *(f"{v:g}" for v in point.values.values()),
            *(_f(x) for x in point.mean),
            _f(point.score_over(range(k))),
            _f(float(np.mean(point.worst))),
        ]
        for label, point in ranked
    ]
    fold_head = ["held-out group", "users", "chosen without it", "its score there", "shipped there"]
    fold_rows = [
        [
            str(f.held_out),
            str(len(result.groups[f.held_out])),
            ", ".join(f"{SHORT[n]} {v:g}" for n, v in f.chosen.items()),
            _f(f.chosen_held_out),
            _f(f.base_held_out),
        ]
        for f in result.folds
    ]
    best = result.best
    floor_head = ["statistic", *[f"floor g{g}" for g in range(k)], "chosen (mean over groups)", "shipped"]
    floor_rows = [
        [
            name,
            *[_f(result.noise_floor[g][name]) for g in range(k)],
            _f(float(np.nanmean([np.mean(best.distances[g][name]) for g in range(k)]))),
            _f(float(np.nanmean([np.mean(result.base.distances[g][name]) for g in range(k)]))),
        ]
        for name in result.statistics
    ]
    return {
        "grid (score = mean distance / target; best first)": (head, rows),
        "folds (chosen without the group, judged on it)": (fold_head, fold_rows),
        "noise floor (real group vs the other real users) and distances": (floor_head, floor_rows),
    }


def markdown(sections: dict[str, tuple[list[str], list[list[str]]]]) -> str:
    """The tables as Markdown, one heading each."""
    out = []
    for title, (head, rows) in sections.items():
        out += [f"### {title}", "", *markdown_table(head, rows), ""]
    return "\n".join(out)


def plot_score_map(path: Path, result: Calibration) -> None:
    """Mean score over κ × lift at the chosen β (lower is better; the choice is circled)."""
    plt = pyplot()
    scale, beta_, lift = KNOBS
    beta = result.best.values[beta_]
    pts = [p for p in result.points if p.values[beta_] == beta]
    xs = sorted({p.values[scale] for p in pts})
    ys = sorted({p.values[lift] for p in pts})
    grid = np.full((len(ys), len(xs)), np.nan)
    every = range(len(result.groups))
    for p in pts:
        grid[ys.index(p.values[lift]), xs.index(p.values[scale])] = p.score_over(every)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    im = ax.imshow(grid, origin="lower", cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
    ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
    ax.set_xlabel("engagement_scale κ")
    ax.set_ylabel("engagement_lift")
    lo, hi = np.nanmin(grid), np.nanmax(grid)
    for (r, c), v in np.ndenumerate(grid):
        if math.isfinite(v):  # dark text on the light (low) end of the colour map
            light = hi == lo or (v - lo) / (hi - lo) < 0.5
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8, color="k" if light else "w")
    best = result.best.values
    ax.scatter(
        [xs.index(best[scale])],
        [ys.index(best[lift])],
        s=500,
        facecolors="none",
        edgecolors="red",
        linewidths=2,
    )
    ax.set_title(f"fidelity score (mean distance/target) at β = {beta}")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
