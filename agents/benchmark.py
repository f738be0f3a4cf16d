"""The benchmark's stages and its report: tune the baselines, train agents over seeds, evaluate, report.

Four stages, each written into the run folder before the next starts:

1. :func:`stage_tune`, ``tuned.json``: the threshold rule, threshold+, the best rule and the
   oracle tuned on the training users of the root seed (one grid for all: ``agents.tuning``),
   and every custom rule that declares a ``tuning_grid`` (``agents.custom``) on the same users.
2. :func:`stage_train`, ``train/<algo>_seed<k>/``: each agent trained for the level's budget with
   root seeds seed + k, k < the level's training seeds (``decaygym-train``; the model with the
   best validation return is the one evaluated).
3. :func:`stage_explain`, ``tree_<run>/``: the first agent's best seed distilled into a shallow
   tree (``decaygym-explain``).
4. :func:`stage_evaluate`, ``evaluate/``: every policy on the same held-out evaluation users
   (``decaygym-evaluate``): the baselines, each trained seed, the tree and the custom policies.

Then :func:`write_report`: ``table.md`` / ``table.csv`` (the evaluation table, each agent's
spread across training seeds, its paired differences to threshold+ and the best rule, and the
hierarchical bootstrap over seeds and users), ``summary.json`` (every number of the tables) and
the plots ``learning_curves.png`` (validation return against steps, baselines as bands),
``returns.png`` and ``lifecycle.png`` (show / reduce / retire against item age, per policy).

A stage whose output is already complete is reused, and an interrupted training run is resumed
from its last checkpoint, so running the benchmark again after a crash finishes it without
redoing what is done. Budgets are :data:`LEVELS`: ``smoke`` (CI, about a minute on ``small``),
``quick`` (the README's main job), ``full`` (the published table).

The stages run the evaluate, train and explain commands with the options a user would give
them (so each stage's folder is that command's run folder, provenance included); the caller
passes those commands in as :class:`Commands`, and an engine (``agents.engines``) that runs each
stage's units: one after another in this process by default, or as Ray tasks (the training runs
in parallel, one task per agent and seed; tuning, the tree and the evaluation one task each).
A training run that fails does not stop the others: its seed is reported missing and its error
listed in ``table.md`` and ``summary.json`` (``failed_units``); running the benchmark again
retries it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents import seeds
from agents.engines import Engine, LocalEngine, Unit
from agents.evaluation import paired_difference
from agents.simulator import Simulator
from agents.statistics import hierarchical_bootstrap, holm_bootstrap, paired_hierarchical_bootstrap
from agents.trained import has_entry
from agents.training import DEFAULT_TORCH_THREADS
from decay_model.atomic import atomic_write_bytes, atomic_write_json
from decay_model.errors import ConfigError
from decay_model.figures import pyplot, save_png

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
    hyperparams: str | None = None
    """Folder under ``agents/hyperparams/`` whose ``<algo>.yml`` the level's agents train with when
    it has one (hyperparameters searched for the level's budget); None: the packaged defaults."""


LEVELS: dict[str, Level] = {
    "smoke": Level(
        tuning_users=64,
        show_above="0.2,0.4,0.7",
        retire_below="0.05,0.2",
        max_unanswered="none,3",
        timesteps=4096,
        train_seeds=1,
        n_envs=32,
        eval_users=100,
        valid_users=32,
        explain_users=40,
    ),
    "quick": Level(
        tuning_users=200,
        show_above="0.3,0.5,0.7",
        retire_below="0.05,0.1,0.2,0.3",
        max_unanswered="none,2",
        timesteps=150_000,
        train_seeds=2,
        n_envs=None,
        eval_users=1000,
        valid_users=128,
        explain_users=150,
    ),
    "full": Level(
        tuning_users=1000,
        show_above="0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.5,0.7,1.01",
        retire_below="0.0,0.02,0.05,0.1,0.15,0.2,0.25,0.3,0.4,1.01",
        max_unanswered="none,2,3,5,8",
        timesteps=1_000_000,
        train_seeds=5,
        n_envs=None,
        eval_users=1000,
        valid_users=256,
        explain_users=500,
    ),
}

Command = Callable[[Sequence[str]], int]
"""A command's ``main``: its options in, exit status out."""


@dataclass(frozen=True)
class Commands:
    """The commands the stages run, and how the evaluate command tells policy specs apart."""

    evaluate: Command
    """``decaygym-evaluate`` (tuning and the final evaluation)."""
    train: Command
    """``decaygym-train``."""
    explain: Command
    """``decaygym-explain`` (the tree)."""
    tunable_specs: Callable[[Sequence[str]], list[str]]
    """The custom specs whose rule declares a tuning grid, in canonical form."""
    spec_key: Callable[[str], str]
    """What identifies a policy spec across runs (baseline name, canonical spec, resolved path)."""


@dataclass(frozen=True)
class BenchmarkRun:
    """One benchmark: where it is written, its budgets, and what it trains and evaluates."""

    run_dir: Path
    level: Level
    seed: int
    """Root seed: tuning and evaluation users; training seeds are ``seed`` + k."""
    simulator: Simulator
    """The simulator every stage runs on (its ``argv()`` selects it in the stages' commands)."""
    algos: tuple[str, ...]
    """Agents to train (``agents.trained.ALGOS`` keys); the first one's best seed is explained."""
    policies: tuple[str, ...] = ()
    """More policies evaluated beside the baselines, agents and tree (evaluate's specs)."""
    finished_only: bool = False
    """Train nothing: report the training runs already finished."""
    device: str | None = None
    """Torch device of the training runs (None: ``decaygym-train``'s ``auto``); a CUDA device makes
    each run ask an engine for one GPU."""


def _done(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def stage_tune(bench: BenchmarkRun, commands: Commands, engine: Engine | None = None) -> Path:
    """Tune the baselines and the tunable policies once (evaluating on a few users writes tuned.json).

    A tuned.json without one of the tunable rules asked for now, or without the best rule (one
    written before it existed), is tuned again (the same grid and users give the baselines the
    same values).
    """
    level = bench.level
    tuned = bench.run_dir / "tuned.json"
    custom = commands.tunable_specs(bench.policies)
    if _done(tuned):
        data = json.loads(tuned.read_text())
        if set(custom) <= set(data.get("custom", {})) and "best_rule" in data.get("tuned", {}):
            return tuned
    scratch = bench.run_dir / "tuning"
    argv = [
        *bench.simulator.argv(), "--seed", str(bench.seed),
        "--policies", "threshold", "threshold_plus", "best_rule", *custom,
        "--eval-users", "8", "--train-users", str(level.tuning_users), "--out", str(scratch),
        "--grid", level.show_above, level.retire_below, "--max-unanswered", level.max_unanswered,
    ]  # fmt: skip
    (engine or LocalEngine()).run_one("tune", Unit("tuning", commands.evaluate, (argv,)))
    atomic_write_bytes(tuned, (scratch / "tuned.json").read_bytes())
    return tuned


def stage_train(
    bench: BenchmarkRun, commands: Commands, engine: Engine | None = None
) -> dict[str, list[Path]]:
    """Train every agent on every training seed; finished runs are kept, interrupted ones resumed.

    Each unfinished run is one unit of ``engine`` (default: one after another here); a run that
    fails is left out of the result (``missing_seeds`` names it; the engine's ``failures`` says why).
    """
    level = bench.level
    planned: list[tuple[str, Path, Unit | None]] = []
    for algo in bench.algos:
        for k in range(level.train_seeds):
            out = bench.run_dir / "train" / f"{algo}_seed{bench.seed + k}"
            if _done(out / "summary.json"):
                planned.append((algo, out, None))
                continue
            if bench.finished_only:
                continue
            cpus = DEFAULT_TORCH_THREADS  # the run's torch threads, and the CPUs its unit asks for
            argv = [
                "--algo", algo, *bench.simulator.argv(), "--seed", str(bench.seed + k),
                "--timesteps", str(level.timesteps), "--eval-users", str(level.valid_users),
                "--torch-threads", str(cpus),
            ]  # fmt: skip
            if level.n_envs is not None:
                argv += ["--n-envs", str(level.n_envs)]
            tuned_file = level_hyperparams(level, algo, bench.simulator)
            if tuned_file is not None:
                argv += ["--hyperparams", str(tuned_file)]
            gpus = 1 if (bench.device or "").startswith("cuda") else 0
            labels = {"agent": algo, "seed": bench.seed + k}
            unit = Unit(out.name, train_unit, (commands.train, out, argv, bench.device), cpus, gpus, labels)
            planned.append((algo, out, unit))
    units = [unit for _, _, unit in planned if unit is not None]
    trained = {o.unit.name for o in (engine or LocalEngine()).run("train", units) if o.ok}
    runs: dict[str, list[Path]] = {}
    for algo, out, unit in planned:
        if unit is None or unit.name in trained:
            runs.setdefault(algo, []).append(out)
    return runs


def train_unit(train: Command, out: Path, argv: list[str], device: str | None = None) -> int:
    """One training run into ``out``: resumed from its checkpoint if it has one, else started with ``argv``.

    Decided when the unit runs, so that a unit run again (a rerun benchmark, a retried Ray task)
    continues where the last attempt stopped.
    """
    resume = (out / "checkpoints" / "latest.json").is_file()
    full = ["--out", str(out), *(["--resume"] if resume else argv)]
    if device is not None:
        full += ["--device", device]
    status = train(full)
    if status:
        raise RuntimeError(f"decaygym-train {' '.join(full)} exited with status {status}")
    return status


def level_hyperparams(level: Level, algo: str, simulator: Simulator) -> Path | None:
    """The YAML the level's ``algo`` runs train with, if the level has its own (``Level.hyperparams``).

    Only where the file has an entry for the simulator's preset; a folder built from one's own
    logs has dynamics of its own, so it trains with the packaged defaults.
    """
    if level.hyperparams is None or simulator.sim is not None:
        return None
    path = Path(str(files("agents") / "hyperparams" / level.hyperparams / f"{algo}.yml"))
    return path if path.is_file() and has_entry(path, simulator.preset) else None


def missing_seeds(bench: BenchmarkRun, runs: dict[str, list[Path]]) -> dict[str, list[int]]:
    """Per agent, the training seeds of the level without a run in ``runs``."""
    wanted = range(bench.seed, bench.seed + bench.level.train_seeds)
    names = {r.name for algo_runs in runs.values() for r in algo_runs}
    return {algo: [k for k in wanted if f"{algo}_seed{k}" not in names] for algo in bench.algos}


def explained_run(
    bench: BenchmarkRun, runs: dict[str, list[Path]], failures: Sequence[dict[str, Any]] = ()
) -> Path:
    """The first agent's run with the best validation return; ConfigError if an agent has no run.

    The error lists ``failures`` (the training units that failed, ``Engine.failures``), if any.
    """
    if not all(runs.get(algo) for algo in bench.algos):
        why = "".join(f"; {f['unit']} failed: {f['error']}" for f in failures)
        what = "--finished-only: " if bench.finished_only else ""
        raise ConfigError(
            f"{what}no finished training run for {', '.join(bench.algos)} in {bench.run_dir}{why}"
        )
    return max(
        runs[bench.algos[0]],
        key=lambda r: json.loads((r / "summary.json").read_text()).get("best_validation_mean_reward") or -1e9,
    )


def model_path(run: Path) -> Path:
    """The model a training run is judged by: the best on its validation users, else the last."""
    best = run / "best_model.zip"
    return best if best.is_file() else run / "model.zip"


def stage_explain(
    bench: BenchmarkRun, commands: Commands, run: Path, tuned: Path, engine: Engine | None = None
) -> Path:
    """Distil one trained agent into a tree; returns the tree file."""
    out = bench.run_dir / f"tree_{run.name}"  # the folder names the tree's row in the table
    tree = out / "tree.json"
    if not _done(tree):
        users = str(bench.level.explain_users)
        argv = [
            "--policy", str(model_path(run)), *bench.simulator.argv(), "--seed", str(bench.seed),
            "--out", str(out), "--train-users", users, "--check-users", users, "--tuned", str(tuned),
        ]  # fmt: skip
        (engine or LocalEngine()).run_one("explain", Unit(out.name, commands.explain, (argv,)))
    return tree


def stage_evaluate(
    bench: BenchmarkRun,
    commands: Commands,
    runs: dict[str, list[Path]],
    tree: Path,
    tuned: Path,
    engine: Engine | None = None,
) -> Path:
    """Every policy on the same held-out users; returns the evaluation folder."""
    out = bench.run_dir / "evaluate"
    models = [str(model_path(r)) for algo_runs in runs.values() for r in algo_runs]
    wanted = [*BASELINE_POLICIES, *models, str(tree), *bench.policies]
    users = seeds.eval_users(bench.seed, bench.level.eval_users).to_dict()
    if not _done(out / "summary.json") or not _evaluated(
        out / "summary.json", wanted, users, commands.spec_key
    ):
        argv = [
            *bench.simulator.argv(), "--seed", str(bench.seed), "--eval-users", str(bench.level.eval_users),
            "--tuned", str(tuned), "--out", str(out), "--policies", *wanted,
        ]  # fmt: skip
        (engine or LocalEngine()).run_one("evaluate", Unit("evaluation", commands.evaluate, (argv,)))
    return out


def _evaluated(
    summary_path: Path, wanted: list[str], users: dict[str, int], key: Callable[[str], str]
) -> bool:
    """Whether a finished evaluation was on ``users`` (a seed range) and covers every policy wanted.

    Policies are matched by ``key``: names, custom specs, model files by path.
    """
    summary = json.loads(summary_path.read_text())
    done = {key(v["spec"]) for v in summary["policies"].values()}
    return summary.get("eval_seeds") == users and {key(spec) for spec in wanted} <= done


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
    plt.close(fig)


def write_report(
    bench: BenchmarkRun,
    header: dict[str, Any],
    runs: dict[str, list[Path]],
    missing: dict[str, list[int]],
    explained: Path,
    tree: Path,
    eval_dir: Path,
    failures: Sequence[dict[str, Any]] = (),
) -> str:
    """``table.md``, ``table.csv``, ``summary.json`` and the plots; returns the agents' tables (markdown).

    ``header`` opens ``summary.json`` (what the run was: level, budgets, simulator, seed);
    ``failures`` are the units that failed (``Engine.failures``), listed in both.
    """
    run_dir = bench.run_dir
    summary = json.loads((eval_dir / "summary.json").read_text())
    records = pd.read_parquet(eval_dir / "records.parquet")
    spread = seed_spread(summary, records, runs)
    threshold_return = summary["policies"]["threshold"]["metrics"]["return"]["mean"]
    agents_tables = spread_markdown(spread, threshold_return) + hierarchical_markdown(spread)
    table = (eval_dir / "table.md").read_text() + agents_tables
    if any(missing.values()):
        table += f"\nTraining seeds not finished, left out of this report: {missing}\n"
    for f in failures:
        table += f"\nFailed: {f['stage']} {f['unit']}: {f['error']}\n"
    rules = tree.parent / "rules.txt"
    if rules.is_file():
        table += f"\n## What {explained.name} does, as a tree\n\n```\n{rules.read_text().strip()}\n```\n"
    atomic_write_bytes(run_dir / "table.md", table.encode())
    atomic_write_bytes(run_dir / "table.csv", (eval_dir / "table.csv").read_bytes())
    for name in ("returns.png", "lifecycle.png", "lifecycle_interest.png"):
        if (eval_dir / name).is_file():
            atomic_write_bytes(run_dir / name, (eval_dir / name).read_bytes())
    plot_learning_curves(run_dir / "learning_curves.png", runs, summary)
    atomic_write_json(
        run_dir / "summary.json",
        {
            **header,
            "policies": summary["policies"],
            "tuned": summary["tuned"],
            "agents": spread,
            "explained_run": explained.name,
            "missing_training_seeds": missing,
            "failed_units": list(failures),
            "notes": [
                *summary.get("notes", []),
                "agents: the spread across training seeds is separate from the intervals over users",
            ],
        },
    )
    return agents_tables


def run_stages(
    bench: BenchmarkRun,
    commands: Commands,
    engine: Engine,
    header: dict[str, Any],
    say: Callable[[str], None] = print,
) -> str:
    """Every stage on ``engine``, then the report (``write_report``); returns the agents' tables."""
    tuned = stage_tune(bench, commands, engine)
    level = bench.level
    say(f"training {', '.join(bench.algos)} on {level.train_seeds} seed(s) x {level.timesteps:,} steps")
    runs = stage_train(bench, commands, engine)
    best_run = explained_run(bench, runs, engine.failures)
    tree = stage_explain(bench, commands, best_run, tuned, engine)
    eval_dir = stage_evaluate(bench, commands, runs, tree, tuned, engine)
    missing = missing_seeds(bench, runs)
    return write_report(bench, header, runs, missing, best_run, tree, eval_dir, engine.failures)
