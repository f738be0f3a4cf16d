"""Speed of NeuralDecay: training events per second, encoded users per second, peak memory.

Examples:
    python -m scripts.benchmark_decay                         # tiny preset, built-in synthetic log
    python -m scripts.benchmark_decay --preset base --logs UserBehavior_head.csv --source taobao --json b.json

Measures each device in turn (``decay_model.neural_speed`` says what is counted): on CPU, and
on CUDA too when present (or the devices given by ``--device``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import torch

from agents.provenance import machine
from decay_model.neural import PRESETS
from decay_model.neural_speed import measure
from decay_model.synthetic import load_log_or_synthetic
from decay_model.task import EvalTask
from scripts.common import (
    add_log_options,
    console,
    entry_point,
    peak_rss_mib,
    torch_threads,
    write_result_json,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(
        prog="decaygym-benchmark-decay", description="Measure NeuralDecay's training and encoding speed."
    )
    add_log_options(parser)
    parser.add_argument("--preset", choices=list(PRESETS), default="tiny", help="model size (default: tiny)")
    parser.add_argument(
        "--device",
        action="append",
        help="device to measure, repeatable (default: cpu, and cuda when present)",
    )
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (default: 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic log and model (default: 0)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure on every device, print the figures, optionally write JSON."""
    args = parse_args(argv)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    with torch_threads(args.threads):
        log, _, _ = load_log_or_synthetic(args.logs, args.source, args.seed)
        data_name = os.path.basename(args.logs) if args.logs else f"synthetic(seed={args.seed})"
        task = EvalTask(log)
        timing = {"seed": args.seed, "steps": args.steps, "warmup": args.warmup}
        rows = [
            measure(log, task, args.preset, device, **timing, process_peak_mib=peak_rss_mib)
            for device in devices
        ]
    # the CPU, its cores and the OS go into the JSON with every result (write_result_json)
    hardware = {
        "torch_threads": args.threads,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    cpu = machine()
    console.print(
        f"[dim]{data_name}: {log.n_events:,} events, {log.n_users:,} users; "
        f"{cpu['cpu']}, {cpu['cpus']} CPUs, torch threads {args.threads}, "
        f"CUDA: {hardware['cuda'] or 'none'}[/dim]"
    )
    for r in rows:
        print(
            f"{r['preset']:>5} {r['device']:>6}: train {r['train_events_per_s']:,.0f} events/s "
            f"({r['train_step_ms']:.1f} ms/step), encode {r['encode_users_per_s']:,.0f} users/s, "
            f"peak memory {r['peak_memory_mib']:,.0f} MiB ({r['peak_memory_kind']})"
        )
    write_result_json(args.json, {"data": data_name, "hardware": hardware, "results": rows})
    return 0


cli = entry_point("decaygym-benchmark-decay", main)


if __name__ == "__main__":
    cli()
