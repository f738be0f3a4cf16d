"""Torch's CPU thread count, pinned for a block.

Float sums split differently over threads, so trained models and timed figures depend on the
count: every run that trains or times pins it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Torch on ``n`` CPU threads inside the block, the caller's count after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
