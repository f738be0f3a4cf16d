"""NeuralDecay on several processes: torchrun's environment, the process group and the few collectives.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), :meth:`NeuralDecay.fit
<decay_model.neural.model.NeuralDecay.fit>` joins a process group (NCCL when training on CUDA,
each process on the GPU of its ``LOCAL_RANK``; gloo on the CPU) and trains through
``DistributedDataParallel``: every rank draws the same batch order, takes its share of every
batch (:meth:`GroupData.batches <decay_model.sequences.GroupData.batches>`) and DDP averages the
gradients, so the replicas stay equal. Validation is split between the ranks and its predictions
summed over them, so every rank scores the same numbers and stops at the same epoch; rank 0 alone
writes the checkpoint. Without torchrun the world has one process and every collective here is
the identity, so a single-process fit computes exactly what it would without them.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from decay_model.errors import ConfigError


def launched_world_size() -> int:
    """Processes torchrun started (``WORLD_SIZE``), 1 without torchrun."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_rank() -> int:
    """This process's rank under torchrun (``RANK``), 0 without torchrun or with one process.

    Read from the environment, so a command can tell before any process group exists that it is
    not rank 0 and must leave every file to rank 0.
    """
    return int(os.environ.get("RANK", "0")) if launched_world_size() > 1 else 0


@dataclass(frozen=True)
class World:
    """The processes of one fit: this one's rank, how many, and where collectives' tensors live.

    ``World()`` is the single process; every method is then the identity, so the training loop
    has one code path.
    """

    rank: int = 0
    size: int = 1
    comm_device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the one that writes files and shows progress."""
        return self.rank == 0

    def wrap(self, net: nn.Module, device: torch.device) -> nn.Module:
        """``net`` itself, or its DDP wrapper (which first copies rank 0's weights to every rank)."""
        if self.size == 1:
            return net
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum of ``values`` (float64) over the ranks, the same array on every rank."""
        if self.size == 1:
            return values
        tensor = torch.as_tensor(np.asarray(values, dtype=np.float64), device=self.comm_device)
        dist.all_reduce(tensor)
        return tensor.cpu().numpy()

    def from_main(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a picklable object): one value, whatever each rank computed."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.comm_device)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if self.size == 1:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out


def join(device: torch.device, batch_groups: int) -> tuple[World, torch.device]:
    """This process's world, and the device it trains on.

    Under torchrun the process group is created here when nobody created it before (and left at
    exit); a CUDA device without an index becomes the GPU of ``LOCAL_RANK``. A process group that
    the caller created is used as it is. A batch must split evenly over the ranks (so that the
    ranks' mean losses, which DDP averages, weigh every group alike).
    """
    if not dist.is_available() or (not dist.is_initialized() and launched_world_size() <= 1):
        return World(), device
    if device.type == "cuda" and device.index is None:
        ours = not dist.is_initialized()
        device = torch.device(
            "cuda", int(os.environ.get("LOCAL_RANK", "0")) if ours else torch.cuda.current_device()
        )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)
    if dist.get_world_size() == 1:
        return World(), device
    if batch_groups % dist.get_world_size():
        raise ConfigError(
            f"NeuralDecayConfig.batch_groups={batch_groups} is not a multiple of the "
            f"{dist.get_world_size()} processes: every process needs the same share of every batch"
        )
    comm = device if dist.get_backend() == "nccl" else torch.device("cpu")
    return World(dist.get_rank(), dist.get_world_size(), comm), device


def _leave() -> None:
    """Destroy the process group :func:`join` created (at exit)."""
    if dist.is_initialized():
        dist.destroy_process_group()
