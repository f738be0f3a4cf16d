"""How fast NeuralDecay trains and encodes on one device: the figures ``decaygym-benchmark-decay`` prints.

Training throughput counts the events the sequence encoder reads (each (user, cutoff) group's
truncated history) per second of optimizer steps (forward, backward, AdamW), after a few warm-up
steps. Encoding throughput is users per second of :meth:`NeuralDecay.encode` on the whole log.
The network alone is timed (no ExponentialDecay prior fit). Peak memory is
``torch.cuda.max_memory_allocated`` on CUDA and the process's peak resident set on CPU.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from typing import Any

import torch

from decay_model.logs import BehaviourLog
from decay_model.neural import NeuralDecay, NeuralDecayNet, preset, seeded_generators
from decay_model.sequences import GroupData, build_vocab
from decay_model.task import EvalTask


def measure(
    log: BehaviourLog,
    task: EvalTask,
    name: str,
    device: str,
    *,
    seed: int,
    steps: int,
    warmup: int,
    process_peak_mib: Callable[[], float],
) -> dict[str, Any]:
    """Training events/s and encoded users/s of one preset on one device.

    ``steps`` optimizer steps are timed after ``warmup`` untimed ones. ``process_peak_mib`` gives
    the process's peak resident memory, the figure reported on CPU.
    """
    config = preset(name, seed=seed, exponential_prior=False)
    dev = torch.device(device)
    data = GroupData.from_task(task, "train")
    vocab = build_vocab(data.index, task.split.valid_start, config.vocab_min_count, config.vocab_max_size)
    init, dropout = seeded_generators(seed, dev)  # not torch's global generator
    net = NeuralDecayNet(config, len(vocab), float(task.config.horizon_hours), generator=init).to(dev)
    net.set_dropout_generator(dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if dev.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    generator = torch.Generator().manual_seed(seed)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    events = 0
    timed = 0.0
    done = 0
    batches = data.batches(config.batch_groups, vocab, config.max_len, config.max_cat_events, generator)
    for i in range(warmup + steps):
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
        if i >= warmup:
            timed += time.perf_counter() - start
            events += n_events
            done += 1
    model = NeuralDecay(config, device=dev)
    model.vocab, model.horizon_hours, model.net = vocab, float(task.config.horizon_hours), net
    start = time.perf_counter()
    encoded = model.encode(log)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    encode_s = time.perf_counter() - start
    n_users = int(encoded["user_id"].nunique())
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else process_peak_mib()
    return {
        "preset": name,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else platform.processor() or "cpu",
        "train_steps": done,
        "train_events": events,
        "train_events_per_s": events / timed if timed else math.nan,
        "train_step_ms": 1000 * timed / max(done, 1),
        "encode_users": n_users,
        "encode_pairs": len(encoded),
        "encode_users_per_s": n_users / encode_s if encode_s else math.nan,
        "peak_memory_mib": peak,
        "peak_memory_kind": "cuda max_memory_allocated" if dev.type == "cuda" else "process peak RSS",
    }
