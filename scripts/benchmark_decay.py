"""Speed of NeuralDecay: training events per second, encoded users per second, peak memory.

Examples:
    python -m scripts.benchmark_decay                         # tiny preset, built-in synthetic log
    python -m scripts.benchmark_decay --preset base --logs UserBehavior_head.csv --source taobao --json b.json

Training throughput counts the events the sequence encoder reads (each
(user, cutoff) group's truncated history) per second of optimizer steps
(forward, backward, AdamW), after a few warm-up steps. Encoding throughput is
users per second of :meth:`NeuralDecay.encode` on the whole log. The network
alone is timed (no ExponentialDecay prior fit). Peak memory is the process's
peak resident set on CPU and ``torch.cuda.max_memory_allocated`` on CUDA. Runs
on CPU, and on CUDA too when present (or the devices given by ``--device``).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Sequence
from typing import Any

import torch

from decay_model.atomic import atomic_write_json
from decay_model.logs import SOURCES, BehaviourLog, load_log
from decay_model.neural import PRESETS, NeuralDecay, NeuralDecayNet, preset, seeded_generators
from decay_model.sequences import GroupData, build_vocab
from decay_model.synthetic import SyntheticConfig, generate
from decay_model.task import EvalTask
from scripts.common import console, peak_rss_mib, run_cli, versions


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(
        prog="decaygym-benchmark-decay", description="Measure NeuralDecay's training and encoding speed."
    )
    parser.add_argument("--logs", metavar="PATH", help="behaviour log (default: the built-in synthetic log)")
    parser.add_argument("--source", choices=sorted(SOURCES), help="vocabulary of the log (default: detected)")
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


def measure(
    log: BehaviourLog, task: EvalTask, name: str, device: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Training events/s and encoded users/s of one preset on one device."""
    config = preset(name, seed=args.seed, exponential_prior=False)
    dev = torch.device(device)
    data = GroupData.from_task(task, "train")
    vocab = build_vocab(data.index, task.split.valid_start, config.vocab_min_count, config.vocab_max_size)
    init, dropout = seeded_generators(args.seed, dev)  # not torch's global generator
    net = NeuralDecayNet(config, len(vocab), float(task.config.horizon_hours), generator=init).to(dev)
    net.set_dropout_generator(dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if dev.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    generator = torch.Generator().manual_seed(args.seed)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    events = 0
    timed = 0.0
    steps = 0
    batches = data.batches(config.batch_groups, vocab, config.max_len, config.max_cat_events, generator)
    for i in range(args.warmup + args.steps):
        try:
            batch = next(batches)
        except StopIteration:
            batches = data.batches(
                config.batch_groups, vocab, config.max_len, config.max_cat_events, generator
            )
            batch = next(batches)
        batch.pop("cand_index")
        n_events = int((batch["seq_beh"] > 0).sum())
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        batch = {k: v.to(dev) for k, v in batch.items()}
        with autocast:
            _, loss = net(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i >= args.warmup:
            timed += time.perf_counter() - start
            events += n_events
            steps += 1
    model = NeuralDecay(config, device=dev)
    model.vocab, model.horizon_hours, model.net = vocab, float(task.config.horizon_hours), net
    start = time.perf_counter()
    encoded = model.encode(log)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    encode_s = time.perf_counter() - start
    n_users = int(encoded["user_id"].nunique())
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else peak_rss_mib()
    return {
        "preset": name,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else platform.processor() or "cpu",
        "train_steps": steps,
        "train_events": events,
        "train_events_per_s": events / timed if timed else math.nan,
        "train_step_ms": 1000 * timed / max(steps, 1),
        "encode_users": n_users,
        "encode_pairs": len(encoded),
        "encode_users_per_s": n_users / encode_s if encode_s else math.nan,
        "peak_memory_mib": peak,
        "peak_memory_kind": "cuda max_memory_allocated" if dev.type == "cuda" else "process peak RSS",
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Measure on every device, print the figures, optionally write JSON."""
    args = parse_args(argv)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        if args.logs:
            log = load_log(args.logs, args.source)
            data_name = os.path.basename(args.logs)
        else:
            log = generate(SyntheticConfig(), seed=args.seed).log
            data_name = f"synthetic(seed={args.seed})"
        task = EvalTask(log)
        rows = [measure(log, task, args.preset, device, args) for device in devices]
    finally:
        torch.set_num_threads(before)
    hardware = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": args.threads,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    console.print(
        f"[dim]{data_name}: {log.n_events:,} events, {log.n_users:,} users; "
        f"{hardware['processor']}, {hardware['cpu_count']} CPUs, torch threads {args.threads}, "
        f"CUDA: {hardware['cuda'] or 'none'}[/dim]"
    )
    for r in rows:
        print(
            f"{r['preset']:>5} {r['device']:>6}: train {r['train_events_per_s']:,.0f} events/s "
            f"({r['train_step_ms']:.1f} ms/step), encode {r['encode_users_per_s']:,.0f} users/s, "
            f"peak memory {r['peak_memory_mib']:,.0f} MiB ({r['peak_memory_kind']})"
        )
    if args.json:
        from pathlib import Path

        atomic_write_json(
            Path(args.json),
            {"data": data_name, "hardware": hardware, "versions": versions(), "results": rows},
        )
    return 0


def cli(argv: Sequence[str] | None = None) -> None:
    """Console entry point ``decaygym-benchmark-decay``."""
    run_cli("decaygym-benchmark-decay", main, argv)


if __name__ == "__main__":
    cli()
