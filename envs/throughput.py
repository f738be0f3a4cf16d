"""Timing the simulator: user-steps per second of the single env, the vector env and the bare step.

Every timer steps the env with pre-drawn actions (``draw_actions``, cycled) so that drawing them
is not measured, warms up first so that compilation is not measured either, and reports both
wall-clock and CPU seconds (the compiled step runs on all of Numba's threads for N >= 64, so its
CPU seconds exceed its wall-clock seconds). ``decaygym-throughput`` runs them side by side and
prints ``print_results``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numba
import numpy as np

from decay_model.errors import ConfigError
from envs.config import SimConfig
from envs.vector import InterestDecayVectorEnv

POLICIES = {"mixed": (0.6, 0.35, 0.05), "show": (1.0, 0.0, 0.0), "random": (1 / 3, 1 / 3, 1 / 3)}


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


def reencode_unavailable(config: SimConfig, every: int) -> str | None:
    """Why the re-encoding row cannot run on this simulator (None: it can, or it is not asked for).

    Re-encoding needs a neural decay artifact; a simulator built with the exponential model only
    has none, and the other rows are still worth measuring on it.
    """
    if every <= 0:
        return None
    try:
        config.replace(reencode_every=every)
    except ConfigError as exc:
        return str(exc)
    return None


def time_vector(
    preset: str,
    num_users: int,
    policy: str,
    seconds: float,
    seed: int,
    reencode_every: int = 0,
    **env_kwargs: Any,
) -> dict[str, Any]:
    """One table row: user-steps per second (wall clock, CPU) of the vector env with ``num_users`` users.

    With ``reencode_every`` > 0 the users are re-encoded that often and at least two re-encodings
    are timed. The row has no peak memory: that is the whole process's, which the caller measures.
    """
    venv = InterestDecayVectorEnv(num_users, preset=preset, reencode_every=reencode_every, **env_kwargs)
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
    }


def time_kernel(
    preset: str, num_users: int, policy: str, seconds: float, seed: int, threads: int, **env_kwargs: Any
) -> float:
    """Seconds per user-step of the bare compiled step on ``threads`` of Numba's threads.

    ``Simulator.step`` with observations and no env around it: what the dynamics themselves cost.
    """
    venv = InterestDecayVectorEnv(num_users, preset=preset, **env_kwargs)
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


def where_time_goes(single: float, step_n1: float, step_cached: float, threads: int) -> dict[str, float]:
    """The single env's cost split into the bare step's, and what 100x the single env would need.

    ``single`` is user-steps/s of the single env; ``step_n1`` and ``step_cached`` are seconds per
    user-step of the bare step at N = 1 and at N = 1,024 on one thread (``time_kernel``).
    """
    needed = 100 * single
    return {
        "single_env_us_per_step": 1e6 / single,
        "bare_step_n1_us": 1e6 * step_n1,
        "bare_step_us_per_user_one_thread_n1024": 1e6 * step_cached,
        "needed_for_100x_steps_per_s": needed,
        "needed_for_100x_us_per_user_per_thread": 1e6 * threads / needed,
    }


def print_results(
    out: Any,
    title: str,
    rows: Sequence[dict[str, Any]],
    *,
    largest: int,
    ratio: float,
    load: float,
    breakdown: dict[str, float],
    threads: int,
    reencode_skipped: str | None,
) -> None:
    """The table of rows, the ratio of the largest vector env to the single env, where the time goes.

    Printed on the rich console ``out``; ``load`` is the load average, printed beside the ratio
    because a busy machine lowers it.
    """
    from rich.table import Table

    table = Table(title=title)
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
    out.print(table)
    out.print(
        f"ratio vector N = {largest:,} / single env: {ratio:,.1f}x (wall clock; load average {load:.1f})"
    )
    out.print(
        f"where the time goes: single env {breakdown['single_env_us_per_step']:.1f} us a step, of which the "
        f"bare compiled step (N = 1) {breakdown['bare_step_n1_us']:.1f} us; one user-step of the compiled "
        f"step on one thread with the state in cache (N = 1,024): "
        f"{breakdown['bare_step_us_per_user_one_thread_n1024']:.2f} us"
    )
    out.print(
        f"100x the single env would take {breakdown['needed_for_100x_steps_per_s']:,.0f} user-steps/s: "
        f"{breakdown['needed_for_100x_us_per_user_per_thread']:.2f} us per user-step "
        f"on each of {threads} threads"
    )
    if reencode_skipped is not None:
        out.print(f"re-encoding row not measured: {reencode_skipped}")
    out.print("CUDA: not measured (the dynamics are compiled for the CPU; no CUDA backend yet)")
