"""The report of a policy comparison (``agents.comparison``) as tables, summary and plots.

Written to the run folder: ``table.csv`` (one row per policy), ``table.md`` (the comparison and
the lifecycle by item age, every number with its 95 % interval), ``summary.json`` (everything,
with the tuned parameters and each policy's spec) and the plots ``returns.png``,
``lifecycle.png`` and ``lifecycle_interest.png``. ``results_table`` is the comparison for a
terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from agents import seeds as seed_scheme
from agents.comparison import ORACLE, REFERENCES, SHARES, THRESHOLD
from agents.evaluation import AGE_LABELS, AGE_TITLES, REPORT_METRICS
from agents.plots import plot_lifecycle, plot_returns
from agents.policy import Policy
from agents.policy_specs import custom_params
from agents.simulator import Simulator
from decay_model.atomic import atomic_write_bytes, atomic_write_json

METRIC_TITLES = {
    "return": "return",
    "clicks": "clicks",
    "purchases": "purchases",
    "slots_used": "slots used",
    "churned": "churn rate",
}


def fmt_ci(stats: dict[str, float] | None, digits: int = 3) -> str:
    """``mean [low, high]``, or ``-``."""
    if stats is None or stats.get("mean") is None or not np.isfinite(stats["mean"]):
        return "-"
    return f"{stats['mean']:.{digits}f} [{stats['ci_low']:.{digits}f}, {stats['ci_high']:.{digits}f}]"


def table_frame(report: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The tidy table: one row per policy, ``<metric>_{mean,ci_low,ci_high}`` columns."""
    rows = []
    for label, r in report.items():
        row: dict[str, Any] = {"policy": label, "n_users": r["metrics"]["return"]["n"]}
        for metric in (*REPORT_METRICS, *SHARES):
            for key in ("mean", "ci_low", "ci_high"):
                row[f"{metric}_{key}"] = r["metrics"][metric][key]
        for reference in (THRESHOLD, *REFERENCES):
            diff = r.get(f"diff_vs_{reference}")
            if diff is None:
                continue
            for metric in REPORT_METRICS:
                for key in ("mean", "ci_low", "ci_high"):
                    row[f"diff_{metric}_vs_{reference}_{key}"] = diff[metric][key]
        gap = r["gap_closed"] or {}
        for key in ("mean", "ci_low", "ci_high"):
            row[f"gap_closed_{key}"] = gap.get(key, float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def lifecycle_cell(rows: list[dict[str, Any]], bucket: str) -> str:
    """``show/reduce/retire`` shares of one bucket, e.g. ``0.52/0.31/0.17 (n=1234)``."""
    mine = {r["action"]: r for r in rows if r["bucket"] == bucket}
    n = next(iter(mine.values()))["decisions"]
    if not n:
        return "-"
    return "/".join(f"{mine[a]['share']:.2f}" for a in ("show", "reduce", "retire")) + f" (n={n})"


def references(report: dict[str, dict[str, Any]]) -> list[str]:
    """The rules of ``REFERENCES`` the report holds paired differences to (those evaluated)."""
    return [name for name in REFERENCES if name in report]


def diff_cell(report: dict[str, dict[str, Any]], label: str, reference: str) -> str:
    """The paired difference in mean return of ``label`` to ``reference`` (``-`` for the reference)."""
    return "-" if label == reference else fmt_ci(report[label][f"diff_vs_{reference}"]["return"])


def markdown_table(report: dict[str, dict[str, Any]], title: str) -> str:
    """``table.md``: the comparison and the lifecycle by item age, every number with its 95 % interval."""
    refs = references(report)
    head = [
        "policy",
        *(METRIC_TITLES[m] for m in REPORT_METRICS),
        "return − threshold (paired)",
        *(f"return − {REFERENCES[name]} (paired)" for name in refs),
        "gap closed",
        "show / reduce / retire",
    ]
    lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, r in report.items():
        m = r["metrics"]
        cells = [
            label,
            *(fmt_ci(m[metric]) for metric in REPORT_METRICS),
            diff_cell(report, label, THRESHOLD),
            *(diff_cell(report, label, name) for name in refs),
            fmt_ci(r["gap_closed"], 2) if label not in (THRESHOLD, ORACLE) else "-",
            "/".join(f"{m[s]['mean']:.2f}" for s in SHARES),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mean [95 % bootstrap interval over users]; differences and gap shares are paired (same users). "
        "Gap closed = (policy − threshold) / (oracle − threshold) in mean return.",
        "",
        "### Lifecycle: share of show / reduce / retire by item age (decisions pooled over users)",
        "",
        "| policy | " + " | ".join(AGE_TITLES[b] for b in AGE_LABELS) + " |",
        "|" + "---|" * (len(AGE_LABELS) + 1),
    ]
    for label, r in report.items():
        rows = r["lifecycle"]["age"]
        lines.append(f"| {label} | " + " | ".join(lifecycle_cell(rows, b) for b in AGE_LABELS) + " |")
    return "\n".join(lines) + "\n"


def results_table(report: dict[str, dict[str, Any]], title: str) -> Table:
    """The comparison for a terminal (a rich table)."""
    table = Table(title=title)
    refs = references(report)
    for col in (
        "policy",
        "return",
        "− threshold (paired)",
        *(f"− {REFERENCES[name]} (paired)" for name in refs),
        "gap closed",
        "clicks",
        "purchases",
        "slots",
        "churn",
        "show/reduce/retire",
    ):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for label, r in report.items():
        m = r["metrics"]
        table.add_row(
            label,
            fmt_ci(m["return"]),
            diff_cell(report, label, THRESHOLD),
            *(diff_cell(report, label, name) for name in refs),
            fmt_ci(r["gap_closed"], 2) if label not in (THRESHOLD, ORACLE) else "-",
            f"{m['clicks']['mean']:.2f}",
            f"{m['purchases']['mean']:.2f}",
            f"{m['slots_used']['mean']:.1f}",
            f"{m['churned']['mean']:.3f}",
            "/".join(f"{m[s]['mean']:.2f}" for s in SHARES),
        )
    return table


def report_title(sim: Simulator, eval_users: int, seed: int) -> str:
    """The title of the tables: the simulator, the held-out users and how to read the numbers."""
    return (
        f"{'preset' if sim.sim is None else 'simulator'} {sim.label}, "
        f"{eval_users} held-out users (seed {seed}); "
        "mean [95% bootstrap CI]; baselines tuned on training users"
    )


def tuned_line(tuned: dict[str, Any], specs: Sequence[str]) -> str:
    """The tuned parameters of the evaluated rules on one line: ``family: k=v, ...; ...``."""
    chosen = {
        **tuned["tuned"],
        **{spec: entry["tuned"] for spec, entry in tuned.get("custom", {}).items() if spec in specs},
    }
    return "; ".join(
        f"{family}: " + ", ".join(f"{k}={v}" for k, v in params.items()) for family, params in chosen.items()
    )


def build_summary(
    report: dict[str, dict[str, Any]],
    *,
    sim: Simulator,
    seed: int,
    eval_users: int,
    n_boot: int,
    tuned: dict[str, Any],
    tuned_source: str,
    policies: dict[str, Policy],
    labels: dict[str, str],
) -> dict[str, Any]:
    """``summary.json``: the report with the run's settings, the tuned parameters and each policy's spec."""
    return {
        "preset": sim.preset,
        "simulator": sim.record(),
        "seed": seed,
        "eval_users": eval_users,
        "eval_seeds": seed_scheme.eval_users(seed, eval_users).to_dict(),
        "threshold": THRESHOLD,
        "oracle": ORACLE,
        "tuned": tuned,
        "tuned_source": tuned_source,
        "confidence": 0.95,
        "n_boot": n_boot,
        "policies": {
            label: {
                "spec": labels[label],
                "policy": repr(policies[label]),
                **custom_params(labels[label], tuned),
                **r,
            }
            for label, r in report.items()
        },
        "notes": [
            "intervals: percentile bootstrap over the held-out simulated users (resampled jointly "
            "for paired differences and the gap share)",
            "gap_closed = (policy - threshold) / (oracle - threshold) in mean return; meaningless "
            "when the oracle's gap (gap, gap_ci_*) is near zero",
            "results depend on the simulator preset and its decay model, not on real users",
        ],
    }


def write_report(
    run_dir: Path,
    report: dict[str, dict[str, Any]],
    records: dict[str, pd.DataFrame],
    title: str,
    summary: dict[str, Any],
) -> None:
    """``table.csv``, ``table.md``, ``summary.json`` and the plots of the returns and the lifecycle."""
    frame = table_frame(report)
    atomic_write_bytes(run_dir / "table.csv", frame.to_csv(index=False).encode())
    atomic_write_bytes(run_dir / "table.md", markdown_table(report, title).encode())
    atomic_write_json(run_dir / "summary.json", summary)
    plot_returns(run_dir / "returns.png", records)
    plot_lifecycle(run_dir / "lifecycle.png", report, "age")
    plot_lifecycle(run_dir / "lifecycle_interest.png", report, "interest")
