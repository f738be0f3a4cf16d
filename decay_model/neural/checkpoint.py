"""The per-epoch checkpoint of a NeuralDecay fit: all a resumed run needs, written atomically."""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from decay_model.atomic import atomic_write_bytes
from decay_model.errors import ArtifactError
from decay_model.neural.config import NeuralDecayConfig
from decay_model.neural.distributed import World

CHECKPOINT = "checkpoint.pt"
#: Version 2: the dropout generator's state replaced torch's global RNG state (version 1).
CHECKPOINT_VERSION = 2


def save_checkpoint(
    path: Path,
    config: NeuralDecayConfig,
    vocab: np.ndarray,
    net: nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    shuffle: torch.Generator,
    dropout: torch.Generator,
    state: dict[str, Any],
    rank_dropout: list[torch.Tensor] | None = None,
) -> None:
    """Everything a resumed run needs to continue as if uninterrupted, written atomically.

    The random state is that of the fit's own generators: shuffling and dropout (the
    initialisation generator is spent before epoch 1; a resumed run redraws the same weights
    from cfg.seed and replaces them by the checkpoint's). torch's global state plays no part.
    A fit on several ranks (torchrun) passes every rank's dropout state as ``rank_dropout``; the
    rest (weights, optimizer, shuffling) is the same on every rank.
    """
    blob = {
        "format_version": CHECKPOINT_VERSION,
        "config": asdict(config),
        "vocab": torch.as_tensor(vocab),
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng_shuffle": shuffle.get_state(),
        "rng_dropout": dropout.get_state(),
        "rng_dropout_device": dropout.device.type,
        **state,
    }
    if rank_dropout is not None:
        blob["rng_dropout_ranks"] = rank_dropout
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(
    path: Path,
    config: NeuralDecayConfig,
    net: nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    shuffle: torch.Generator,
    dropout: torch.Generator,
    world: World | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Restore a checkpoint into the fit's network, optimizer, schedule and generators.

    Returns the checkpoint's category vocabulary and the loop's state (epoch, best validation
    log-loss and its weights, epochs without improvement, history). On several ranks, rank 0
    reads the file and sends its bytes to the others (which need not see the folder), and each
    rank takes its own dropout state.
    """
    world = world or World()
    data = world.from_main(_read(path) if world.main else None)
    try:
        if isinstance(data, str):
            raise OSError(data)
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError) as exc:
        raise ArtifactError(f"{path}: unreadable checkpoint ({exc})") from exc
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in blob.get("config", {}).items()}
    if blob.get("format_version") != CHECKPOINT_VERSION or saved != asdict(config):
        raise ArtifactError(
            f"{path}: checkpoint of another run (config or checkpoint format differs); "
            "remove it or use another folder"
        )
    net.load_state_dict(blob["model"])
    opt.load_state_dict(blob["optimizer"])
    sched.load_state_dict(blob["scheduler"])
    shuffle.set_state(blob["rng_shuffle"])
    ranks = blob.get("rng_dropout_ranks") or [blob["rng_dropout"]]
    if len(ranks) != world.size:  # the ranks that have a state take it, the others start afresh
        warnings.warn(
            f"{path}: checkpoint written by {len(ranks)} process(es), resumed by {world.size}: "
            "dropout masks differ from an uninterrupted run",
            stacklevel=2,
        )
    if blob["rng_dropout_device"] != dropout.device.type:
        # a CPU and a CUDA generator's states do not convert: the masks start afresh
        warnings.warn(
            f"{path}: checkpoint written on {blob['rng_dropout_device']}, resumed on "
            f"{dropout.device.type}: dropout masks differ from an uninterrupted run",
            stacklevel=2,
        )
    elif world.rank < len(ranks):
        dropout.set_state(ranks[world.rank])
    state = {k: blob[k] for k in ("epoch", "best", "best_state", "bad_epochs", "history")}
    return blob["vocab"].numpy(), state


def _read(path: Path) -> bytes | str:
    """The file's bytes, or why it cannot be read (sent to the other ranks, who raise it too)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        return str(exc)
