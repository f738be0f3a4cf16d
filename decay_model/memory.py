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
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # no C library found, or not glibc
        return None


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``; a no-op elsewhere).

    Once a large block has been freed, glibc serves later large blocks from the heap rather than
    mapping them, and the heap keeps the pages of freed blocks. An optimiser that allocates new
    parameter-sized vectors every step (L-BFGS's history) then holds about twice its live memory;
    trimming once per step keeps the peak near the live size.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
