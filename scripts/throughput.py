"""Measure simulator throughput: user-steps per second of the single env and of the vector env.

Examples:
    python -m scripts.throughput                         # single env, vector env at N = 1 .. 16,384
    python -m scripts.throughput --seconds 1 --sizes 1 64 --json runs/throughput.json

Every number comes from the same run: (a) the single env (``gymnasium.make``, with its
wrappers) stepped in a Python loop, (b) the vector env at each N, observations included,
both driven by the same pre-drawn actions (per slot 60 % show, 35 % reduce, 5 % retire by
default). The table gives user-steps per second, the ratio of the largest vector run to the
single env, the simulator's state size (arrays of the state, without the observation buffer)
and the process' peak resident memory. One more row runs the vector env with the neural
decay model re-encoding every user every 10 visits (``--reencode-every``, ``--reencode-size``).
Rates are given per wall-clock second and per CPU second of this process (the compiled step
runs on all of Numba's threads for N >= 64, so its CPU seconds exceed its wall-clock
seconds). The dynamics run on the CPU (Numba); a CUDA backend does not exist yet, so no
CUDA row is measured; the re-encoding model runs on CUDA when present.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numba
from rich.console import Console

import envs
from decay_model.atomic import atomic_write_json
from envs.throughput import (
    POLICIES,
    print_results,
    reencode_unavailable,
    time_kernel,
    time_single,
    time_vector,
    where_time_goes,
)
from scripts.common import (
    add_simulator_options,
    console,
    peak_rss_mib,
    progress,
    resolve_simulator,
    run_cli,
    versions,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="decaygym-throughput", description=__doc__.splitlines()[0])
    add_simulator_options(parser)
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1, 64, 1024, 16384],
        help="numbers of users N of the vector env (default: 1 64 1024 16384)",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="time measured per row (default: 3)")
    parser.add_argument(
        "--policy",
        default="mixed",
        choices=sorted(POLICIES),
        help="how the pre-drawn actions are drawn per slot (default: mixed)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the envs and of the actions (default: 0)"
    )
    parser.add_argument(
        "--reencode-every",
        type=int,
        default=10,
        help="visits between re-encodings in the re-encoding row; 0 leaves the row out (default: 10)",
    )
    parser.add_argument(
        "--reencode-size", type=int, default=1024, help="users N of the re-encoding row (default: 1024)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table, optionally write JSON; returns the exit status."""
    args = parse_args(argv)
    sim = resolve_simulator(args)
    env_id = envs.env_id(sim.preset)
    rows: list[dict[str, Any]] = []
    with progress() as bar:
        task = bar.add_task("measuring", total=3 + len(args.sizes))
        bar.update(task, description="single env (Python loop)")
        single, single_cpu, steps = time_single(
            env_id, args.policy, args.seconds, args.seed, **sim.env_kwargs()
        )
        rows.append(
            {
                "what": "single env, Python loop",
                "n": 1,
                "steps_per_s": single,
                "steps_per_cpu_s": single_cpu,
                "steps": steps,
                "state_mb": None,
                "peak_rss_mb": peak_rss_mib(),
            }
        )
        bar.advance(task)
        timing = (args.policy, args.seconds, args.seed)
        for n in args.sizes:
            bar.update(task, description=f"vector env, N = {n:,}")
            row = time_vector(sim.preset, n, *timing, **sim.env_kwargs())
            rows.append({**row, "peak_rss_mb": peak_rss_mib()})
            bar.advance(task)
        reencode = None
        reencode_skipped = reencode_unavailable(sim.config, args.reencode_every)
        if args.reencode_every > 0 and reencode_skipped is None:
            n, every = args.reencode_size, args.reencode_every
            bar.update(task, description=f"vector env, N = {n:,}, re-encoding every {every} visits")
            row = time_vector(sim.preset, n, *timing, every, **sim.env_kwargs())
            reencode = {**row, "peak_rss_mb": peak_rss_mib()}
        bar.advance(task)
        bar.update(task, description="the bare compiled step")
        step_n1 = time_kernel(sim.preset, 1, *timing, threads=1, **sim.env_kwargs())
        step_cached = time_kernel(sim.preset, 1024, *timing, threads=1, **sim.env_kwargs())
        bar.advance(task)

    largest = max(args.sizes)
    vector = {str(r["n"]): r["steps_per_s"] for r in rows[1:]}
    vector_cpu = {str(r["n"]): r["steps_per_cpu_s"] for r in rows[1:]}
    if reencode is not None:
        rows.append(reencode)
    ratio = vector[str(largest)] / single
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    breakdown = where_time_goes(single, step_n1, step_cached, numba.get_num_threads())
    print_results(
        Console(width=max(100, console.width)),  # results on stdout
        f"decaygym throughput: {'preset' if sim.sim is None else 'simulator'} {sim.label}, "
        f"K = {sim.config.num_slots}, policy {args.policy}, {os.cpu_count()} CPUs",
        rows,
        largest=largest,
        ratio=ratio,
        load=load,
        breakdown=breakdown,
        threads=numba.get_num_threads(),
        reencode_skipped=reencode_skipped,
    )
    if args.json:
        result = {
            "single_steps_per_s": single,
            "vector_steps_per_s": vector,
            "ratio": ratio,
            "single_steps_per_cpu_s": rows[0]["steps_per_cpu_s"],
            "vector_steps_per_cpu_s": vector_cpu,
            "reencode": reencode,
            "reencode_skipped": reencode_skipped,
            "breakdown": breakdown,
            "threads": numba.get_num_threads(),
            "ratio_n": largest,
            "load_average": load,
            "rows": rows,
            "preset": sim.preset,
            "simulator": sim.record(),
            "policy": args.policy,
            "seconds": args.seconds,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "processor": platform.processor(),
            },
            "versions": versions(),
        }
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, result)
    return 0


def cli(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    run_cli("decaygym-throughput", main, argv)


if __name__ == "__main__":
    cli()
