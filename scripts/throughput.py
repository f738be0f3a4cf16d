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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numba
import numpy as np
from rich.console import Console
from rich.table import Table

import envs
from decay_model.atomic import atomic_write_json
from decay_model.errors import ConfigError
from envs.vector import InterestDecayVectorEnv
from scripts.common import (
    Simulator,
    add_simulator_options,
    console,
    peak_rss_mib,
    progress,
    resolve_simulator,
    run_cli,
    versions,
)

POLICIES = {"mixed": (0.6, 0.35, 0.05), "show": (1.0, 0.0, 0.0), "random": (1 / 3, 1 / 3, 1 / 3)}


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


def draw_actions(policy: str, shape: tuple[int, ...], seed: int, count: int = 8) -> np.ndarray:
    """``count`` pre-drawn action arrays of ``shape`` (cycled while measuring)."""
    gen = np.random.default_rng(seed)
    return gen.choice(3, size=(count, *shape), p=POLICIES[policy]).astype(np.int64)


def time_single(
    env_id: str, policy: str, seconds: float, seed: int, **env_kwargs: Any
) -> tuple[float, float, int]:
    """User-steps per wall-clock and per CPU second of one env stepped in a Python loop (with resets)."""
    env = gym.make(env_id, **env_kwargs)
    env.reset(seed=seed)
    actions = draw_actions(policy, env.action_space.shape, seed, count=64)
    for a in actions[:8]:  # warm-up
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    steps, start, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds:
        for a in actions:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
        steps += len(actions)
    return steps / elapsed, steps / (time.process_time() - cpu), steps


def reencode_unavailable(sim: Simulator, every: int) -> str | None:
    """Why the re-encoding row cannot run on this simulator (None: it can, or it is not asked for).

    Re-encoding needs a neural decay artifact; a simulator built with the exponential model only
    has none, and the other rows are still worth measuring on it.
    """
    if every <= 0:
        return None
    try:
        sim.config.replace(reencode_every=every)
    except ConfigError as exc:
        return str(exc)
    return None


def time_vector(
    sim: Simulator, num_users: int, policy: str, seconds: float, seed: int, reencode_every: int = 0
) -> dict[str, Any]:
    """One table row: user-steps per second (wall clock, CPU) of the vector env with ``num_users`` users.

    With ``reencode_every`` > 0 the users are re-encoded that often and at least two
    re-encodings are timed.
    """
    venv = InterestDecayVectorEnv(
        num_users, preset=sim.preset, reencode_every=reencode_every, **sim.env_kwargs()
    )
    venv.reset(seed=seed)
    actions = draw_actions(policy, venv.action_space.shape, seed)
    for a in actions[:2]:
        venv.step(a)
    least = 2 * reencode_every
    steps, start, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds or steps < least:
        for a in actions:
            venv.step(a)
        steps += len(actions)
    cpu = time.process_time() - cpu
    state_bytes = sum(getattr(venv.state, name).nbytes for name in venv.state.__dataclass_fields__)
    what = f"vector env (CPU, {numba.get_num_threads()} threads)"
    return {
        "what": f"{what} + neural re-encoding every {reencode_every} visits" if reencode_every else what,
        "n": num_users,
        "every": reencode_every,
        "steps_per_s": num_users * steps / elapsed,
        "steps_per_cpu_s": num_users * steps / cpu,
        "steps": steps,
        "state_mb": state_bytes / 2**20,
        "peak_rss_mb": peak_rss_mib(),
    }


def time_kernel(
    sim: Simulator, num_users: int, policy: str, seconds: float, seed: int, threads: int
) -> float:
    """Seconds per user-step of the bare compiled step on ``threads`` of Numba's threads.

    ``Simulator.step`` with observations and no env around it: what the dynamics themselves cost.
    """
    venv = InterestDecayVectorEnv(num_users, preset=sim.preset, **sim.env_kwargs())
    venv.reset(seed=seed)
    sim, state = venv.sim, venv.state
    obs = np.empty((num_users, venv.config.obs_size), np.float32)
    actions = draw_actions(policy, venv.action_space.shape, seed)
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        for a in actions[:2]:
            sim.step(state, a, obs=obs)
        steps, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for a in actions:
                sim.step(state, a, obs=obs)
            steps += len(actions)
    finally:
        numba.set_num_threads(before)
    return elapsed / (steps * num_users)


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
        for n in args.sizes:
            bar.update(task, description=f"vector env, N = {n:,}")
            rows.append(time_vector(sim, n, args.policy, args.seconds, args.seed))
            bar.advance(task)
        reencode = None
        reencode_skipped = reencode_unavailable(sim, args.reencode_every)
        if args.reencode_every > 0 and reencode_skipped is None:
            n, every = args.reencode_size, args.reencode_every
            bar.update(task, description=f"vector env, N = {n:,}, re-encoding every {every} visits")
            reencode = time_vector(sim, n, args.policy, args.seconds, args.seed, every)
        bar.advance(task)
        bar.update(task, description="the bare compiled step")
        step_n1 = time_kernel(sim, 1, args.policy, args.seconds, args.seed, threads=1)
        step_cached = time_kernel(sim, 1024, args.policy, args.seconds, args.seed, threads=1)
        bar.advance(task)

    largest = max(args.sizes)
    vector = {str(r["n"]): r["steps_per_s"] for r in rows[1:]}
    vector_cpu = {str(r["n"]): r["steps_per_cpu_s"] for r in rows[1:]}
    if reencode is not None:
        rows.append(reencode)
    ratio = vector[str(largest)] / single
    table = Table(
        title=f"decaygym throughput: {'preset' if sim.sim is None else 'simulator'} {sim.label}, "
        f"K = {sim.config.num_slots}, "
        f"policy {args.policy}, {os.cpu_count()} CPUs"
    )
    for col in ("run", "N", "user-steps/s", "per CPU-s", "calls", "state MiB", "peak RSS MiB"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in rows:
        table.add_row(
            r["what"],
            f"{r['n']:,}",
            f"{r['steps_per_s']:,.0f}",
            f"{r['steps_per_cpu_s']:,.0f}",
            f"{r['steps']:,}",
            "-" if r["state_mb"] is None else f"{r['state_mb']:.1f}",
            f"{r['peak_rss_mb']:.0f}",
        )
    out = Console(width=max(100, console.width))  # results on stdout
    out.print(table)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out.print(
        f"ratio vector N = {largest:,} / single env: {ratio:,.1f}x (wall clock; load average {load:.1f})"
    )
    threads = numba.get_num_threads()
    needed = 100 * single
    breakdown = {
        "single_env_us_per_step": 1e6 / single,
        "bare_step_n1_us": 1e6 * step_n1,
        "bare_step_us_per_user_one_thread_n1024": 1e6 * step_cached,
        "needed_for_100x_steps_per_s": needed,
        "needed_for_100x_us_per_user_per_thread": 1e6 * threads / needed,
    }
    out.print(
        f"where the time goes: single env {breakdown['single_env_us_per_step']:.1f} us a step, of which the "
        f"bare compiled step (N = 1) {breakdown['bare_step_n1_us']:.1f} us; one user-step of the compiled "
        f"step on one thread with the state in cache (N = 1,024): "
        f"{breakdown['bare_step_us_per_user_one_thread_n1024']:.2f} us"
    )
    out.print(
        f"100x the single env would take {needed:,.0f} user-steps/s: "
        f"{breakdown['needed_for_100x_us_per_user_per_thread']:.2f} us per user-step "
        f"on each of {threads} threads"
    )
    if reencode_skipped is not None:
        out.print(f"re-encoding row not measured: {reencode_skipped}")
    out.print("CUDA: not measured (the dynamics are compiled for the CPU; no CUDA backend yet)")
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
