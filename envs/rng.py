"""Counter-based random numbers: every draw is a hash of (user key, episode, visit, purpose, index).

A user's draws depend only on that user's own 64-bit key and counters, never on how many
other users share the batch or in which order they are processed: this is what makes user i
of the vector env equal a single env given the same seed. Everything is 64-bit, so streams do
not collide at realistic scale: a stream base is ``mix(mix(counter) ^ key)`` with the counter
``episode · 2^40 + visit · 2^8 + purpose`` (distinct for every episode < 2^24, visit < 2^32 and
purpose < 2^8, and ``mix`` is a bijection, so two streams of one user never coincide), and word
j of a stream is ``mix(base + (j + 1)·φ)``, φ the 64-bit golden ratio (a Weyl sequence, as in
SplitMix64). ``mix`` is SplitMix64's finaliser (Stafford's variant 13), cheap in NumPy and in the
compiled step (``envs.kernels`` computes the same words bit for bit).

Uniforms take the top 53 bits of a word: ``(w >> 11 + 0.5) / 2^53``, strictly inside (0, 1),
so ``log(u)`` and ``log(1 - u)`` are always finite.

No global random state is touched anywhere.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

U64 = np.uint64
GOLDEN = U64(0x9E3779B97F4A7C15)
M1 = U64(0xBF58476D1CE4E5B9)
M2 = U64(0x94D049BB133111EB)
EPISODE_SHIFT, VISIT_SHIFT = U64(40), U64(8)
TO_UNIT = 2.0**-53

# purposes of a stream (each visit has one stream per purpose)
DRAW_VISIT = 1
"""The user's own draws of a visit: churn (word 0), return gap (1), browsing (from word 2)."""
DRAW_CANDIDATE = 2
"""Per candidate of a visit, keyed by the candidate's id u: reduce coin (word 3u), click (3u + 1),
purchase (3u + 2); where the candidate sits in the slots changes nothing."""
DRAW_REFILL = 3
"""The j-th fresh candidate of a visit (in arrival order): category (word 3j), item (3j + 1), appeal
(3j + 2)."""
DRAW_START = 4
"""The K candidates a user starts an episode with (visit 0), as ``DRAW_REFILL``."""
DRAW_POPULATION = 16
"""Drawing the user at the start of an episode (``envs.population``)."""


def _u64(x: ArrayLike) -> NDArray[np.uint64]:
    """``x`` as a fresh uint64 array of at least one dimension (array arithmetic wraps silently)."""
    return np.array(x, dtype=np.uint64, ndmin=1)


def mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64's finaliser, in place on ``x`` (a uint64 array); returns it. A bijection of 64-bit words."""
    x ^= x >> U64(30)
    x *= M1
    x ^= x >> U64(27)
    x *= M2
    x ^= x >> U64(31)
    return x


def key_from_seed(seed: int) -> np.uint64:
    """The user key of a seed: the first 64-bit word of NumPy's SeedSequence for it."""
    return U64(np.random.SeedSequence(int(seed)).generate_state(1, dtype=np.uint64)[0])


def stream(key: ArrayLike, episode: ArrayLike, visit: ArrayLike, purpose: int) -> NDArray[np.uint64]:
    """One 64-bit stream base per user at one visit and purpose, shape (n,) (inputs broadcast)."""
    if not 0 <= purpose < 256:
        raise ValueError(f"purpose must be in [0, 256), got {purpose}")
    counter = (_u64(episode) << EPISODE_SHIFT) | (_u64(visit) << VISIT_SHIFT) | U64(purpose)
    return mix(mix(counter) ^ _u64(key))


def words(base: ArrayLike, index: ArrayLike) -> NDArray[np.uint64]:
    """Word ``index`` of each stream: ``mix(base + (index + 1)·φ)`` (``base`` and ``index`` broadcast)."""
    return mix(_u64(base) + (_u64(index) + U64(1)) * GOLDEN)


def to_unit(w: NDArray[np.uint64]) -> NDArray[np.float64]:
    """Words to uniforms strictly inside (0, 1): the top 53 bits, plus a half."""
    return ((w >> U64(11)).astype(np.float64) + 0.5) * TO_UNIT


def uniform(base: ArrayLike, index: ArrayLike) -> NDArray[np.float64]:
    """Uniforms in (0, 1) from words ``index`` of streams ``base`` (broadcast)."""
    return to_unit(words(base, index))


def normal(base: ArrayLike, index1: ArrayLike, index2: ArrayLike) -> NDArray[np.float64]:
    """Standard normals by Box-Muller from two words (two distinct indices) of each stream."""
    u1 = uniform(base, index1)
    u2 = uniform(base, index2)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
