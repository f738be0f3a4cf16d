r"""Search an agent's hyperparameters with Optuna on validation users; resumable.

Examples:
    decaygym-search --algo ppo --trials 20 --timesteps 150000 --out runs/search_ppo
    decaygym-search --algo ppo --trials 20 --engine ray --parallel 4 --out runs/search_ppo_ray
    decaygym-train --hyperparams runs/search_ppo/best.yml --algo ppo --out runs/ppo_best

What a trial samples, how it is scored and pruned, and what ``--out`` holds: ``agents.search``.
Rerunning the same command after an interruption finishes the missing trials.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from agents.engines import LocalEngine, add_engine_options, engine_from_args
from agents.search import SEARCHABLE, SearchSettings, search, search_parallel, trials_table
from agents.trained import load_hyperparams
from agents.training import DEFAULT_TORCH_THREADS
from decay_model.errors import command_line
from scripts.common import add_simulator_options, console, entry_point, progress, resolve_simulator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="decaygym-search", description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="ppo", choices=SEARCHABLE, help="algorithm (default: ppo)")
    add_simulator_options(parser)
    parser.add_argument("--out", required=True, help="search folder (study.db, trials/, best.yml)")
    parser.add_argument("--trials", type=int, default=20, help="trials to finish (default: 20)")
    parser.add_argument("--timesteps", type=int, default=150_000, help="budget per trial (default: 150000)")
    parser.add_argument("--valid-users", type=int, default=128, help="validation users (default: 128)")
    parser.add_argument("--search-users", type=int, default=256, help="users scoring a trial (default: 256)")
    parser.add_argument("--evaluations", type=int, default=5, help="validations per trial (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="training and sampler seed (default: 0)")
    parser.add_argument("--hyperparams", help="YAML whose entry the trials change (default: packaged)")
    parser.add_argument(
        "--torch-threads", type=int, default=DEFAULT_TORCH_THREADS, help="per trial (default: %(default)s)"
    )
    add_engine_options(parser, search=True)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run or resume the search, print its trials best first; returns the exit status."""
    args = parse_args(argv)
    sim = resolve_simulator(args)
    settings = SearchSettings(
        algo=args.algo,
        preset=sim.preset,
        sim=sim.sim,
        base=load_hyperparams(args.algo, sim.preset, args.hyperparams).raw,
        trials=args.trials,
        timesteps=args.timesteps,
        valid_users=args.valid_users,
        search_users=args.search_users,
        evaluations=args.evaluations,
        seed=args.seed,
        torch_threads=args.torch_threads,
    )
    command = command_line("decaygym-search", argv)
    with engine_from_args(args, progress) as engine:  # refuses Ray's options without --engine ray
        if isinstance(engine, LocalEngine) and args.parallel == 1 and args.storage is None:
            with progress() as bar:
                study = search(settings, args.out, command=command, progress=bar)
        else:
            study = search_parallel(
                settings, args.out, engine, args.parallel, storage=args.storage, command=command
            )
    table = trials_table(study).sort_values("score", ascending=False, na_position="last")
    shown = Table(title=f"{len(table)} trials, best first (score: mean return on search users)")
    for column in table.columns:
        shown.add_column(str(column))
    for row in table.itertuples(index=False):
        shown.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    out = Console(width=max(150, console.width))
    out.print(shown)
    out.print(f"best hyperparameters: {args.out}/best.yml")
    return 0


cli = entry_point("decaygym-search", main)


if __name__ == "__main__":
    cli()
