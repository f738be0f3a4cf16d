"""Counter-based random numbers: every draw is a hash of (user key, episode, visit, purpose, slot).

A user's draws therefore depend only on that user's own key and counters, never
on how many other users share the batch or in which order they are processed:
this is what makes user i of the vector env equal a single env given the same
seed. The hash is ``lowbias32`` (C. Wellons' integer-hash prospector), applied
to a Weyl-sequence counter as in SplitMix; it is fast in NumPy (a handful of
uint32 operations per draw) and statistically fine for simulation.

No global random state is touched anywhere.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

GOLDEN = np.uint32(0x9E3779B9)
_M1 = np.uint32(0x7FEB352D)
_M2 = np.uint32(0x846CA68B)
_TO_UNIT = np.float32(2.0**-23)
_HALF = np.float32(0.5)

# purposes of a draw (each has its own salts, see `salt`)
DRAW_VISIT = 1  # per slot: click (top 24 bits) and reduce coin (low 8 bits); purchase; churn; return gap
DRAW_FRESH = 2  # per fresh candidate: category, item, appeal (two uniforms)
DRAW_POPULATION = 16  # population draws use DRAW_POPULATION + j


def mix(x: NDArray[np.uint32]) -> NDArray[np.uint32]:
    """lowbias32 finaliser, in place on ``x`` (which must be a uint32 array); returns it."""
    x ^= x >> np.uint32(16)
    x *= _M1
    x ^= x >> np.uint32(15)
    x *= _M2
    x ^= x >> np.uint32(16)
    return x


def key_from_seed(seed: int) -> np.uint32:
    """The user key of a seed: the first word of NumPy's SeedSequence for it."""
    return np.uint32(np.random.SeedSequence(int(seed)).generate_state(1, dtype=np.uint32)[0])


def stream(
    key: NDArray[np.uint32], episode: NDArray[np.uint32], visit: NDArray[np.uint32], purpose: int = 0
) -> NDArray[np.uint32]:
    """One 32-bit stream base per user at one visit (and purpose), shape (n,).

    Individual draws are ``mix(base + salt(purpose, index))`` (see :func:`uniform`).
    """
    x = episode * GOLDEN  # uint32 arrays wrap around silently, as intended
    x += visit * np.uint32(0x85EBCA6B) + np.uint32(purpose)
    x ^= key
    return mix(x)


@functools.lru_cache(maxsize=256)
def salt(purpose: int, num: int) -> NDArray[np.uint32]:
    """Salts of draws 0..num-1 for one purpose: distinct for every (purpose, index < 2**16); read-only."""
    if num > 2**16:
        raise ValueError(f"at most 2**16 draws per purpose, asked for {num}")
    idx = np.arange(num, dtype=np.uint32) + np.uint32(purpose << 16) + np.uint32(1)
    out = idx * GOLDEN
    out.flags.writeable = False
    return out


def uniform(base: NDArray[np.uint32], salt: NDArray[np.uint32] | np.uint32) -> NDArray[np.float32]:
    """Uniforms in (0, 1) as float32: ``base + salt`` (broadcast) hashed, top 23 bits."""
    return to_unit(mix(base + salt))


def to_unit(x: NDArray[np.uint32]) -> NDArray[np.float32]:
    """Hashed words to uniforms strictly inside (0, 1) (top 23 bits; ``x`` is overwritten).

    23 bits, not 24: (2^24 - 1 + 0.5) / 2^24 rounds to 1.0 in float32, and log(1 - u) or
    log(-log u) would then be infinite; every (k + 0.5) / 2^23 is exact in float32.
    """
    x >>= np.uint32(9)
    u = x.astype(np.float32)
    u += _HALF
    u *= _TO_UNIT
    return u


def normal(
    base: NDArray[np.uint32], salt1: NDArray[np.uint32] | np.uint32, salt2: NDArray[np.uint32] | np.uint32
) -> NDArray[np.float32]:
    """Standard normals by Box-Muller from two hashed uniforms (two distinct salts)."""
    u1 = uniform(base, salt1)
    u2 = uniform(base, salt2)
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(np.float32(2 * np.pi) * u2)).astype(np.float32)
