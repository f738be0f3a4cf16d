r"""The benchmark: tune the baselines, train agents over several seeds, evaluate everything, report.

Examples:
    python -m scripts.benchmark --level quick --out runs/benchmark_quick
    python -m scripts.benchmark --level full --preset default --algos ppo --out runs/benchmark_full
    python -m scripts.benchmark --level quick --policies myrules:Cutoff --out runs/benchmark_mine

One command, four stages, each written into the run folder (``--out``) before the next starts:

1. ``tuned.json``: the threshold rule, threshold+, the best rule and the oracle tuned on the
   training users of ``--seed`` (one grid for all: ``agents.tuning``), and every rule of ``--policies`` that
   declares a ``tuning_grid`` (``agents.custom``) on the same users.
2. ``train/<algo>_seed<k>/``: each agent trained for the level's budget with root seeds
   ``--seed`` + k, k < the level's number of training seeds (``decaygym-train``; the model
   with the best validation return is the one evaluated).
3. ``tree_<run>/``: the first agent's best seed distilled into a shallow tree (``decaygym-explain``).
4. ``evaluate/``: every policy on the same held-out evaluation users (``decaygym-evaluate``):
   the baselines, each trained seed, the tree and the ``--policies`` (e.g. your own rules as
   ``module.path:Name``).

Then ``table.md`` / ``table.csv`` (the evaluation table, plus each agent's spread across
training seeds apart from the intervals over users, and its paired differences to threshold+
and the best rule),
``summary.json`` (per policy, each metric as mean and 95 % interval and the paired difference
to the threshold baseline; per agent the seed spread) and the plots ``learning_curves.png``
(validation return against steps, baselines as horizontal bands), ``returns.png`` and
``lifecycle.png`` (show / reduce / retire against item age, per policy).

A stage whose output is already complete in ``--out`` is reused, and an interrupted training
run is resumed from its last checkpoint: running the same command again after a crash finishes
the benchmark without redoing what is done.

Budgets (``--level``): ``smoke`` (CI, about a minute on ``small``), ``quick`` (the README's
main job: a few minutes), ``full`` (the published table: 1M steps a seed, 5 seeds, 1000 users).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.evaluation import paired_difference
from agents.statistics import hierarchical_bootstrap, holm_bootstrap, paired_hierarchical_bootstrap
from agents.trained import ALGOS
from decay_model.atomic import atomic_write_bytes, atomic_write_json
from decay_model.errors import ConfigError
from scripts import evaluate as evaluate_script
from scripts import explain as explain_script
from scripts import train as train_script
from scripts.common import (
    add_simulator_options,
    console,
    make_run_dir,
    resolve_simulator,
    run_cli,
    write_provenance,
)
from scripts.plots import pyplot, save_png

BASELINE_POLICIES = ("threshold", "threshold_plus", "best_rule", "greedy", "random", "always_show", "oracle")


@dataclass(frozen=True)
class Level:
    """The budgets of one benchmark level."""

    tuning_users: int
    """Training users each grid point is scored on."""
    show_above: str
    """Tuning grid (comma lists, as ``decaygym-evaluate --grid``)."""
    retire_below: str
    max_unanswered: str
    """threshold+ grid of unanswered exposures before retiring."""
    timesteps: int
    """Training budget per agent and seed, env steps (user-visits)."""
    train_seeds: int
    """Training seeds per agent."""
    n_envs: int | None
    """Users stepped together while training (None: the YAML's)."""
    eval_users: int
    """Held-out evaluation users (the same for every policy)."""
    valid_users: int
    """Validation users of the training runs' EvalCallback."""
    explain_users: int
    """Users the tree is fitted on, and users its agreement is checked on."""


LEVELS: dict[str, Level] = {
    "smoke": Level(64, "0.2,0.4,0.7", "0.05,0.2", "none,3", 4096, 1, 32, 100, 32, 40),
    "quick": Level(200, "0.3,0.5,0.7", "0.05,0.1,0.2,0.3", "none,2", 150_000, 2, None, 400, 128, 150),
    "full": Level(
        1000,
        "0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.5,0.7,1.01",
        "0.0,0.02,0.05,0.1,0.15,0.2,0.25,0.3,0.4,1.01",
        "none,2,3,5,8",
        1_000_000,
        5,
        None,
        1000,
        256,
        500,
    ),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="decaygym-benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--level", default="quick", help=f"budget: {', '.join(LEVELS)} (default: quick)")
    add_simulator_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="root seed (default: 0)")
    parser.add_argument("--algos", nargs="+", default=["ppo"], help=f"agents to train: {', '.join(ALGOS)}")
    parser.add_argument("--out", help="run folder (default: runs/benchmark__<preset>__seed<seed>__<time>)")
    parser.add_argument("--timesteps", type=int, help="override the level's training budget per seed")
    parser.add_argument("--train-seeds", type=int, help="override the level's number of training seeds")
    parser.add_argument("--eval-users", type=int, help="override the level's held-out users")
    parser.add_argument(
        "--policies",
        nargs="+",
        default=[],
        metavar="SPEC",
        help="more policies evaluated beside the baselines, agents and tree, as decaygym-evaluate "
        "--policies takes them: your own rules as module.path:Name or 'module.path:Name{\"k\": 1}' "
        "(tuned in stage 1 when they declare a tuning_grid), other baselines by name, model files",
    )
    parser.add_argument(
        "--finished-only",
        action="store_true",
        help="train nothing: report the training runs already finished in --out (the missing seeds are "
        "listed in summary.json), e.g. when the budget ran out before every seed finished",
    )
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> Level:
    """The level with overrides applied; ConfigError names a bad option."""
    if args.level not in LEVELS:
        raise ConfigError(f"unknown --level {args.level!r}; known: {', '.join(LEVELS)}")
    args.simulator = resolve_simulator(args)  # ConfigError names a bad preset or simulator folder
    args.preset = args.simulator.preset
    unknown = [a for a in args.algos if a not in ALGOS]
    if unknown:
        raise ConfigError(f"unknown --algos {', '.join(unknown)}; known: {', '.join(ALGOS)}")
    level = LEVELS[args.level]
    changes = {
        name: getattr(args, name)
        for name in ("timesteps", "train_seeds", "eval_users")
        if getattr(args, name) is not None
    }
    for name, value in changes.items():
        if value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    evaluate_script.check_specs(args.policies, args.simulator.config, args.seed)  # before any training
    return Level(**{**asdict(level), **changes})


def _done(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def stage_tune(run_dir: Path, args: argparse.Namespace, level: Level) -> Path:
    """Tune the baselines and the tunable ``--policies`` once (evaluating on a few users writes tuned.json).

    A tuned.json without one of the tunable rules asked for now, or without the best rule (one
    written before it existed), is tuned again (the same grid and users give the baselines the
    same values).
    """
    tuned = run_dir / "tuned.json"
    custom = evaluate_script.tunable_specs(args.policies)
    if _done(tuned):
        data = json.loads(tuned.read_text())
        if set(custom) <= set(data.get("custom", {})) and "best_rule" in data.get("tuned", {}):
            return tuned
    scratch = run_dir / "tuning"
    evaluate_script.main(
        [
            *args.simulator.argv(), "--seed", str(args.seed),
            "--policies", "threshold", "threshold_plus", "best_rule", *custom,
            "--eval-users", "8", "--train-users", str(level.tuning_users), "--out", str(scratch),
            "--grid", level.show_above, level.retire_below, "--max-unanswered", level.max_unanswered,
        ]
    )  # fmt: skip
    atomic_write_bytes(tuned, (scratch / "tuned.json").read_bytes())
    return tuned


def stage_train(run_dir: Path, args: argparse.Namespace, level: Level) -> dict[str, list[Path]]:
    """Train every agent on every training seed; finished runs are kept, interrupted ones resumed."""
    runs: dict[str, list[Path]] = {}
    for algo in args.algos:
        for k in range(level.train_seeds):
            out = run_dir / "train" / f"{algo}_seed{args.seed + k}"
            if _done(out / "summary.json"):
                runs.setdefault(algo, []).append(out)
                continue
            if args.finished_only:
                continue
            runs.setdefault(algo, []).append(out)
            argv = ["--out", str(out)]
            if (out / "checkpoints" / "latest.json").is_file():
                argv.append("--resume")
            else:
                argv += [
                    "--algo", algo, *args.simulator.argv(), "--seed", str(args.seed + k),
                    "--timesteps", str(level.timesteps), "--eval-users", str(level.valid_users),
                ]  # fmt: skip
                if level.n_envs is not None:
                    argv += ["--n-envs", str(level.n_envs)]
            train_script.main(argv)
    return runs


def model_path(run: Path) -> Path:
    """The model a training run is judged by: the best on its validation users, else the last."""
    best = run / "best_model.zip"
    return best if best.is_file() else run / "model.zip"


def stage_explain(run_dir: Path, args: argparse.Namespace, level: Level, run: Path, tuned: Path) -> Path:
    """Distil one trained agent into a tree; returns the tree file."""
    out = run_dir / f"tree_{run.name}"  # the folder names the tree's row in the table
    tree = out / "tree.json"
    if not _done(tree):
        explain_script.main(
            [
                "--policy", str(model_path(run)), *args.simulator.argv(), "--seed", str(args.seed),
                "--out", str(out), "--train-users", str(level.explain_users),
                "--check-users", str(level.explain_users), "--tuned", str(tuned),
            ]
        )  # fmt: skip
    return tree


def stage_evaluate(
    run_dir: Path,
    args: argparse.Namespace,
    level: Level,
    runs: dict[str, list[Path]],
    tree: Path,
    tuned: Path,
) -> Path:
    """Every policy on the same held-out users; returns the evaluation folder."""
    out = run_dir / "evaluate"
    models = [str(model_path(r)) for algo_runs in runs.values() for r in algo_runs]
    wanted = [*BASELINE_POLICIES, *models, str(tree), *args.policies]
    if not _done(out / "summary.json") or not _evaluated(out / "summary.json", wanted):
        evaluate_script.main(
            [
                *args.simulator.argv(), "--seed", str(args.seed), "--eval-users", str(level.eval_users),
                "--tuned", str(tuned), "--out", str(out), "--policies", *wanted,
            ]
        )  # fmt: skip
    return out


def _evaluated(summary_path: Path, wanted: list[str]) -> bool:
    """Whether a finished evaluation covers every wanted policy (names, custom specs, model files by path)."""
    key = evaluate_script.spec_key
    done = {key(v["spec"]) for v in json.loads(summary_path.read_text())["policies"].values()}
    return {key(spec) for spec in wanted} <= done


def seed_spread(
    summary: dict[str, Any], records: pd.DataFrame, runs: dict[str, list[Path]]
) -> dict[str, dict[str, Any]]:
    """Per agent: each training seed's return and paired differences, and the spread across seeds.

    The differences to threshold+ and the best rule (the rules with the agents' information) are
    paired over users.
    """
    by_spec = {Path(v["spec"]).resolve(): label for label, v in summary["policies"].items()}
    plus = records[records["policy"] == "threshold_plus"]
    best = records[records["policy"] == "best_rule"]
    out: dict[str, dict[str, Any]] = {}
    for algo, algo_runs in runs.items():
        per_seed = []
        for run in algo_runs:
            label = by_spec[model_path(run).resolve()]
            rec = records[records["policy"] == label]
            diff = paired_difference(rec, plus, metrics=("return",), seed=int(summary["seed"]))
            vs_best = (
                paired_difference(rec, best, metrics=("return",), seed=int(summary["seed"])).loc["return"]
                if len(best)
                else None
            )
            per_seed.append(
                {
                    "run": run.name,
                    "label": label,
                    "return": summary["policies"][label]["metrics"]["return"],
                    "vs_threshold": summary["policies"][label]["diff_vs_threshold"]["return"],
                    "vs_threshold_plus": diff.loc["return"].to_dict(),
                    "vs_best_rule": None if vs_best is None else vs_best.to_dict(),
                }
            )
        means = np.array([s["return"]["mean"] for s in per_seed])
        runs_records = {row["run"]: records[records["policy"] == row["label"]] for row in per_seed}
        out[algo] = {
            "seeds": per_seed,
            "hierarchical": hierarchical_comparison(runs_records, records, int(summary["seed"])),
            "mean_over_seeds": float(means.mean()),
            "sd_over_seeds": float(means.std(ddof=1)) if len(means) > 1 else 0.0,
            "min_over_seeds": float(means.min()),
            "max_over_seeds": float(means.max()),
        }
    return out


#: the rules an agent's training procedure is compared with over seeds and users (Holm-corrected)
COMPARED_BASELINES = ("threshold", "threshold_plus", "best_rule")


def hierarchical_comparison(
    runs_records: dict[str, pd.DataFrame], records: pd.DataFrame, seed: int
) -> dict[str, Any]:
    """One agent over its training seeds and the held-out users (``agents.statistics``).

    The mean return with a hierarchical-bootstrap interval (training seeds, then users), and the
    paired difference to each rule of ``COMPARED_BASELINES`` that was evaluated, with two-sided
    bootstrap p-values adjusted by Holm over those comparisons.
    """
    result: dict[str, Any] = {"return": hierarchical_bootstrap(runs_records, seed=seed).to_dict()}
    diffs = {
        name: paired_hierarchical_bootstrap(runs_records, records[records["policy"] == name], seed=seed)
        for name in COMPARED_BASELINES
        if (records["policy"] == name).any()
    }
    if diffs:
        table = holm_bootstrap(diffs)
        result["vs"] = {
            name: {**diffs[name].to_dict(), **{k: table.loc[name, k] for k in ("p_value", "p_adjusted")},
                   "rejected": bool(table.loc[name, "rejected"])}
            for name in diffs
        }  # fmt: skip
    return result


def hierarchical_markdown(spread: dict[str, dict[str, Any]]) -> str:
    """Each agent's training procedure against the rules, over training seeds and users."""
    names = [
        n for n in COMPARED_BASELINES if any(n in s["hierarchical"].get("vs", {}) for s in spread.values())
    ]
    lines = [
        "",
        "## Agents over training seeds and users",
        "",
        "Hierarchical bootstrap (training seeds, then the shared held-out users; 95 % percentile "
        "intervals): the mean return of the training procedure and its paired difference to each rule, "
        "with the two-sided bootstrap p-value adjusted by Holm over these comparisons (* rejects "
        '"no difference" at 5 %). With 5 seeds such intervals run a little narrow.',
        "",
        "| agent | seeds | return | " + " | ".join(f"− {n}" for n in names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]

    def ci(d: dict[str, Any]) -> str:
        return f"{d['mean']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"

    for algo, s in spread.items():
        h = s["hierarchical"]
        cells = []
        for n in names:
            v = h.get("vs", {}).get(n)
            cells.append(
                "-" if v is None else f"{ci(v)} p={v['p_adjusted']:.3g}{' *' if v['rejected'] else ''}"
            )
        lines.append(f"| {algo} | {h['return']['n_seeds']} | {ci(h['return'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def spread_markdown(spread: dict[str, dict[str, Any]], threshold_return: float) -> str:
    """The agents' seed table: one row per training seed, then the spread."""
    lines = [
        "",
        "## Agents across training seeds",
        "",
        "Mean return over the held-out users per training seed (95 % interval over users), the paired "
        "difference to the tuned threshold, to tuned threshold+ and to the tuned best rule; then the "
        "spread across seeds.",
        "",
        "| agent | seed run | return | − threshold | − threshold+ | − best rule |",
        "|---|---|---|---|---|---|",
    ]

    def ci(d: dict[str, Any] | None) -> str:
        if not d:
            return "-"
        return f"{d['mean']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"

    for algo, s in spread.items():
        for row in s["seeds"]:
            lines.append(
                f"| {algo} | {row['run']} | {ci(row['return'])} | {ci(row['vs_threshold'])} | "
                f"{ci(row['vs_threshold_plus'])} | {ci(row.get('vs_best_rule'))} |"
            )
        lines.append(
            f"| {algo} | **across seeds** | {s['mean_over_seeds']:.3f} (sd {s['sd_over_seeds']:.3f}, "
            f"range {s['min_over_seeds']:.3f} – {s['max_over_seeds']:.3f}) | "
            f"{s['mean_over_seeds'] - threshold_return:+.3f} | | |"
        )
    return "\n".join(lines) + "\n"


def plot_learning_curves(path: Path, runs: dict[str, list[Path]], summary: dict[str, Any]) -> None:
    """Validation return against training steps per agent and seed, baselines as bands."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, (algo, algo_runs) in enumerate(runs.items()):
        for k, run in enumerate(algo_runs):
            npz = run / "eval" / "evaluations.npz"
            if not npz.is_file():
                continue
            data = np.load(npz)
            ax.plot(
                data["timesteps"],
                data["results"].mean(axis=1),
                color=colors[j % len(colors)],
                alpha=0.8,
                marker="o",
                ms=3,
                label=algo if k == 0 else None,
            )
    for name, color in (
        ("threshold", "grey"),
        ("threshold_plus", "tab:green"),
        ("best_rule", "tab:orange"),
        ("oracle", "tab:purple"),
    ):
        m = summary["policies"].get(name, {}).get("metrics", {}).get("return")
        if m:
            ax.axhspan(m["ci_low"], m["ci_high"], color=color, alpha=0.2)
            ax.axhline(m["mean"], color=color, lw=1, ls="--", label=f"{name} (held-out users)")
    ax.set_xlabel("training steps (user-visits)")
    ax.set_ylabel("mean return per user")
    ax.set_title("Learning curves on validation users; tuned baselines as bands")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_png(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or finish) the benchmark; returns the exit status."""
    args = parse_args(argv)
    level = check_args(args)
    run_dir = make_run_dir(args.out, "benchmark", args.simulator.label, args.seed)
    write_provenance(
        run_dir,
        {
            "level": args.level,
            "budgets": asdict(level),
            "preset": args.preset,
            "simulator": args.simulator.record(),
            "algos": args.algos,
            "policies": args.policies,
        },
        args.seed,
        ["scripts.benchmark", *(argv or [])],
    )
    console.print(f"[bold]benchmark[/bold] {args.level} on {args.simulator.label}: tuning the baselines")
    tuned = stage_tune(run_dir, args, level)
    console.print(
        f"training {', '.join(args.algos)} on {level.train_seeds} seed(s) x {level.timesteps:,} steps"
    )
    runs = stage_train(run_dir, args, level)
    wanted = range(args.seed, args.seed + level.train_seeds)
    names = {r.name for algo_runs in runs.values() for r in algo_runs}
    missing = {algo: [k for k in wanted if f"{algo}_seed{k}" not in names] for algo in args.algos}
    if not all(runs.get(algo) for algo in args.algos):
        raise ConfigError(
            f"--finished-only: no finished training run for {', '.join(args.algos)} in {run_dir}"
        )
    first = runs[args.algos[0]]
    best_run = max(
        first,
        key=lambda r: json.loads((r / "summary.json").read_text()).get("best_validation_mean_reward") or -1e9,
    )
    tree = stage_explain(run_dir, args, level, best_run, tuned)
    eval_dir = stage_evaluate(run_dir, args, level, runs, tree, tuned)

    summary = json.loads((eval_dir / "summary.json").read_text())
    records = pd.read_parquet(eval_dir / "records.parquet")
    spread = seed_spread(summary, records, runs)
    threshold_return = summary["policies"]["threshold"]["metrics"]["return"]["mean"]
    table = (
        (eval_dir / "table.md").read_text()
        + spread_markdown(spread, threshold_return)
        + hierarchical_markdown(spread)
    )
    if any(missing.values()):
        table += f"\nTraining seeds not finished, left out of this report: {missing}\n"
    rules = tree.parent / "rules.txt"
    if rules.is_file():
        table += f"\n## What {best_run.name} does, as a tree\n\n```\n{rules.read_text().strip()}\n```\n"
    atomic_write_bytes(run_dir / "table.md", table.encode())
    atomic_write_bytes(run_dir / "table.csv", (eval_dir / "table.csv").read_bytes())
    for name in ("returns.png", "lifecycle.png", "lifecycle_interest.png"):
        if (eval_dir / name).is_file():
            atomic_write_bytes(run_dir / name, (eval_dir / name).read_bytes())
    plot_learning_curves(run_dir / "learning_curves.png", runs, summary)
    atomic_write_json(
        run_dir / "summary.json",
        {
            "level": args.level,
            "budgets": asdict(level),
            "preset": args.preset,
            "simulator": args.simulator.record(),
            "seed": args.seed,
            "policies": summary["policies"],
            "tuned": summary["tuned"],
            "agents": spread,
            "explained_run": best_run.name,
            "missing_training_seeds": missing,
            "notes": [
                *summary.get("notes", []),
                "agents: the spread across training seeds is separate from the intervals over users",
            ],
        },
    )
    console.print(spread_markdown(spread, threshold_return) + hierarchical_markdown(spread))
    print(f"benchmark written to {run_dir}")
    return 0


def cli(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    run_cli("decaygym-benchmark", main, argv)


if __name__ == "__main__":
    cli()
