"""The process' peak memory, which every benchmark of the project reports beside its rates."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import resource
import sys
from collections.abc import Callable


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@functools.cache
def _glibc(function: str) -> Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), function) if name else None
    except (OSError, AttributeError):  # no C library found, or not glibc
        return None


#: glibc's mallopt parameter of the size from which blocks are mapped (malloc.h)
_M_MMAP_THRESHOLD = -3


def map_large_blocks(threshold: int = 1 << 20) -> bool:
    """Map every block of ``threshold`` bytes or more on its own, so that freeing it unmaps it.

    glibc raises its mapping threshold each time a mapped block is freed (up to 32 MiB); after
    that, parameter-sized vectors come from the heap, which fragments as vectors of different
    lifetimes are freed, and keeps pages that :func:`release_free_memory` cannot return. A fixed
    threshold turns that adjustment off. It holds for the whole process, so commands call it, not
    library functions. Returns whether it was set (False where the C library is not glibc).
    """
    mallopt = _glibc("mallopt")
    return bool(mallopt is not None and mallopt(_M_MMAP_THRESHOLD, threshold))


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``; a no-op elsewhere).

    Once a large block has been freed, glibc serves later large blocks from the heap rather than
    mapping them, and the heap keeps the pages of freed blocks. An optimiser that allocates new
    parameter-sized vectors every step (L-BFGS's history) then holds about twice its live memory;
    trimming once per step keeps the peak near the live size.
    """
    trim = _glibc("malloc_trim")
    if trim is not None:
        trim(0)
