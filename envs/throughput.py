"""Timing the simulator: user-steps per second of the single env, the vector env and the bare step.

Every timer steps the env with pre-drawn actions (``draw_actions``, cycled) so that drawing them
is not measured, warms up first so that compilation is not measured either, and reports both
wall-clock and CPU seconds (the compiled step runs on all of Numba's threads for N >= 64, so its
CPU seconds exceed its wall-clock seconds). ``decaygym-throughput`` runs them side by side and
prints ``print_results``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numba
import numpy as np

from decay_model.errors import ConfigError
from decay_model.memory import peak_rss_mib
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
    device: str | None = None,
    **env_kwargs: Any,
) -> dict[str, Any]:
    """One table row: user-steps per second (wall clock, CPU) of the vector env with ``num_users`` users.

    With ``reencode_every`` > 0 the users are re-encoded that often, by the model on ``device``
    (default: the model's own, CUDA when present), and at least two re-encodings are timed. The
    row has no peak memory: that is the whole process's, which the caller measures.
    """
    venv = InterestDecayVectorEnv(num_users, preset=preset, reencode_every=reencode_every, **env_kwargs)
    if device is not None and venv.sim.reencoder is not None:
        venv.sim.reencoder.model.to(device)
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


def time_reencode(
    preset: str, num_users: int, device: str, seconds: float, seed: int, every: int = 10, **env_kwargs: Any
) -> dict[str, Any]:
    """Users per second re-encoded by the neural model on ``device``, all ``num_users`` in each call.

    The vector env (re-encoding every ``every`` visits) first runs ``every`` visits with the model
    on ``device``, so that users have recent events and one re-encoding warms the device up; then
    ``ReEncoder`` is called on every user again and again, at least twice and for ``seconds``.
    A call builds the users' log frame and event index on the CPU and runs the network on
    ``device``; on CUDA the row also gives the peak memory ``torch.cuda.max_memory_allocated``.
    """
    import torch

    venv = InterestDecayVectorEnv(num_users, preset=preset, reencode_every=every, **env_kwargs)
    reencoder = venv.sim.reencoder
    assert reencoder is not None
    reencoder.model.to(device)
    cuda = torch.device(device).type == "cuda"
    venv.reset(seed=seed)
    for a in draw_actions("mixed", venv.action_space.shape, seed, count=every):
        venv.step(a)
    rows = np.arange(num_users)
    users = int((venv.state.hist_n > 0).sum())
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or calls < 2:
        reencoder(venv.state, rows)  # returns numpy arrays: the device has finished
        calls += 1
    return {
        "device": device,
        "n": num_users,
        "users_with_events": users,
        "calls": calls,
        "users_per_s": users * calls / elapsed,
        "call_ms": 1000 * elapsed / calls,
        "peak_cuda_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
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


def measure(
    preset: str,
    config: SimConfig,
    sizes: Sequence[int],
    policy: str,
    seconds: float,
    seed: int,
    reencode_every: int,
    reencode_size: int,
    stage: Callable[[str], None] = lambda description: None,
    **env_kwargs: Any,
) -> dict[str, Any]:
    """Every row of ``decaygym-throughput``, measured one after the other in this process.

    ``stage`` is told what is measured next (a progress display). The result is what the command
    prints (:func:`print_results`) and writes as JSON: the rows, the single env's and each N's
    rates per wall-clock and per CPU second, their ratio at the largest N, the re-encoding row
    (or why it was not measured), the bare step's cost (:func:`where_time_goes`), Numba's thread
    count and the load average.
    """
    from envs import env_id  # the package registers the ids; this module is one of its parts

    stage("single env (Python loop)")
    single, single_cpu, steps = time_single(env_id(preset), policy, seconds, seed, **env_kwargs)
    rows: list[dict[str, Any]] = [
        {
            "what": "single env, Python loop",
            "n": 1,
            "steps_per_s": single,
            "steps_per_cpu_s": single_cpu,
            "steps": steps,
            "state_mb": None,
            "peak_rss_mb": peak_rss_mib(),
        }
    ]
    timing = (policy, seconds, seed)
    for n in sizes:
        stage(f"vector env, N = {n:,}")
        rows.append({**time_vector(preset, n, *timing, **env_kwargs), "peak_rss_mb": peak_rss_mib()})
    vector = {str(r["n"]): r["steps_per_s"] for r in rows[1:]}
    vector_cpu = {str(r["n"]): r["steps_per_cpu_s"] for r in rows[1:]}
    reencode = None
    reencode_skipped = reencode_unavailable(config, reencode_every)
    if reencode_every > 0 and reencode_skipped is None:
        stage(f"vector env, N = {reencode_size:,}, re-encoding every {reencode_every} visits")
        row = time_vector(preset, reencode_size, *timing, reencode_every, **env_kwargs)
        reencode = {**row, "peak_rss_mb": peak_rss_mib()}
        rows.append(reencode)
    stage("the bare compiled step")
    step_n1 = time_kernel(preset, 1, *timing, threads=1, **env_kwargs)
    step_cached = time_kernel(preset, 1024, *timing, threads=1, **env_kwargs)
    largest = max(sizes)
    return {
        "single_steps_per_s": single,
        "vector_steps_per_s": vector,
        "ratio": vector[str(largest)] / single,
        "single_steps_per_cpu_s": single_cpu,
        "vector_steps_per_cpu_s": vector_cpu,
        "reencode": reencode,
        "reencode_skipped": reencode_skipped,
        "breakdown": where_time_goes(single, step_n1, step_cached, numba.get_num_threads()),
        "threads": numba.get_num_threads(),
        "ratio_n": largest,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        "rows": rows,
        "policy": policy,
        "seconds": seconds,
    }


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


def print_results(out: Any, title: str, result: dict[str, Any]) -> None:
    """The table of rows, the ratio of the largest vector env to the single env, where the time goes.

    Printed on the rich console ``out`` from :func:`measure`'s result; the load average is printed
    beside the ratio because a busy machine lowers it.
    """
    from rich.table import Table

    rows, breakdown, largest = result["rows"], result["breakdown"], result["ratio_n"]
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
        f"ratio vector N = {largest:,} / single env: {result['ratio']:,.1f}x "
        f"(wall clock; load average {result['load_average']:.1f})"
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
        f"on each of {result['threads']} threads"
    )
    if result["reencode_skipped"] is not None:
        out.print(f"re-encoding row not measured: {result['reencode_skipped']}")
    out.print("CUDA: not measured (the dynamics are compiled for the CPU; no CUDA backend yet)")


def measure_checkout(root: Path, options: Sequence[str], out: Path) -> dict[str, float]:
    """One run of ``decaygym-throughput`` from checkout ``root`` in its own process: user-steps/s per row.

    The re-encoding row is left out; ``options`` are the command's other options.
    """
    cmd = [sys.executable, "-m", "scripts.throughput", "--json", str(out), "--reencode-every", "0", *options]
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True, text=True)
    result = json.loads(out.read_text())
    rates = {"single env": result["single_steps_per_s"]}
    rates.update({f"vector env, N = {int(n):,}": v for n, v in result["vector_steps_per_s"].items()})
    return rates


def compare_checkouts(
    here: Path, other: Path, options: Sequence[str], rounds: int, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """This checkout against ``other``, measured in alternating rounds so both meet the same load.

    Returns every round's rates, each checkout's best round per row and the ratios this / other.
    """
    other = other.resolve()
    if not (other / "scripts" / "throughput.py").is_file():
        raise ConfigError(f"--against {other}: not a decaygym checkout (no scripts/throughput.py)")
    runs: dict[str, list[dict[str, float]]] = {"this": [], "other": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for label, root in (("this", here), ("other", other)):
                say(f"round {r + 1}/{rounds}: {label} ({root})")
                runs[label].append(measure_checkout(root, options, Path(tmp) / f"{label}{r}.json"))
    best = {label: {row: max(run[row] for run in rs) for row in rs[0]} for label, rs in runs.items()}
    ratio = {row: best["this"][row] / best["other"][row] for row in best["this"]}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"rounds": runs, "best": best, "ratio": ratio, "other": str(other), "load_average": load}


def comparison_table(result: dict[str, Any]) -> Any:
    """:func:`compare_checkouts`' result as a rich table: best round per row and the ratio."""
    from rich.table import Table

    rounds = len(result["rounds"]["this"])
    table = Table(
        title=f"throughput, best of {rounds} alternating rounds (user-steps/s), "
        f"load average {result['load_average']:.1f}"
    )
    for col in ("row", "this", "other", "this / other"):
        table.add_column(col, justify="left" if col == "row" else "right")
    for row, ratio in result["ratio"].items():
        table.add_row(
            row, f"{result['best']['this'][row]:,.0f}", f"{result['best']['other'][row]:,.0f}", f"{ratio:.3f}"
        )
    return table
