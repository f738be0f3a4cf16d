r"""Evaluate policies (baselines, trained models, rules of one's own) on the same held-out simulated users.

Examples:
    python -m scripts.evaluate --preset default --policies threshold threshold_plus greedy random \
        always_show oracle --eval-users 2000 --out runs/eval_default
    python -m scripts.evaluate --preset default --policies runs/ppo/model.zip runs/explain_ppo/tree.json \
        --tuned runs/eval_default/tuned.json --out runs/eval_ppo
    python -m scripts.evaluate --preset default --policies threshold_plus myrules:Cutoff \
        'myrules:Cutoff{"cutoff": 0.3}' --out runs/eval_mine

Protocol: every policy runs one episode for each of ``--eval-users`` held-out users, the same
users for all (``agents.seeds``: the evaluation users of ``--seed``, disjoint from every training
and validation user), so comparisons are paired. The threshold rule, threshold+ and the oracle
are tuned first on the training users of ``--seed`` (one grid for all, highest mean return; the
best rule a knob at a time from threshold+'s point), or read from ``--tuned``. The tuned
threshold rule (the baseline of every difference) and the oracle (the reference of the gap
share) are always evaluated, added when not listed.

Rules of one's own (``agents.custom``): ``module.path:Name`` or ``'module.path:Name{"k": v}'``
names a class or factory function, called with the JSON's keyword arguments (and ``config=`` /
``seed=`` when its signature has them); the result must have SB3's ``predict``. A ``Name`` with
a ``tuning_grid`` is tuned with the baselines on the same training users (its choice goes to
tuned.json's ``custom`` section) or read from ``--tuned``.

Per policy: mean return, clicks, purchases, slots used and churn rate with 95 % bootstrap
intervals over users; the paired difference to the tuned threshold rule (and to tuned threshold+
when it is evaluated); the share of the
threshold-to-oracle gap it closes ((policy - threshold) / (oracle - threshold), paired
bootstrap); the lifecycle (share of show / reduce / retire by item age and by predicted
interest) with intervals. Written to --out: ``table.md``, ``table.csv``, ``summary.json``,
``records.parquet`` (one row per policy and user), ``tuned.json`` (when tuned here),
``returns.png``, ``lifecycle.png`` (by item age), ``lifecycle_interest.png`` and ``config.json``
(provenance). Intervals are over these simulated users only; results depend on the simulator
preset and its decay model, not on real users.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from agents import seeds as seed_scheme
from agents.custom import CustomSpec, is_custom_spec, resolve
from agents.evaluation import (
    AGE_LABELS,
    AGE_TITLES,
    INTEREST_LABELS,
    REPORT_METRICS,
    compare_policies,
    evaluate,
    paired_difference,
    summarize,
)
from agents.policy import Policy
from agents.tree_policy import TreePolicy, is_tree_file
from agents.tuning import (
    BASELINES,
    DEFAULT_MAX_UNANSWERED,
    DEFAULT_RETIRE,
    DEFAULT_SHOW,
    TUNED_FAMILIES,
    TuningGrid,
    baseline,
    evaluation_seeds,
    grid_size,
    load_tuned,
    tune,
    tuning_seeds,
)
from decay_model.atomic import atomic_write_bytes, atomic_write_json
from decay_model.errors import ConfigError
from envs.config import SimConfig
from scripts.common import (
    Simulator,
    add_simulator_options,
    check_tuned_simulator,
    console,
    make_run_dir,
    parse_max_unanswered,
    progress,
    resolve_simulator,
    run_cli,
    write_provenance,
)
from scripts.plots import pyplot, save_png

THRESHOLD, THRESHOLD_PLUS, BEST_RULE, ORACLE = "threshold", "threshold_plus", "best_rule", "oracle"
#: the rules with the agents' information every policy is also compared with, when evaluated
REFERENCES = {THRESHOLD_PLUS: "threshold+", BEST_RULE: "best rule"}
SHARES = ("share_show", "share_reduce", "share_retire")
METRIC_TITLES = {
    "return": "return",
    "clicks": "clicks",
    "purchases": "purchases",
    "slots_used": "slots used",
    "churned": "churn rate",
}


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(sorted({float(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise ConfigError(f"expected a comma list of numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"expected a comma list of finite numbers, got {text!r}")
    return values


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="decaygym-evaluate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--policies",
        nargs="+",
        default=["threshold", "threshold_plus", "best_rule", "greedy", "random", "always_show", "oracle"],
        metavar="SPEC",
        help=f"baselines by name ({', '.join(BASELINES)}), paths to trained models "
        "(agents.trained.load_policy) or distilled trees (tree.json of decaygym-explain), and/or your "
        "own rules as module.path:Name or 'module.path:Name{\"cutoff\": 0.4}' (a class or factory "
        "function called with the JSON's keyword arguments, plus config=/seed= when its signature has "
        "them, returning an object with SB3's predict; its tuning_grid, if any, is tuned with the "
        "baselines; the module must be importable, e.g. PYTHONPATH=.); "
        "threshold and oracle are added when missing",
    )
    add_simulator_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="root seed: users, random policy, bootstrap")
    parser.add_argument("--eval-users", type=int, default=2000, help="held-out users (default: 2000)")
    parser.add_argument("--out", help="run folder (default: runs/evaluate__<preset>__seed<seed>__<time>)")
    parser.add_argument(
        "--tuned", help="tuned parameters JSON (tuned.json of an earlier run); default: tune here first"
    )
    parser.add_argument(
        "--train-users", type=int, default=1000, help="training users to tune on (default: 1000)"
    )
    parser.add_argument(
        "--grid",
        nargs=2,
        metavar=("SHOW_ABOVE", "RETIRE_BELOW"),
        default=[",".join(map(str, DEFAULT_SHOW)), ",".join(map(str, DEFAULT_RETIRE))],
        help="comma lists of thresholds tuned over (the same for threshold, threshold+ and oracle; "
        "the best rule searches them again from threshold+'s point)",
    )
    parser.add_argument(
        "--max-unanswered",
        default=",".join("none" if k is None else str(k) for k in DEFAULT_MAX_UNANSWERED),
        help="threshold+ grid of unanswered exposures before retiring ('none' = never)",
    )
    parser.add_argument("--batch", type=int, default=2048, help="users stepped together (default: 2048)")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    return parser.parse_args(argv)


def trained_policy(path: Path, preset: str) -> Policy:
    """A trained model through ``agents.trained.load_policy`` (imported only when a model is asked for)."""
    try:
        from agents.trained import load_policy
    except ImportError as exc:
        raise ConfigError(
            f"cannot load trained model {path}: agents.trained is not available ({exc})"
        ) from None
    return load_policy(path, preset)


def is_custom(spec: str) -> bool:
    """Whether ``spec`` names a rule of one's own (``module.path:Name``) rather than a baseline or a file."""
    return spec not in BASELINES and not Path(spec).exists() and is_custom_spec(spec)


def spec_key(spec: str) -> str:
    """What identifies a policy across runs: baseline name, canonical custom spec, or resolved path."""
    if spec in BASELINES:
        return spec
    if is_custom(spec):
        return CustomSpec.parse(spec).canonical
    return str(Path(spec).resolve())


def policy_label(spec: str, taken: set[str]) -> str:
    """A short unique label: the baseline name, the rule's name, or the model's file (or folder) name.

    Baseline names are kept for the baselines, so a model in a folder called ``threshold`` never
    takes the label the differences are computed against.
    """
    if spec in BASELINES:
        label = spec
    elif is_custom(spec):
        label = CustomSpec.parse(spec).label
    else:
        path = Path(spec)
        label = path.parent.name if path.name in ("model.zip", "tree.json", "best_model.zip") else path.stem
        label = label or str(path)
    base, i = label, 2
    while label in taken or (spec not in BASELINES and label in BASELINES):
        label, i = f"{base}#{i}", i + 1
    return label


def check_specs(specs: Sequence[str], config: SimConfig | None = None, seed: int = 0) -> None:
    """Every spec is a baseline, an existing path or a custom spec; ConfigError naming the first that is not.

    Custom specs are imported, and with ``config`` also built once and checked to be policies, so
    that a wrong one fails before any tuning or training.
    """
    for spec in specs:
        if spec in BASELINES or Path(spec).exists():
            continue
        if is_custom_spec(spec):
            factory = resolve(spec)
            if config is not None:
                factory.build(config, seed, factory.points()[0] if factory.tunable else None)
            continue
        if "/" in spec or "\\" in spec:
            raise ConfigError(f"model file {spec} not found")
        if ":" in spec:
            CustomSpec.parse(spec)  # not of the form: says which form is expected
        if Path(spec).suffix:
            raise ConfigError(f"model file {spec} not found")
        raise ConfigError(
            f"unknown policy {spec!r}: not a baseline ({', '.join(BASELINES)}), a model path, "
            "nor module.path:Name"
        )


def make_policy(
    spec: str,
    preset: str,
    config: SimConfig,
    tuned: dict[str, dict[str, Any]] | None,
    seed: int,
    custom_tuned: dict[str, dict[str, Any]] | None = None,
) -> Policy:
    """A baseline by name, a rule of one's own by spec, a distilled tree (tree.json) or a model by path.

    ``custom_tuned`` is tuned.json's ``custom`` section: a rule with a tuning grid is built with
    the parameters chosen there (with none recorded, with the spec's arguments only).
    """
    if spec in BASELINES:
        return baseline(spec, config, tuned, seed)
    if is_custom(spec):
        factory = resolve(spec)
        chosen = (custom_tuned or {}).get(factory.spec.canonical, {}).get("tuned")
        return factory.build(config, seed, chosen if factory.tunable else None)
    if is_tree_file(spec):
        return TreePolicy.load(spec, config)
    return trained_policy(Path(spec), preset)


def tunable_specs(specs: Sequence[str]) -> list[str]:
    """The custom specs whose rule declares a tuning grid (canonical form)."""
    out = []
    for spec in specs:
        if is_custom(spec):
            factory = resolve(spec)
            if factory.tunable:
                out.append(factory.spec.canonical)
    return out


def read_tuned(path: str, sim: Simulator, needed: list[str], custom: list[str]) -> dict[str, Any]:
    """The ``--tuned`` file; ConfigError unless tuned on ``sim``, for every ``needed`` and ``custom``."""
    data = load_tuned(path, sim.preset)
    check_tuned_simulator(data, path, sim)
    missing = [f for f in needed if f not in data["tuned"]]
    missing += [c for c in custom if c not in data.get("custom", {})]
    if missing:
        raise ConfigError(
            f"--tuned {path}: no tuned parameters for {', '.join(missing)} "
            "(leave out --tuned to tune them here)"
        )
    return data


def get_tuned(
    args: argparse.Namespace, needed: list[str], custom: list[str], run_dir: Path, bar: Any
) -> tuple[dict[str, Any], str]:
    """The tuned parameters: read from ``--tuned`` or tuned now and saved in the run.

    ``needed`` are the baseline families, ``custom`` the tunable custom specs (canonical); they
    go to the ``tuned`` and ``custom`` sections of tuned.json.
    """
    if args.tuned:
        return read_tuned(args.tuned, args.simulator, needed, custom), str(args.tuned)
    grid = TuningGrid(_floats(args.grid[0]), _floats(args.grid[1]), parse_max_unanswered(args.max_unanswered))
    factories = [resolve(spec) for spec in custom]
    total = grid_size(grid, needed) + sum(len(f.points()) for f in factories)
    task = bar.add_task("tuning on training users", total=total)
    seeds = tuning_seeds(args.seed, args.train_users)

    def advance(*_: Any) -> None:
        bar.advance(task)

    env_kwargs = args.simulator.env_kwargs()
    result = tune(
        args.preset, seeds, families=needed, grid=grid, batch=args.batch, on_point=advance, **env_kwargs
    )
    data = {**result.to_dict(), "simulator": args.simulator.record()}
    tables = [result.table]
    if factories:
        config = args.simulator.config
        data["custom"] = {}
        for factory in factories:
            entry, rows = factory.tune(
                config, args.preset, seeds, seed=args.seed, batch=args.batch, on_point=advance, **env_kwargs
            )
            data["custom"][factory.spec.canonical] = entry
            tables.append(pd.DataFrame(rows))
    atomic_write_json(run_dir / "tuned.json", data)
    table = pd.concat(tables, ignore_index=True)
    atomic_write_bytes(run_dir / "tuning_grid.csv", table.to_csv(index=False).encode())
    return data, "tuned in this run (tuned.json, tuning_grid.csv)"


def custom_params(spec: str, tuned: dict[str, Any]) -> dict[str, Any]:
    """For a rule of one's own, the keyword arguments it was built with (the spec's, then the tuned ones)."""
    if not is_custom(spec):
        return {}
    factory = resolve(spec)
    entry = tuned.get("custom", {}).get(factory.spec.canonical, {})
    chosen = entry.get("tuned", {}) if factory.tunable else {}
    return {"params": {**factory.spec.kwargs, **chosen}, "tuned_params": chosen or None}


def write_records(run_dir: Path, records: dict[str, pd.DataFrame]) -> None:
    """``records.parquet``: one row per policy and held-out user (rewritten atomically as policies finish)."""
    frame = pd.concat(records.values(), ignore_index=True)
    atomic_write_bytes(run_dir / "records.parquet", frame.to_parquet(index=False))


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


def plot_returns(path: Path, records: dict[str, pd.DataFrame]) -> None:
    """Distribution of the return per user, one box per policy, the mean as a dot."""
    plt = pyplot()
    labels = list(records)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(labels) + 2), 4.5))
    data = [records[k]["return"].to_numpy() for k in labels]
    ax.boxplot(data, showfliers=True, flierprops={"markersize": 2, "alpha": 0.3})
    ax.scatter(np.arange(1, len(labels) + 1), [d.mean() for d in data], color="C3", zorder=3, label="mean")
    ax.set_xticks(np.arange(1, len(labels) + 1))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("return per user (one episode)")
    ax.set_title("Distribution of returns over the held-out users")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def plot_lifecycle(path: Path, report: dict[str, dict[str, Any]], kind: str = "age") -> None:
    """Share of show / reduce / retire against item age (or predicted interest), one panel per policy."""
    plt = pyplot()
    labels = list(report)
    buckets = AGE_LABELS if kind == "age" else INTEREST_LABELS
    names = [AGE_TITLES[b] for b in buckets] if kind == "age" else list(buckets)
    cols = min(len(labels), 4)
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False, sharey=True)
    x = np.arange(len(buckets))
    for ax, label in zip(axes.flat, labels, strict=False):
        table = pd.DataFrame(report[label]["lifecycle"][kind])
        for j, action in enumerate(("show", "reduce", "retire")):
            part = table[table["action"] == action].set_index("bucket").loc[list(buckets)]
            ax.plot(x, part["share"], marker="o", color=f"C{j}", label=action)
            ax.fill_between(x, part["ci_low"], part["ci_high"], color=f"C{j}", alpha=0.2)
        ax.set_title(label)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30, fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(labels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    axes.flat[0].set_ylabel("share of decisions")
    what = "item age in the user's pool" if kind == "age" else "predicted interest"
    fig.suptitle(
        f"What each policy does as {'an item ages' if kind == 'age' else 'interest fades'} (by {what})"
    )
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def print_table(report: dict[str, dict[str, Any]], title: str) -> None:
    """The comparison on stdout (a rich table)."""
    out = Console(width=max(190, console.width))
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
    out.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    """Tune (or read) the baselines, evaluate every policy, write the run folder; returns the exit status."""
    args = parse_args(argv)
    for name in ("eval_users", "train_users", "batch", "n_boot"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    sim = args.simulator = resolve_simulator(args)
    args.preset = sim.preset  # a simulator folder keeps the default preset's sizes and env id
    config = sim.config
    check_specs(args.policies, config, args.seed)
    # one entry per policy; custom specs in their canonical form, so that runs record and match them
    canonical = {spec_key(spec): spec_key(spec) if is_custom(spec) else spec for spec in args.policies}
    specs = list(canonical.values())
    added = [name for name in (THRESHOLD, ORACLE) if name not in specs]
    specs += added
    needed = [f for f in TUNED_FAMILIES if f in specs]
    custom = tunable_specs(specs)
    eval_seeds = evaluation_seeds(args.seed, args.eval_users)
    train_range = seed_scheme.train_users(args.seed, args.train_users)
    if args.tuned:
        read_tuned(args.tuned, sim, needed, custom)  # a bad file fails before any work
    run_dir = make_run_dir(args.out, "evaluate", sim.label, args.seed)
    write_provenance(
        run_dir,
        {
            "preset": args.preset,
            "simulator": sim.record(),
            "sim_config": config.to_dict(),
            "policies": specs,
            "added_references": added,
            "eval_seeds": seed_scheme.eval_users(args.seed, args.eval_users).to_dict(),
            "tuning_seeds": None if args.tuned else train_range.to_dict(),
            "seed_scheme": seed_scheme.scheme(),
            "tuned": args.tuned,
            "grid": None if args.tuned else {"show_above": args.grid[0], "retire_below": args.grid[1]},
            "max_unanswered": None if args.tuned else args.max_unanswered,
            "batch": args.batch,
            "n_boot": args.n_boot,
        },
        args.seed,
        ["scripts.evaluate", *(argv or [])],
    )

    records: dict[str, pd.DataFrame] = {}
    labels: dict[str, str] = {}
    with progress() as bar:
        tuned_data, tuned_source = get_tuned(args, needed, custom, run_dir, bar)
        policies = {}
        for spec in specs:
            label = policy_label(spec, set(policies))
            policies[label] = make_policy(
                spec, args.preset, config, tuned_data["tuned"], args.seed, tuned_data.get("custom")
            )
            labels[label] = spec
        task = bar.add_task("held-out users", total=len(policies))
        for label, policy in policies.items():
            records[label] = evaluate(
                policy,
                preset=args.preset,
                seeds=eval_seeds,
                num_users=args.batch,
                label=label,
                **sim.env_kwargs(),
            )
            # after every policy, so that a run that dies keeps the records of those already done
            write_records(run_dir, records)
            bar.advance(task)

    report = compare_policies(records, threshold=THRESHOLD, oracle=ORACLE, n_boot=args.n_boot, seed=args.seed)
    # the rules with the agents' information: the bars a learned policy must pass
    for reference in (name for name in REFERENCES if name in records):
        for label, rec in records.items():
            diff = paired_difference(
                rec, records[reference], metrics=REPORT_METRICS, n_boot=args.n_boot, seed=args.seed
            )
            report[label][f"diff_vs_{reference}"] = diff.to_dict(orient="index")
    # the action shares (per-user means) are reported too, without paired differences
    for label, rec in records.items():
        shares = summarize(rec, metrics=SHARES, n_boot=args.n_boot, seed=args.seed)
        report[label]["metrics"].update(shares.to_dict(orient="index"))
    title = (
        f"{'preset' if sim.sim is None else 'simulator'} {sim.label}, "
        f"{args.eval_users} held-out users (seed {args.seed}); "
        "mean [95% bootstrap CI]; baselines tuned on training users"
    )
    frame = table_frame(report)
    atomic_write_bytes(run_dir / "table.csv", frame.to_csv(index=False).encode())
    atomic_write_bytes(run_dir / "table.md", markdown_table(report, title).encode())
    atomic_write_json(
        run_dir / "summary.json",
        {
            "preset": args.preset,
            "simulator": sim.record(),
            "seed": args.seed,
            "eval_users": args.eval_users,
            "eval_seeds": seed_scheme.eval_users(args.seed, args.eval_users).to_dict(),
            "threshold": THRESHOLD,
            "oracle": ORACLE,
            "tuned": tuned_data,
            "tuned_source": tuned_source,
            "confidence": 0.95,
            "n_boot": args.n_boot,
            "policies": {
                label: {
                    "spec": labels[label],
                    "policy": repr(policies[label]),
                    **custom_params(labels[label], tuned_data),
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
        },
    )
    plot_returns(run_dir / "returns.png", records)
    plot_lifecycle(run_dir / "lifecycle.png", report, "age")
    plot_lifecycle(run_dir / "lifecycle_interest.png", report, "interest")

    print_table(report, title)
    chosen = {
        **tuned_data["tuned"],
        **{spec: entry["tuned"] for spec, entry in tuned_data.get("custom", {}).items() if spec in specs},
    }
    tuned_line = "; ".join(
        f"{family}: " + ", ".join(f"{k}={v}" for k, v in params.items()) for family, params in chosen.items()
    )
    Console(width=max(150, console.width)).print(f"tuned ({tuned_source}): {tuned_line}")
    print(f"written to {run_dir}")
    return 0


def cli(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    run_cli("decaygym-evaluate", main, argv)


if __name__ == "__main__":
    cli()
