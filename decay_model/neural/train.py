"""The training loop of NeuralDecay: seeded generators, the linear stage, AdamW, epochs, early stop.

Every function takes what it uses as arguments; :meth:`NeuralDecay.fit
<decay_model.neural.model.NeuralDecay.fit>` puts them together. The loop is the same for one
process and for several under torchrun: a :class:`~decay_model.neural.distributed.World` says
which share of each batch this process trains on and sums what the ranks must agree on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from decay_model.neural.checkpoint import save_checkpoint
from decay_model.neural.config import NeuralDecayConfig
from decay_model.neural.distributed import World
from decay_model.neural.network import NeuralDecayNet, to_device
from decay_model.sequences import GroupData, padded_groups

#: Streams drawn from ``NeuralDecayConfig.seed``: one seed each for the initial weights and the
#: dropout masks (the shuffling generator is seeded with ``seed`` itself).
_INIT_STREAM, _DROPOUT_STREAM = 1, 2


def stream_seed(seed: int, stream: int, rank: int = 0) -> int:
    """An independent seed for one use of ``seed`` (numpy SeedSequence), so the streams differ.

    ``rank`` > 0 gives a torchrun rank a stream of its own; rank 0 has the single process's.
    """
    words = [int(seed), stream] + ([rank] if rank else [])
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> 1)


def seeded_generators(
    seed: int, device: str | torch.device, rank: int = 0
) -> tuple[torch.Generator, torch.Generator]:
    """The generators of a fit with this seed: initial weights (CPU) and dropout masks (``device``).

    Under torchrun each rank > 0 draws its dropout masks from a stream of its own (rank 0 from
    the single process's), so that the ranks' masks are independent, as one process's are.
    """
    init = torch.Generator().manual_seed(stream_seed(seed, _INIT_STREAM))
    dropout = torch.Generator(device=torch.device(device)).manual_seed(
        stream_seed(seed, _DROPOUT_STREAM, rank)
    )
    return init, dropout


def steps_per_epoch(data: GroupData, config: NeuralDecayConfig, world_size: int = 1) -> int:
    """Optimizer steps in one epoch over ``data`` (the same on every rank of a world of ``world_size``)."""
    return math.ceil(padded_groups(data.n_groups, world_size) / config.batch_groups)


def make_optimizer(
    net: NeuralDecayNet, config: NeuralDecayConfig, total_steps: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (weight decay on matrices and embeddings only) and its warm-up + cosine schedule."""
    cfg = config
    decay, no_decay = [], []
    for param in net.parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
    warmup = max(1, int(cfg.warmup_frac * total_steps))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    return opt, sched


def fit_linear(
    net: NeuralDecayNet, data: GroupData, config: NeuralDecayConfig, vocab: np.ndarray, device: torch.device
) -> float:
    """The linear stage: the skip's departures by full-batch L-BFGS, the Transformer's held at 0."""
    cfg = config
    keys = ("cand_feat", "prior", "hist_age", "hist_beh", "label")
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    for batch in data.batches(cfg.eval_batch_groups, vocab, cfg.max_len, cfg.max_cat_events):
        for k in keys:
            parts[k].append(batch[k])
    full = to_device({k: torch.cat(v) for k, v in parts.items()}, device)
    skip = net.skip
    assert skip is not None

    def nll() -> torch.Tensor:
        p = net.decay(full, context=False)["p"].clamp(1e-6, 1 - 1e-6)
        return -(full["label"] * torch.log(p) + (1 - full["label"]) * torch.log1p(-p)).mean()

    opt = torch.optim.LBFGS(list(skip.parameters()), lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nll() + cfg.linear_l2 * (skip.weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(nll())


def train_epochs(
    net: NeuralDecayNet,
    data: GroupData,
    config: NeuralDecayConfig,
    vocab: np.ndarray,
    state: dict[str, Any],
    *,
    device: torch.device,
    opt: torch.optim.Optimizer,
    sched: Any,
    shuffle: torch.Generator,
    dropout: torch.Generator,
    autocast: Callable[[], Any],
    evaluate: Callable[[], dict[str, float]],
    checkpoint: Path | None,
    show_progress: bool | Any,
    on_batch: Callable[[int, int], None] | None,
    world: World | None = None,
    trainer: nn.Module | None = None,
) -> None:
    """Train epoch after epoch from ``state["epoch"]`` on, until ``config.epochs`` or early stopping.

    ``state`` (epoch, best validation log-loss and its weights, epochs without improvement,
    history) is updated in place; ``evaluate`` returns the current network's validation metrics,
    the same on every rank; the checkpoint, when a path is given, is rewritten after every epoch.
    In a ``world`` of several ranks, this rank trains on its share of every batch through
    ``trainer`` (``net``'s DistributedDataParallel wrapper), the training loss is summed over the
    ranks, and rank 0 alone shows progress and writes the checkpoint (with every rank's dropout
    generator).
    """
    cfg = config
    world = world or World()
    trainer = trainer or net
    bar = _Bar(show_progress if world.main else False, cfg.epochs, steps_per_epoch(data, cfg, world.size))
    shard = (world.rank, world.size)
    with bar:
        for epoch in range(state["epoch"], cfg.epochs):
            if state["bad_epochs"] >= cfg.patience:
                break
            net.train()
            total, count = 0.0, 0
            bar.start_epoch(epoch)
            for i, batch in enumerate(
                data.batches(cfg.batch_groups, vocab, cfg.max_len, cfg.max_cat_events, shuffle, shard)
            ):
                batch.pop("cand_index")
                batch = to_device(batch, device)
                with autocast():
                    _, loss = trainer(batch)
                assert loss is not None
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                sched.step()
                n = len(batch["label"])
                total += float(loss.detach()) * n
                count += n
                bar.step(total / max(count, 1))
                if on_batch is not None:
                    on_batch(epoch, i)
            if world.size > 1:
                total, count = (float(v) for v in world.sum(np.array([total, count])))
            metrics = {
                "epoch": epoch + 1,
                "train_loss": total / max(count, 1),
                **evaluate(),
            }
            state["history"].append(metrics)
            if metrics["valid_log_loss"] < state["best"] - 1e-6:
                state["best"] = metrics["valid_log_loss"]
                state["best_state"] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                state["bad_epochs"] = 0
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch + 1
            bar.end_epoch(metrics)
            ranks = world.gather(dropout.get_state()) if world.size > 1 else None
            if checkpoint is not None and world.main:
                save_checkpoint(checkpoint, cfg, vocab, net, opt, sched, shuffle, dropout, state, ranks)


class _Bar:
    """Epoch rows on a rich progress display, the running loss and last validation metrics in the text."""

    def __init__(self, enabled: bool | Any, epochs: int, steps: int) -> None:
        self._own = enabled is True
        self.epochs = epochs
        self.steps = steps
        self._progress: Any = None if isinstance(enabled, bool) else enabled
        self._task: Any = None
        self._epoch = 0
        self._last = ""

    def __enter__(self) -> _Bar:
        if self._own:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._own and self._progress is not None:
            self._progress.__exit__(*exc)

    def _text(self, loss: float | None) -> str:
        text = f"neural epoch {self._epoch + 1}/{self.epochs}"
        if loss is not None:
            text += f" loss {loss:.4f}"
        return text + (f" | {self._last}" if self._last else "")

    def start_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        if self._progress is not None:
            self._task = self._progress.add_task(self._text(None), total=self.steps)

    def step(self, loss: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=self._text(loss))

    def end_epoch(self, metrics: dict[str, float]) -> None:
        self._last = f"valid log-loss {metrics['valid_log_loss']:.4f} AUC {metrics['valid_auc']:.4f}"
        if self._progress is not None:
            self._progress.update(self._task, description=self._text(metrics["train_loss"]))
