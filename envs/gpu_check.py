"""CPU beside CUDA in one run: NeuralDecay training, neural re-encoding of simulated users, the simulator.

``decaygym-gpu-check`` prints :func:`print_results` of :func:`measure`. Every figure is measured
in this process, one after the other, on the CPU and, when CUDA is present, on the GPU:

- NeuralDecay training (``decay_model.neural_speed``: the network alone, events read per second
  of optimizer steps, and encoding the log's users); peak memory is
  ``torch.cuda.max_memory_allocated`` on CUDA and the process's peak resident set on CPU;
- re-encoding N simulated users in one call (``envs.throughput.time_reencode``), the model on
  each device;
- the vector env at N users re-encoding every k visits, the model on each device;
- the vector env at N users: its dynamics are compiled by Numba for the CPU and no CUDA step
  exists, so that row has a CPU figure only, and says so.

Without CUDA the CUDA column says ``skipped`` and the result says why (``cuda_skipped``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import torch

from decay_model.logs import BehaviourLog
from decay_model.memory import peak_rss_mib
from decay_model.neural_speed import measure as measure_training
from decay_model.task import EvalTask
from envs.config import SimConfig
from envs.throughput import reencode_unavailable, time_reencode, time_vector

#: What the simulator row's CUDA cell says
NO_CUDA_STEP = "no CUDA step: the dynamics are compiled by Numba for the CPU"


def cuda_unavailable() -> str | None:
    """Why nothing can run on CUDA here (None: it can)."""
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    return "torch.cuda.is_available() is False: no CUDA device is visible"


def measure(
    log: BehaviourLog,
    task: EvalTask,
    sim_preset: str,
    sim_config: SimConfig,
    *,
    neural_preset: str,
    users: int,
    steps: int,
    seconds: float,
    seed: int,
    reencode_every: int,
    stage: Callable[[str], None] = lambda description: None,
    **env_kwargs: Any,
) -> dict[str, Any]:
    """Every row of ``decaygym-gpu-check``: per row a CPU and a CUDA figure (None where not measured).

    ``steps`` timed training steps (after up to 3 untimed ones) on ``log``/``task``; ``users``
    simulated users; ``seconds`` per simulator timing. ``stage`` is told what is measured next.
    """
    cuda_skipped = cuda_unavailable()
    devices = ["cpu"] if cuda_skipped else ["cpu", "cuda"]
    train: dict[str, dict[str, Any]] = {}
    for device in devices:
        stage(f"NeuralDecay training on {device}")
        train[device] = measure_training(
            log, task, neural_preset, device, seed=seed, steps=steps, warmup=min(3, steps),
            process_peak_mib=peak_rss_mib,
        )  # fmt: skip
    reencode_skipped = reencode_unavailable(sim_config, reencode_every)
    reencode: dict[str, dict[str, Any]] = {}
    reencoding_env: dict[str, dict[str, Any]] = {}
    if reencode_skipped is None:
        for device in devices:
            stage(f"re-encoding {users:,} users on {device}")
            reencode[device] = time_reencode(
                sim_preset, users, device, seconds, seed, reencode_every, **env_kwargs
            )
            stage(f"vector env, N = {users:,}, re-encoding on {device}")
            reencoding_env[device] = time_vector(
                sim_preset, users, "mixed", seconds, seed, reencode_every, device=device, **env_kwargs
            )
    stage(f"vector env, N = {users:,}")
    simulator = time_vector(sim_preset, users, "mixed", seconds, seed, **env_kwargs)

    memory_note = "CPU: the process's peak RSS; CUDA: torch.cuda.max_memory_allocated"
    env_note = "the decay model on this device, the dynamics on the CPU"
    # (what, unit, results per device, key, note)
    specs: list[tuple[str, str, dict[str, dict[str, Any]], str, str]] = [
        (f"NeuralDecay training ({neural_preset})", "events/s", train, "train_events_per_s", ""),
        ("NeuralDecay training step", "ms", train, "train_step_ms", ""),
        ("NeuralDecay peak memory", "MiB", train, "peak_memory_mib", memory_note),
        (f"NeuralDecay encoding the log ({log.n_users:,} users)", "users/s", train, "encode_users_per_s", ""),
    ]
    if reencode_skipped is None:
        rate = f"vector env, N = {users:,}, re-encoding every {reencode_every} visits"
        specs += [
            (f"re-encoding {users:,} simulated users, one call", "users/s", reencode, "users_per_s", ""),
            ("re-encoding call", "ms", reencode, "call_ms", ""),
            ("re-encoding peak CUDA memory", "MiB", reencode, "peak_cuda_mib", ""),
            (rate, "user-steps/s", reencoding_env, "steps_per_s", env_note),
        ]
    bare = f"vector env, N = {users:,} (CPU, {numba.get_num_threads()} Numba threads)"
    specs.append((bare, "user-steps/s", {"cpu": simulator}, "steps_per_s", NO_CUDA_STEP))
    rows = [
        {
            "what": what,
            "unit": unit,
            **{d: results[d][key] if d in results else None for d in ("cpu", "cuda")},
            "note": note,
        }
        for what, unit, results, key, note in specs
    ]
    return {
        "rows": rows,
        "cuda": torch.cuda.get_device_name() if cuda_skipped is None else None,
        "cuda_skipped": cuda_skipped,
        "reencode_skipped": reencode_skipped,
        "training": train,
        "reencode": reencode,
        "users": users,
        "torch_threads": torch.get_num_threads(),
        "numba_threads": numba.get_num_threads(),
    }


def print_results(out: Any, title: str, result: dict[str, Any]) -> None:
    """:func:`measure`'s result as a rich table on the console ``out``, then what was skipped and why."""
    from rich.table import Table

    table = Table(title=title)
    cuda = f"CUDA ({result['cuda']})" if result["cuda"] else "CUDA"
    for col in ("measured", "unit", "CPU", cuda, "CUDA / CPU"):
        table.add_column(col, justify="left" if col in ("measured", "unit") else "right")
    for r in result["rows"]:
        cpu, gpu = r["cpu"], r["cuda"]
        if gpu is not None:
            gpu_cell = f"{gpu:,.1f}"
        elif r["note"] == NO_CUDA_STEP:
            gpu_cell = "no CUDA step"
        else:
            gpu_cell = "skipped" if result["cuda_skipped"] else "-"
        ratio = f"{gpu / cpu:,.2f}x" if gpu is not None and cpu else "-"
        table.add_row(r["what"], r["unit"], "-" if cpu is None else f"{cpu:,.1f}", gpu_cell, ratio)
    out.print(table)
    for r in result["rows"]:
        if r["note"] and r["note"] != NO_CUDA_STEP:
            out.print(f"{r['what']}: {r['note']}")
    if result["cuda_skipped"]:
        skipped = [r["what"] for r in result["rows"] if r["note"] != NO_CUDA_STEP]
        out.print(f"GPU rows skipped ({result['cuda_skipped']}): {'; '.join(skipped)}")
    if result["reencode_skipped"]:
        out.print(f"re-encoding rows not measured: {result['reencode_skipped']}")
    out.print(f"simulator: {NO_CUDA_STEP}; its row is measured on the CPU only")
