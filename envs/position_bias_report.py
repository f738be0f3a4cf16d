"""The position-bias statistics as text: table cells, the Markdown report, the console tables, the plot.

Numbers come from ``envs.position_bias``; this module only lays them out.

What ``decaygym-position-bias`` writes into its run folder: ``position_ctr.csv`` (one row per
policy and position), ``position_ctr.json`` (the rows, the tests and the verdicts),
``position_ctr.md``, ``position_ctr.png`` and ``config.json`` (settings, data fingerprints,
versions, commit).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from decay_model.figures import pyplot, save_png
from decay_model.text_tables import markdown_table, print_tables
from envs.position_bias import PRIOR, logging_note


def _pct(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f} %"


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, fmt)


def _gamma_text(gamma: dict | None) -> str:
    if gamma is None:
        return "n/a"
    lo = "< -10" if gamma["low"] is None else f"{gamma['low']:.2f}"
    hi = "> 10" if gamma["high"] is None else f"{gamma['high']:.2f}"
    return f"{gamma['mle']:.2f} [{lo}, {hi}]"


ROW_HEADER = (
    "policy",
    "position",
    "impressions",
    "clicks",
    "CTR",
    "interval",
    "prior CTR",
    "prior inside",
    "IPS CTR",
)
TEST_HEADER = (
    "policy",
    "clicks / rows",
    "pooled CTR",
    "scale s",
    "χ² p",
    "exact p",
    "LR prior:flat",
    "γ (interval)",
    "impr./position for 80 % power",
)


def row_cells(table: pd.DataFrame) -> list[list[str]]:
    """The per-position table as text cells."""
    return [
        [
            r.policy,
            str(r.position),
            f"{r.impressions:,}",
            str(r.clicks),
            _pct(r.ctr),
            f"[{_pct(r.ctr_low)}, {_pct(r.ctr_high)}]",
            _pct(r.prior_ctr),
            "yes" if r.prior_inside else "no",
            f"{_pct(r.ips_ctr)} [{_pct(r.ips_low)}, {_pct(r.ips_high)}]",
        ]
        for r in table.itertuples()
    ]


def summary_cells(summaries: dict[str, dict]) -> list[list[str]]:
    """The per-policy tests as text cells."""
    cells = []
    for label, s in summaries.items():
        needed = s["impressions_per_position_for_power"]
        cells.append(
            [
                label,
                f"{s['clicks']} / {s['rows']:,}",
                _pct(s["pooled_ctr"]),
                _num(s["prior_scale"], ".4g"),
                _num(s["tests"]["chi2_p"], ".2f"),
                _num(s["tests"]["exact_p"], ".2f"),
                f"{_num(s['lr_prior_vs_flat'], '.2g')} (log {_num(s['log_lr_prior_vs_flat'], '.2f')})",
                _gamma_text(s["gamma"]),
                "n/a"
                if needed is None
                else f"{needed:,.0f} (×{s['sample_multiple_for_power']:.1f} the rows)",
            ]
        )
    return cells


def scaling_text() -> str:
    """How the prior is put on the CTR scale (stated in every report)."""
    return (
        f"Prior: relative CTR w_p = {PRIOR}, scaled per policy by s = clicks / Σ_p impressions_p · w_p, "
        "so that it predicts as many clicks as were observed (the policy's pooled CTR; "
        "prior CTR_p = s · w_p)."
    )


def format_markdown(table: pd.DataFrame, summaries: dict[str, dict], level: float, method: str) -> str:
    """The report as Markdown: per-position table, per-policy tests, notes and verdicts."""
    lines = [
        "# Click-through by position (Open Bandit Dataset)",
        "",
        scaling_text(),
        f"Intervals: {level:.0%} {method} for the CTR; normal ({level:.0%}) for the self-normalised IPS CTR "
        "(toward a uniform-random choice of item).",
        "",
        *markdown_table(ROW_HEADER, row_cells(table)),
        "",
        f'Tests of "CTR is the same at every position" (Pearson χ², exact Freeman-Halton); LR = likelihood '
        "of the scaled prior over that of a flat CTR (one free scale each; Royall: beyond 8 or below 1/8 "
        f"is fairly strong evidence); γ = exponent in CTR ∝ w_p^γ with its {level:.0%} profile-likelihood "
        "interval (0 = flat, 1 = prior); impressions per position that a χ² test (α = 0.05) would need to "
        "reject a flat CTR with 80 % power if the prior were true at the observed CTR.",
        "",
        *markdown_table(TEST_HEADER, summary_cells(summaries)),
        "",
        "Notes:",
        "",
        *[f"- {logging_note(label, s['uniform_logging'])}" for label, s in summaries.items()],
        "",
        "Verdicts:",
        "",
        *[f"- {label}: {s['verdict']}." for label, s in summaries.items()],
    ]
    return "\n".join(lines) + "\n"


def print_table(table: pd.DataFrame, summaries: dict[str, dict], level: float, method: str) -> None:
    """Both tables on stdout, then how the prior is scaled and each policy's verdict."""
    print_tables(
        {
            f"CTR by position ({level:.0%} {method}) beside the scaled prior {PRIOR}": (
                ROW_HEADER,
                row_cells(table),
            ),
            "Can the data tell the prior from no position effect?": (TEST_HEADER, summary_cells(summaries)),
        },
        [scaling_text(), *(f"{label}: {s['verdict']}." for label, s in summaries.items())],
    )


def plot_ctr(path: Path, table: pd.DataFrame, summaries: dict[str, dict], level: float) -> None:
    """CTR by position with its interval per policy (one panel each), the scaled prior and flat lines."""
    plt = pyplot()
    labels = list(summaries)
    fig, axes = plt.subplots(1, len(labels), figsize=(4.6 * len(labels), 4.2), sharey=True, squeeze=False)
    for ax, label in zip(axes.flat, labels, strict=True):
        part = table[table["policy"] == label]
        x = part["position"].to_numpy()
        ctr = part["ctr"].to_numpy()
        err = np.vstack([ctr - part["ctr_low"].to_numpy(), part["ctr_high"].to_numpy() - ctr])
        ax.errorbar(
            x, 100 * ctr, yerr=100 * err, fmt="o", capsize=4, label=f"observed ({level:.0%} interval)"
        )
        ax.plot(x, 100 * part["prior_ctr"].to_numpy(), marker="s", lw=1.5, label=f"prior {PRIOR}, scaled")
        ax.plot(x, 100 * part["flat_ctr"].to_numpy(), ls=":", color="grey", label="flat (pooled CTR)")
        s = summaries[label]
        if not s["uniform_logging"]:
            ips = part["ips_ctr"].to_numpy()
            ips_err = np.vstack([ips - part["ips_low"].to_numpy(), part["ips_high"].to_numpy() - ips])
            ax.errorbar(
                x + 0.08,
                100 * ips,
                yerr=100 * ips_err,
                fmt="o",
                mfc="none",
                color="grey",
                capsize=3,
                label="IPS, uniform item choice",
            )
            ax.legend(fontsize=7, loc="upper center", ncol=2)
        ax.set_title(
            f"{label}: {s['clicks']} clicks / {s['rows']:,}\nLR prior:flat {s['lr_prior_vs_flat']:.2g}"
        )
        ax.set_xticks(x)
        ax.set_xlabel("position")
        ax.grid(alpha=0.3)
    axes.flat[0].set_ylabel("click-through rate (%)")
    top = max(table["ctr_high"].max(), table["ips_high"].max(), table["prior_ctr"].max())
    axes.flat[0].set_ylim(0, 100 * top * 1.35)
    axes.flat[0].legend(fontsize=7, loc="upper center", ncol=2)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def report_json(table: pd.DataFrame, summaries: dict[str, dict], level: float, method: str) -> dict[str, Any]:
    """``position_ctr.json``: the prior, the interval, and per policy its tests, note and rows."""
    return {
        "prior": PRIOR,
        "scaling": scaling_text(),
        "interval": {"method": method, "level": level},
        "policies": {
            label: {
                **s,
                "note": logging_note(label, s["uniform_logging"]),
                "positions": table[table["policy"] == label].drop(columns="policy").to_dict("records"),
            }
            for label, s in summaries.items()
        },
    }
