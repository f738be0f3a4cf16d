"""One seed scheme for every script: training, validation and evaluation users never overlap.

A user seed u is one simulated user (``InterestDecayEnv`` reset with u; user i of a vector env
reset with s is seed s + i); its later episodes are further draws of the same stream. From a
run's root seed s (``--seed``, 0 <= s < :data:`MAX_ROOT_SEED`) the scheme derives three disjoint
ranges of user seeds, each :data:`STRIDE` wide:

| users      | seeds                        | used for                                                  |
|------------|------------------------------|-----------------------------------------------------------|
| training   | s·10^6 + [0, 10^6)           | the vector env SB3 trains on (every episode of its users) |
| validation | 10^9 + s·10^6 + [0, 10^6)    | ``EvalCallback`` while training: curves, best model       |
| evaluation | 2·10^9 + s·10^6 + [0, 10^6)  | held-out users of evaluate / benchmark, never trained on  |

Comparisons across policies use the evaluation users of one root seed, so every policy meets
the same users (paired comparisons); no training run, whatever its root seed, trains on them or
selects its model on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from decay_model.errors import ConfigError

STRIDE = 1_000_000
MAX_ROOT_SEED = 1000
VALID_BASE = 1_000_000_000
EVAL_BASE = 2_000_000_000


@dataclass(frozen=True)
class UserSeeds:
    """A contiguous range of user seeds [start, start + count)."""

    start: int
    """First user seed."""
    count: int
    """Number of users."""

    @property
    def stop(self) -> int:
        """One past the last user seed."""
        return self.start + self.count

    def seeds(self) -> list[int]:
        """Every user seed of the range."""
        return list(range(self.start, self.stop))

    def to_dict(self) -> dict[str, int]:
        """JSON-ready: ``{"start": ..., "stop": ...}`` (stop excluded)."""
        return {"start": self.start, "stop": self.stop}


def _check(seed: int, n: int, what: str) -> None:
    if not isinstance(seed, int) or not 0 <= seed < MAX_ROOT_SEED:
        raise ConfigError(f"--seed must be an integer in [0, {MAX_ROOT_SEED}), got {seed!r}")
    if not isinstance(n, int) or not 1 <= n <= STRIDE:
        raise ConfigError(f"{what}: need 1 to {STRIDE} users, got {n!r}")


def train_users(seed: int, n: int) -> UserSeeds:
    """The ``n`` training users of run ``seed`` (user i of the training vector env)."""
    _check(seed, n, "training users")
    return UserSeeds(seed * STRIDE, n)


def valid_users(seed: int, n: int) -> UserSeeds:
    """The ``n`` validation users of run ``seed`` (``EvalCallback``, model selection)."""
    _check(seed, n, "validation users")
    return UserSeeds(VALID_BASE + seed * STRIDE, n)


def search_users(seed: int, n: int) -> UserSeeds:
    """The ``n`` users that score a hyperparameter-search trial of run ``seed``.

    The second half of the run's validation block: validation users (never trained on, never
    held out), but not those ``EvalCallback`` picked the trial's best model on, so a trial's
    score is not the maximum of its own noisy evaluations.
    """
    _check(seed, n, "search users")
    if n > STRIDE // 2:
        raise ConfigError(f"search users: need 1 to {STRIDE // 2} users, got {n}")
    return UserSeeds(VALID_BASE + seed * STRIDE + STRIDE // 2, n)


def eval_users(seed: int, n: int) -> UserSeeds:
    """The ``n`` held-out evaluation users of root seed ``seed`` (evaluate, benchmark)."""
    _check(seed, n, "evaluation users")
    return UserSeeds(EVAL_BASE + seed * STRIDE, n)


def scheme() -> dict[str, str]:
    """The scheme in words, recorded in every run folder next to the ranges used."""
    return {
        "train": f"seed*{STRIDE} + [0, n_envs)",
        "valid": f"{VALID_BASE} + seed*{STRIDE} + [0, n)",
        "search": f"{VALID_BASE} + seed*{STRIDE} + {STRIDE // 2} + [0, n)",
        "eval": f"{EVAL_BASE} + seed*{STRIDE} + [0, n)",
    }
