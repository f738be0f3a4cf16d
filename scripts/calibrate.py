"""Choose the simulator's engagement constants on some users and check them on others.

Examples:
    python -m scripts.calibrate                                   # built-in synthetic log
    python -m scripts.calibrate --logs UserBehavior_head.csv --source taobao --out runs/calibrate

Grid search of ``engagement_scale``, ``engagement_gap_power`` and ``engagement_lift`` against
the fidelity report (``envs.fidelity``), cross-validated over the log's users
(``envs.calibration``): every grid point is simulated on every user group, each fold chooses
without its group and is judged on it. The table shows the best points, the folds (chosen
against shipped constants on held-out users) and the sampling-noise floor (real group
against the other real users).

Writes into the run folder: ``calibration.json`` (every grid point's scores and distances,
the folds, the noise floor, the chosen constants as ``SimConfig`` overrides), ``table.md``,
``config.json`` (settings, seed, versions, commit) and ``score_map.png`` (mean score over
``engagement_scale`` × ``engagement_lift`` at the chosen ``engagement_gap_power``).
When the shipped constants are a grid point, they stay the choice unless the grid's
choices score better on held-out groups (``envs.calibration``). The script chooses; it
changes no default. Pass the chosen values as config overrides
(``SimConfig.replace``) to use them.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from decay_model.atomic import atomic_write_bytes, atomic_write_json
from envs.calibration import DEFAULT_GRID, KNOBS, Calibration, calibrate
from scripts.common import console, make_run_dir, progress, resolve_simulator, run_cli, write_provenance
from scripts.fidelity import add_cohort_options, check_cohort_options, cohort_configs, load_data
from scripts.plots import pyplot, save_png

PROG = "decaygym-calibrate"
FLAGS = {"engagement_scale": "--scale", "engagement_gap_power": "--gap-power", "engagement_lift": "--lift"}
SHORT = {"engagement_scale": "κ", "engagement_gap_power": "β", "engagement_lift": "lift"}


def add_grid_options(parser: argparse.ArgumentParser, what: str = "values") -> None:
    """``--scale``, ``--gap-power``, ``--lift``: the grid of the engagement constants."""
    for knob, flag in FLAGS.items():
        parser.add_argument(
            flag,
            type=float,
            nargs="+",
            default=list(DEFAULT_GRID[knob]),
            help=f"{what} of {knob} (default: {' '.join(map(str, DEFAULT_GRID[knob]))})",
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_cohort_options(parser)
    parser.add_argument("--out", metavar="DIR", help="run folder (default: runs/calibrate__<data>__...)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the user split (and the synthetic log)")
    parser.add_argument(
        "--sim-seeds", type=int, nargs="+", default=[0, 1], help="simulation seeds per score (default: 0 1)"
    )
    parser.add_argument("--folds", type=int, default=2, help="user groups k (default: 2)")
    add_grid_options(parser)
    parser.add_argument("--top", type=int, default=10, help="grid points shown in the table (default: 10)")
    args = parser.parse_args(argv)
    check_cohort_options(parser, args)
    if args.folds < 2:
        parser.error(f"--folds must be at least 2, got {args.folds}")
    for knob, flag in FLAGS.items():
        values = getattr(args, knob_attr(knob))
        top = 1.0 if knob == "engagement_lift" else math.inf
        if not all(math.isfinite(v) and 0 <= v <= top for v in values):
            parser.error(f"{flag}: values must be finite and >= 0 (the lift at most 1), got {values}")
    return args


def knob_attr(knob: str) -> str:
    """The argparse attribute of a knob's flag."""
    return FLAGS[knob].lstrip("-").replace("-", "_")


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
        out += [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out.append("")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Load, cross-validate the grid, write the run folder and print the tables."""
    args = parse_args(argv)
    base, task_config = cohort_configs(args)
    grid = {knob: tuple(getattr(args, knob_attr(knob))) for knob in KNOBS}
    total = int(np.prod([len(v) for v in grid.values()]))
    args.sim_seeds = list(args.sim_seeds)
    with progress() as bar:
        task = bar.add_task("loading the log", total=total)
        log, data_info, label = load_data(args)
        console.print(f"[dim]{log.report.summary()}[/dim]", soft_wrap=True)
        run_dir = make_run_dir(args.out, "calibrate", label, args.seed)
        write_provenance(
            run_dir,
            {
                **vars(args),
                "data": data_info,
                "task": task_config.to_dict(),
                "sim_config": base.to_dict(),
                "simulator": resolve_simulator(args).record(),
            },
            args.seed,
            ["scripts.calibrate", *(sys.argv[1:] if argv is None else argv)],
        )
        bar.update(task, description="fitting the decay model, then simulating the grid")
        result = calibrate(
            log,
            base=base,
            grid=grid,
            seeds=args.sim_seeds,
            task_config=task_config,
            folds=args.folds,
            split_seed=args.seed,
            gap_h=args.session_gap_h,
            on_point=lambda _: bar.update(task, advance=1),
        )
        chosen_cv, base_cv = result.cross_validated()
        atomic_write_json(run_dir / "calibration.json", {**result.to_dict(), "data": data_info})
        sections = table_sections(result, args.top)
        atomic_write_bytes(run_dir / "table.md", (markdown(sections) + "\n").encode())
        plot_score_map(run_dir / "score_map.png", result)
    chosen = ", ".join(f"{name}={value:g}" for name, value in result.choice.values.items())
    kept = " (the shipped constants: the grid's choices did no better on held-out groups)"
    why = kept if result.kept_base else ""
    print_tables(
        sections,
        [
            f"cross-validated score (held-out groups): grid's choices {chosen_cv:.3f}, shipped {base_cv:.3f}",
            f"chosen: {chosen}{why}",
            f"run folder: {run_dir}",
        ],
    )
    return 0


def print_tables(sections: dict[str, tuple[list[str], list[list[str]]]], lines: Sequence[str]) -> None:
    """The tables, then the summary lines, on stdout."""
    from rich.console import Console
    from rich.table import Table

    out = Console(width=160)
    for title, (head, rows) in sections.items():
        table = Table(title=title)
        for j, col in enumerate(head):
            table.add_column(col, justify="left" if j == 0 else "right")
        for row in rows:
            table.add_row(*row)
        out.print(table)
    for line in lines:
        out.print(line, soft_wrap=True)


def cli(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``python -m scripts.calibrate``)."""
    run_cli(PROG, main, argv)


if __name__ == "__main__":
    cli()
