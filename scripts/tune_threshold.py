r"""Tune the threshold rules on training users, then compare them with trivial policies on held-out users.

Examples:
    python -m scripts.tune_threshold --preset default --out runs/tune_default
    python -m scripts.tune_threshold --preset small --train-users 64 --eval-users 64 \
        --grid 0.1,0.25 0,0.05 --families threshold --out runs/tune_small

Protocol (``agents.tuning.tune``): a grid of (show_above, retire_below) pairs with retire_below <=
show_above is run on the training users of ``--seed`` (``agents.seeds``) and the pair with the
highest mean return is kept (ties go to the first pair in grid order: lowest show_above, then
lowest retire_below). threshold+ is tuned over the same pairs and ``--max-unanswered``; the best
rule (``agents.policy.BestRulePolicy``) a knob at a time from threshold+'s point. The tuned rules
(``--families``), always-show, show-nothing (all reduce), retire-everything and random are then
evaluated on the held-out evaluation users of ``--seed`` (disjoint from every training user), the
same users for every policy; the table gives mean ± 95 % bootstrap CI over users and the paired
differences to the tuned threshold rule and to tuned threshold+. Written to --out: ``grid.csv``
(the threshold rule's training grid), ``tuning_grid.csv`` (every family's), ``tuned.json``
(reusable by ``decaygym-evaluate --tuned``), ``results.csv`` (one row per policy and held-out
user), ``summary.json`` (summaries, paired differences, lifecycle tables, seeds) and
``config.json`` (provenance). Results depend on the simulator preset and its decay model; they are not claims
about real users. ``decaygym-evaluate`` runs the full comparison (threshold+, greedy, oracle,
trained models).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd
from rich.console import Console
from rich.table import Table

from agents import seeds as seed_scheme
from agents import tuning
from agents.evaluation import evaluate, lifecycle_table, paired_difference, summarize
from agents.policy import AlwaysShow, Policy, RandomPolicy, RetireEverything, ShowNothing, ThresholdPolicy
from agents.tuning import DEFAULT_MAX_UNANSWERED
from decay_model.atomic import atomic_write_bytes, atomic_write_json
from decay_model.errors import ConfigError
from scripts.common import (
    add_simulator_options,
    console,
    make_run_dir,
    parse_max_unanswered,
    progress,
    resolve_simulator,
    run_cli,
    write_provenance,
)

DEFAULT_SHOW = ",".join(f"{v:g}" for v in tuning.DEFAULT_SHOW)
DEFAULT_RETIRE = ",".join(f"{v:g}" for v in tuning.DEFAULT_RETIRE)
DEFAULT_MAX = ",".join("none" if k is None else str(k) for k in DEFAULT_MAX_UNANSWERED)
#: the families this script can tune and compare (the oracle is ``decaygym-evaluate``'s)
FAMILIES = ("threshold", "threshold_plus", "best_rule")
LABELS = {"threshold_plus": "threshold+", "best_rule": "best rule"}


def parse_floats(text: str, name: str) -> list[float]:
    """A comma list of numbers; ConfigError naming the option otherwise."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{name}: expected a comma list of numbers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{name}: expected at least one number, got {text!r}")
    return sorted(set(values))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="decaygym-tune-threshold", description=__doc__.splitlines()[0])
    add_simulator_options(parser)
    parser.add_argument(
        "--seed", type=int, default=0, help="root seed: user seeds, random policy, bootstrap (default: 0)"
    )
    parser.add_argument(
        "--out", help="run folder (default: runs/tune_threshold__<preset>__seed<seed>__<time>)"
    )
    parser.add_argument("--train-users", type=int, default=1000, help="users per grid point (default: 1000)")
    parser.add_argument("--eval-users", type=int, default=2000, help="held-out users (default: 2000)")
    parser.add_argument(
        "--grid",
        nargs=2,
        metavar=("SHOW_ABOVE", "RETIRE_BELOW"),
        default=[DEFAULT_SHOW, DEFAULT_RETIRE],
        help="comma lists of show_above and retire_below values; pairs with retire_below > show_above "
        f"are skipped (default: {DEFAULT_SHOW} {DEFAULT_RETIRE})",
    )
    parser.add_argument(
        "--max-unanswered",
        default=DEFAULT_MAX,
        help="threshold+ grid of unanswered exposures before retiring, 'none' = never "
        f"(default: {DEFAULT_MAX})",
    )
    parser.add_argument(
        "--families",
        nargs="+",
        default=list(FAMILIES),
        choices=FAMILIES,
        help="rules to tune and compare; the threshold rule always is (default: all)",
    )
    parser.add_argument("--batch", type=int, default=2048, help="users stepped together (default: 2048)")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    return parser.parse_args(argv)


def grid_pairs(show: list[float], retire: list[float]) -> list[tuple[float, float]]:
    """Every (show_above, retire_below) with retire_below <= show_above."""
    pairs = [(s, r) for s in show for r in retire if r <= s]
    if not pairs:
        raise ConfigError("--grid: no pair has retire_below <= show_above")
    return pairs


def fmt_ci(row: pd.Series, digits: int = 3) -> str:
    """``mean [low, high]``."""
    return f"{row['mean']:.{digits}f} [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"


def plus_cell(diffs_plus: dict[str, pd.DataFrame], label: str, plus_label: str) -> str:
    """The paired difference in return of ``label`` to threshold+ (``-`` for threshold+ itself)."""
    return "-" if label == plus_label else fmt_ci(diffs_plus[label].loc["return"])


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


def main(argv: Sequence[str] | None = None) -> int:
    """Tune, evaluate, print the table and write the run folder; returns the exit status."""
    args = parse_args(argv)
    for name in ("train_users", "eval_users", "batch", "n_boot"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    show = parse_floats(args.grid[0], "--grid SHOW_ABOVE")
    retire = parse_floats(args.grid[1], "--grid RETIRE_BELOW")
    pairs = grid_pairs(show, retire)
    max_unanswered = parse_max_unanswered(args.max_unanswered)
    families = [f for f in FAMILIES if f in {"threshold", *args.families}]
    train_range = seed_scheme.train_users(args.seed, args.train_users)
    eval_range = seed_scheme.eval_users(args.seed, args.eval_users)
    sim = resolve_simulator(args)
    run_dir = make_run_dir(args.out, "tune_threshold", sim.label, args.seed)
    train_seeds, eval_seeds = train_range.seeds(), eval_range.seeds()
    config = {
        "preset": sim.preset,
        "simulator": sim.record(),
        "sim_config": sim.config.to_dict(),
        "grid": [list(p) for p in pairs],
        "max_unanswered": list(max_unanswered),
        "families": families,
        "train_seeds": [train_range.start, train_range.stop],
        "eval_seeds": [eval_range.start, eval_range.stop],
        "seed_scheme": seed_scheme.scheme(),
        "train_users": args.train_users,
        "eval_users": args.eval_users,
        "batch": args.batch,
        "n_boot": args.n_boot,
        "selection": "highest mean return on the training users",
    }
    write_provenance(run_dir, config, args.seed, ["scripts.tune_threshold", *(argv or [])])

    tuning_grid = tuning.TuningGrid(tuple(show), tuple(retire), max_unanswered)
    with progress() as bar:
        total = tuning.grid_size(tuning_grid, families) + len(families) + 4
        task = bar.add_task("grid search (training users)", total=total)
        result = tuning.tune(
            sim.preset,
            train_seeds,
            families=families,
            grid=tuning_grid,
            batch=args.batch,
            on_point=lambda *_: bar.advance(task),
            **sim.env_kwargs(),
        )
        grid = result.family_table("threshold")
        best = grid.loc[grid["return"].idxmax()]
        rules = result.policies()
        tuned = rules["threshold"]
        assert isinstance(tuned, ThresholdPolicy)
        bar.update(task, description="held-out users")
        policies: dict[str, Policy] = {
            f"threshold (tuned {tuned.show_above:g}/{tuned.retire_below:g})": tuned,
            **{f"{LABELS[f]} (tuned)": rules[f] for f in families if f != "threshold"},
            "always-show": AlwaysShow(),
            "show-nothing (all reduce)": ShowNothing(),
            "retire-everything": RetireEverything(),
            "random": RandomPolicy(args.seed),
        }
        records: dict[str, pd.DataFrame] = {}
        for label, policy in policies.items():
            records[label] = evaluate(
                policy,
                preset=sim.preset,
                seeds=eval_seeds,
                num_users=args.batch,
                label=label,
                **sim.env_kwargs(),
            )
            bar.advance(task)

    tuned_label = next(iter(policies))
    plus_label = "threshold+ (tuned)" if "threshold_plus" in families else None
    summaries = {k: summarize(r, n_boot=args.n_boot, seed=args.seed) for k, r in records.items()}
    diffs = {
        k: paired_difference(r, records[tuned_label], n_boot=args.n_boot, seed=args.seed)
        for k, r in records.items()
    }
    diffs_plus = (
        {}
        if plus_label is None
        else {
            k: paired_difference(r, records[plus_label], n_boot=args.n_boot, seed=args.seed)
            for k, r in records.items()
        }
    )
    check = lifecycle_check(tuned, summaries[tuned_label], diffs, tuned_label)
    results = pd.concat(records.values(), ignore_index=True)
    atomic_write_bytes(run_dir / "grid.csv", grid.to_csv(index=False).encode())
    atomic_write_bytes(run_dir / "tuning_grid.csv", result.table.to_csv(index=False).encode())
    tuning.save_tuned(run_dir / "tuned.json", result, sim.record())
    atomic_write_bytes(run_dir / "results.csv", results.to_csv(index=False).encode())
    atomic_write_json(
        run_dir / "summary.json",
        {
            "preset": sim.preset,
            "simulator": sim.record(),
            "tuned": tuned.to_dict(),
            "tuned_train_return": float(best["return"]),
            "tuned_families": result.tuned,
            "train_return": result.train_return,
            "train_seeds": config["train_seeds"],
            "eval_seeds": config["eval_seeds"],
            "summary": {k: s.to_dict(orient="index") for k, s in summaries.items()},
            "paired_difference_vs_tuned": {k: d.to_dict(orient="index") for k, d in diffs.items()},
            "paired_difference_vs_threshold_plus": {
                k: d.to_dict(orient="index") for k, d in diffs_plus.items()
            },
            "lifecycle_check": check,
            "lifecycle_tuned": {
                kind: lifecycle_table(records[tuned_label], kind).to_dict(orient="index")
                for kind in ("age", "interest")
            },
        },
    )

    out = Console(width=max(150, console.width))  # results on stdout
    table = Table(
        title=f"threshold rules vs trivial policies: {'preset' if sim.sim is None else 'simulator'} "
        f"{sim.label}, {args.eval_users} held-out users "
        f"(tuned on {args.train_users} training users, {len(result.table)} grid points); "
        "mean [95% bootstrap CI]"
    )
    for col in (
        "policy",
        "return",
        "return - tuned (paired)",
        *(["return - threshold+ (paired)"] if plus_label else []),
        "clicks",
        "purchases",
        "churn rate",
        "show",
        "reduce",
        "retire",
    ):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for label, s in summaries.items():
        d = diffs[label].loc["return"]
        table.add_row(
            label,
            fmt_ci(s.loc["return"]),
            "-" if label == tuned_label else fmt_ci(d),
            *(
                [("-" if label == plus_label else fmt_ci(diffs_plus[label].loc["return"]))]
                if plus_label
                else []
            ),
            f"{s.loc['clicks', 'mean']:.2f}",
            f"{s.loc['purchases', 'mean']:.2f}",
            f"{s.loc['churned', 'mean']:.3f}",
            f"{s.loc['share_show', 'mean']:.3f}",
            f"{s.loc['share_reduce', 'mean']:.3f}",
            f"{s.loc['share_retire', 'mean']:.3f}",
        )
    out.print(table)
    top = grid.sort_values("return", ascending=False, kind="stable").head(5)
    out.print("best grid points on the training users (mean return):")
    for _, r in top.iterrows():
        out.print(
            f"  show_above={r['show_above']:g} retire_below={r['retire_below']:g}: return {r['return']:.3f}, "
            f"shares show/reduce/retire {r['share_show']:.2f}/{r['share_reduce']:.2f}/{r['share_retire']:.2f}"
        )
    for family in families:
        params = ", ".join(f"{k}={v}" for k, v in result.tuned[family].items())
        out.print(f"tuned {family}: {params} (training return {result.train_return[family]:.3f})")
    out.print(
        "lifecycle check: "
        + "; ".join(f"{k.replace('_', ' ')}: {'yes' if v else 'NO'}" for k, v in check.items())
    )
    out.print(f"written to {run_dir}")
    return 0


def cli(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    run_cli("decaygym-tune-threshold", main, argv)


if __name__ == "__main__":
    cli()
