"""The tuned threshold rules against trivial policies on held-out users (``decaygym-tune-threshold``).

A :class:`ThresholdStudy` first tunes the rules (``agents.tuning.tune``: the threshold rule, and
threshold+ and the best rule when asked for) on the training users. The tuned rules,
always-show, show-nothing (all reduce), retire-everything and random then run on the same
held-out users; every policy gets its summary with bootstrap intervals and its paired
differences to the tuned threshold rule and to tuned threshold+, and the "lifecycle is live"
check (:func:`lifecycle_check`) says whether the tuned rule uses all three actions and beats the
trivial policies.

Grid search: (show_above, retire_below) pairs with retire_below <= show_above on the training
users; the pair with the highest mean return is kept (ties go to the first pair in grid order).
What ``decaygym-tune-threshold`` writes: ``grid.csv`` (the threshold rule's training grid),
``tuning_grid.csv`` (every family's), ``tuned.json`` (reusable by ``decaygym-evaluate
--tuned``), ``results.csv`` (one row per policy and held-out user), ``summary.json``
(summaries, paired differences, lifecycle tables, seeds) and ``config.json`` (provenance).
Results depend on the simulator and its decay model; they are not claims about real users.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from rich.table import Table

from agents import seeds as seed_scheme
from agents.evaluation import evaluate, lifecycle_table, paired_difference, summarize
from agents.policy import AlwaysShow, Policy, RandomPolicy, RetireEverything, ShowNothing, ThresholdPolicy
from agents.seeds import UserSeeds
from agents.simulator import Simulator
from agents.tuning import TuningGrid, TuningResult, grid_size, save_tuned, tune
from decay_model.atomic import atomic_write_bytes, atomic_write_json

#: the families ``decaygym-tune-threshold`` can tune and compare (the oracle is ``decaygym-evaluate``'s)
FAMILIES = ("threshold", "threshold_plus", "best_rule")
LABELS = {"threshold_plus": "threshold+", "best_rule": "best rule"}
#: the trivial policies every tuned rule is compared with
TRIVIAL = 4


def fmt_ci(row: pd.Series, digits: int = 3) -> str:
    """``mean [low, high]``."""
    return f"{row['mean']:.{digits}f} [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"


def lifecycle_check(
    tuned: ThresholdPolicy,
    tuned_summary: pd.DataFrame,
    diffs: dict[str, pd.DataFrame],
    tuned_label: str,
    min_share: float = 0.01,
) -> dict[str, bool]:
    """The "lifecycle is live" check on the held-out users.

    The tuned rule has show_above > retire_below and uses each action on at least ``min_share`` of
    the non-empty slots; each trivial policy is clearly worse: the upper end of the paired CI of
    its return minus the tuned rule's is below 0.
    """
    out = {
        "show_above_gt_retire_below": tuned.show_above > tuned.retire_below,
        "uses_all_three_actions": all(
            tuned_summary.loc[f"share_{a}", "mean"] >= min_share for a in ("show", "reduce", "retire")
        ),
    }
    for label, d in diffs.items():
        if label != tuned_label and label != "random":
            out[f"{label.split(' ')[0]}_clearly_worse"] = bool(d.loc["return", "ci_high"] < 0)
    return out


@dataclass(frozen=True)
class ThresholdStudy:
    """What is tuned and compared, on which simulator and users."""

    sim: Simulator
    train: UserSeeds
    """The training users tuned on."""
    held_out: UserSeeds
    """The held-out users compared on."""
    families: list[str]
    """The rules tuned and compared (``FAMILIES``, the threshold rule first)."""
    grid: TuningGrid
    seed: int
    """Root seed: the random policy and the bootstrap."""
    batch: int
    n_boot: int

    def record(self) -> dict[str, Any]:
        """The study's settings as config.json keeps them."""
        return {
            "preset": self.sim.preset,
            "simulator": self.sim.record(),
            "sim_config": self.sim.config.to_dict(),
            "grid": [list(p) for p in self.grid.pairs()],
            "max_unanswered": list(self.grid.max_unanswered),
            "families": self.families,
            "train_seeds": [self.train.start, self.train.stop],
            "eval_seeds": [self.held_out.start, self.held_out.stop],
            "seed_scheme": seed_scheme.scheme(),
            "train_users": self.train.count,
            "eval_users": self.held_out.count,
            "batch": self.batch,
            "n_boot": self.n_boot,
            "selection": "highest mean return on the training users",
        }

    def steps(self) -> int:
        """How often :meth:`run` advances: every grid point, then every policy compared."""
        return grid_size(self.grid, self.families) + len(self.families) + TRIVIAL

    def run(self, advance: Callable[..., None], phase: Callable[[str], None]) -> ThresholdComparison:
        """Tune on the training users, then compare with the trivial policies on the held-out users.

        ``advance`` is called after every grid point and every policy compared (:meth:`steps` in
        all), ``phase`` with ``"held-out users"`` when the tuning is done.
        """
        sim, seed, batch, n_boot = self.sim, self.seed, self.batch, self.n_boot
        result = tune(
            sim.preset,
            self.train.seeds(),
            families=self.families,
            grid=self.grid,
            batch=batch,
            on_point=advance,
            **sim.env_kwargs(),
        )
        phase("held-out users")
        eval_seeds = self.held_out.seeds()
        rules = result.policies()
        tuned = rules["threshold"]
        assert isinstance(tuned, ThresholdPolicy)
        policies: dict[str, Policy] = {
            f"threshold (tuned {tuned.show_above:g}/{tuned.retire_below:g})": tuned,
            **{f"{LABELS[f]} (tuned)": rules[f] for f in self.families if f != "threshold"},
            "always-show": AlwaysShow(),
            "show-nothing (all reduce)": ShowNothing(),
            "retire-everything": RetireEverything(),
            "random": RandomPolicy(seed),
        }
        records: dict[str, pd.DataFrame] = {}
        for label, policy in policies.items():
            records[label] = evaluate(
                policy, preset=sim.preset, seeds=eval_seeds, num_users=batch, label=label, **sim.env_kwargs()
            )
            advance()

        tuned_label = next(iter(policies))
        plus_label = "threshold+ (tuned)" if "threshold_plus" in self.families else None
        summaries = {k: summarize(r, n_boot=n_boot, seed=seed) for k, r in records.items()}
        diffs = {
            k: paired_difference(r, records[tuned_label], n_boot=n_boot, seed=seed)
            for k, r in records.items()
        }
        diffs_plus = (
            {}
            if plus_label is None
            else {
                k: paired_difference(r, records[plus_label], n_boot=n_boot, seed=seed)
                for k, r in records.items()
            }
        )
        check = lifecycle_check(tuned, summaries[tuned_label], diffs, tuned_label)
        return ThresholdComparison(
            study=self,
            result=result,
            tuned=tuned,
            records=records,
            summaries=summaries,
            diffs=diffs,
            diffs_plus=diffs_plus,
            check=check,
            tuned_label=tuned_label,
            plus_label=plus_label,
        )


@dataclass(frozen=True)
class ThresholdComparison:
    """The tuning and the held-out comparison of a study, by policy label (the tuned threshold rule first)."""

    study: ThresholdStudy
    result: TuningResult
    tuned: ThresholdPolicy
    """The tuned threshold rule."""
    records: dict[str, pd.DataFrame]
    summaries: dict[str, pd.DataFrame]
    diffs: dict[str, pd.DataFrame]
    """Paired differences to the tuned threshold rule."""
    diffs_plus: dict[str, pd.DataFrame]
    """Paired differences to tuned threshold+ (empty when it was not tuned)."""
    check: dict[str, bool]
    tuned_label: str
    plus_label: str | None

    @property
    def grid(self) -> pd.DataFrame:
        """The threshold rule's training grid."""
        return self.result.family_table("threshold")


def write_comparison(run_dir: Path, comparison: ThresholdComparison) -> None:
    """``grid.csv``, ``tuning_grid.csv``, ``tuned.json``, ``results.csv`` and ``summary.json``."""
    c, result, grid, sim = comparison, comparison.result, comparison.grid, comparison.study.sim
    best = grid.loc[grid["return"].idxmax()]
    results = pd.concat(c.records.values(), ignore_index=True)
    atomic_write_bytes(run_dir / "grid.csv", grid.to_csv(index=False).encode())
    atomic_write_bytes(run_dir / "tuning_grid.csv", result.table.to_csv(index=False).encode())
    save_tuned(run_dir / "tuned.json", result, sim.record())
    atomic_write_bytes(run_dir / "results.csv", results.to_csv(index=False).encode())
    atomic_write_json(
        run_dir / "summary.json",
        {
            "preset": sim.preset,
            "simulator": sim.record(),
            "tuned": c.tuned.to_dict(),
            "tuned_train_return": float(best["return"]),
            "tuned_families": result.tuned,
            "train_return": result.train_return,
            "train_seeds": [c.study.train.start, c.study.train.stop],
            "eval_seeds": [c.study.held_out.start, c.study.held_out.stop],
            "summary": {k: s.to_dict(orient="index") for k, s in c.summaries.items()},
            "paired_difference_vs_tuned": {k: d.to_dict(orient="index") for k, d in c.diffs.items()},
            "paired_difference_vs_threshold_plus": {
                k: d.to_dict(orient="index") for k, d in c.diffs_plus.items()
            },
            "lifecycle_check": c.check,
            "lifecycle_tuned": {
                kind: lifecycle_table(c.records[c.tuned_label], kind).to_dict(orient="index")
                for kind in ("age", "interest")
            },
        },
    )


def results_table(comparison: ThresholdComparison) -> Table:
    """The comparison for a terminal (a rich table)."""
    c, sim = comparison, comparison.study.sim
    table = Table(
        title=f"threshold rules vs trivial policies: {'preset' if sim.sim is None else 'simulator'} "
        f"{sim.label}, {c.study.held_out.count} held-out users "
        f"(tuned on {c.study.train.count} training users, {len(c.result.table)} grid points); "
        "mean [95% bootstrap CI]"
    )
    for col in (
        "policy",
        "return",
        "return - tuned (paired)",
        *(["return - threshold+ (paired)"] if c.plus_label else []),
        "clicks",
        "purchases",
        "churn rate",
        "show",
        "reduce",
        "retire",
    ):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for label, s in c.summaries.items():
        d = c.diffs[label].loc["return"]
        table.add_row(
            label,
            fmt_ci(s.loc["return"]),
            "-" if label == c.tuned_label else fmt_ci(d),
            *(
                [("-" if label == c.plus_label else fmt_ci(c.diffs_plus[label].loc["return"]))]
                if c.plus_label
                else []
            ),
            f"{s.loc['clicks', 'mean']:.2f}",
            f"{s.loc['purchases', 'mean']:.2f}",
            f"{s.loc['churned', 'mean']:.3f}",
            f"{s.loc['share_show', 'mean']:.3f}",
            f"{s.loc['share_reduce', 'mean']:.3f}",
            f"{s.loc['share_retire', 'mean']:.3f}",
        )
    return table


def result_lines(comparison: ThresholdComparison) -> list[str]:
    """What to print after the table: the best grid points, the tuned parameters and the check."""
    c, result = comparison, comparison.result
    top = c.grid.sort_values("return", ascending=False, kind="stable").head(5)
    lines = ["best grid points on the training users (mean return):"]
    for _, r in top.iterrows():
        lines.append(
            f"  show_above={r['show_above']:g} retire_below={r['retire_below']:g}: return {r['return']:.3f}, "
            f"shares show/reduce/retire {r['share_show']:.2f}/{r['share_reduce']:.2f}/{r['share_retire']:.2f}"
        )
    for family in c.study.families:
        params = ", ".join(f"{k}={v}" for k, v in result.tuned[family].items())
        lines.append(f"tuned {family}: {params} (training return {result.train_return[family]:.3f})")
    lines.append(
        "lifecycle check: "
        + "; ".join(f"{k.replace('_', ' ')}: {'yes' if v else 'NO'}" for k, v in c.check.items())
    )
    return lines
