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
) -> None:
    """Everything a resumed run needs to continue as if uninterrupted, written atomically.

    The random state is that of the fit's own generators: shuffling and dropout (the
    initialisation generator is spent before epoch 1; a resumed run redraws the same weights
    from cfg.seed and replaces them by the checkpoint's). torch's global state plays no part.
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
) -> tuple[np.ndarray, dict[str, Any]]:
    """Restore a checkpoint into the fit's network, optimizer, schedule and generators.

    Returns the checkpoint's category vocabulary and the loop's state (epoch, best validation
    log-loss and its weights, epochs without improvement, history).
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
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
    if blob["rng_dropout_device"] == dropout.device.type:
        dropout.set_state(blob["rng_dropout"])
    else:  # a CPU and a CUDA generator's states do not convert: the masks start afresh
        warnings.warn(
            f"{path}: checkpoint written on {blob['rng_dropout_device']}, resumed on "
            f"{dropout.device.type}: dropout masks differ from an uninterrupted run",
            stacklevel=2,
        )
    state = {k: blob[k] for k in ("epoch", "best", "best_state", "bad_epochs", "history")}
    return blob["vocab"].numpy(), state
