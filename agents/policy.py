"""One ``Policy`` interface for every strategy, and the rule-based policies behind it.

Every policy answers SB3's ``predict(observation, state=None, episode_start=None,
deterministic=True) -> (actions, state)``, so a rule and a trained SB3 model are evaluated by
the same code (``agents.evaluation``). A policy takes a batch of flat observations of
``InterestDecayEnv`` (shape (N, K·9 + 3)) and returns actions of shape (N, K), int64, one of
0 show, 1 reduce, 2 retire per candidate slot; a single observation (K·9 + 3,) gives (K,).

The rules here are vectorised (no Python loop over users or slots) and keep no hidden state.
Empty slots (observation block 6 = 1) get action 0: the env ignores actions on empty slots
(see the ``InterestDecayEnv`` docstring), and 0 keeps them out of the way when action shares
are counted over non-empty slots.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from decay_model.errors import ConfigError

SHOW, REDUCE, RETIRE = 0, 1, 2
ACTION_NAMES = ("show", "reduce", "retire")
NUM_ITEM_FEATURES = 9
NUM_USER_FEATURES = 3
PREDICTED_INTEREST_BLOCK = 0
EMPTY_BLOCK = 6
AGE_BLOCK = 7


@runtime_checkable
class Policy(Protocol):
    """What every policy offers: SB3's ``predict`` (so SB3 models fit without a wrapper)."""

    def predict(
        self,
        observation: NDArray[np.floating],
        state: tuple[NDArray[Any], ...] | None = None,
        episode_start: NDArray[np.bool_] | None = None,
        deterministic: bool = True,
    ) -> tuple[NDArray[np.int64], tuple[NDArray[Any], ...] | None]:
        """Actions for a batch (N, obs_dim) -> (N, K), or one observation (obs_dim,) -> (K,)."""
        ...


def num_slots(obs_dim: int) -> int:
    """K from the length of a flat observation K·9 + 3; ValueError if it does not fit."""
    k, rest = divmod(obs_dim - NUM_USER_FEATURES, NUM_ITEM_FEATURES)
    if rest or k < 1:
        raise ValueError(
            f"observation length {obs_dim} is not K*{NUM_ITEM_FEATURES} + {NUM_USER_FEATURES} "
            "for any K >= 1: is this an InterestDecayEnv observation?"
        )
    return k


def as_batch(observation: Any) -> tuple[NDArray[np.float32], bool]:
    """The observation as (N, obs_dim) float32 and whether it was a single (obs_dim,) observation."""
    obs = np.asarray(observation, dtype=np.float32)
    if obs.ndim == 1:
        return obs[None, :], True
    if obs.ndim != 2:
        raise ValueError(f"observation must have shape (obs_dim,) or (N, obs_dim), got {obs.shape}")
    return obs, False


def block(obs: NDArray[np.float32], index: int) -> NDArray[np.float32]:
    """Feature block ``index`` of a batch of observations: shape (N, K)."""
    k = num_slots(obs.shape[1])
    return obs[:, index * k : (index + 1) * k]


class RulePolicy:
    """Shared ``predict`` of the rules: batch handling and empty slots, once.

    A rule only implements :meth:`decide` on a batch (N, obs_dim) -> (N, K); empty slots
    are then set to 0 and a single observation gets a single row back.
    """

    def decide(self, obs: NDArray[np.float32]) -> NDArray[np.integer]:
        """Actions for every slot of a batch, before empty slots are masked."""
        raise NotImplementedError

    def predict(
        self,
        observation: NDArray[np.floating],
        state: tuple[NDArray[Any], ...] | None = None,
        episode_start: NDArray[np.bool_] | None = None,
        deterministic: bool = True,
    ) -> tuple[NDArray[np.int64], tuple[NDArray[Any], ...] | None]:
        """SB3's signature; ``state`` is passed through (rules keep none)."""
        obs, single = as_batch(observation)
        empty = block(obs, EMPTY_BLOCK) > 0.5
        actions = np.where(empty, SHOW, self.decide(obs)).astype(np.int64)
        return (actions[0] if single else actions), state


class _Constant(RulePolicy):
    """A policy that takes the same action on every non-empty slot."""

    action: int = SHOW

    def decide(self, obs: NDArray[np.float32]) -> NDArray[np.integer]:
        """The constant action everywhere."""
        return np.full((obs.shape[0], num_slots(obs.shape[1])), self.action, dtype=np.int64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class AlwaysShow(_Constant):
    """Show every candidate: the top M slots in slot order are displayed every visit."""

    action = SHOW


class ShowNothing(_Constant):
    """Mark every candidate reduce (1): the closest the env has to "show nothing".

    The env has only show, reduce and retire. Reduce is not "hide": each reduced candidate is
    still displayed (below the shown ones, while positions are left) with chance
    ``SimConfig.reduce_display_prob`` (0.3 by default), so with K = 20 and M = 6 about six
    items are still displayed most visits. The only way to display nothing at all is to
    retire everything (:class:`RetireEverything`), which empties the pool for good.
    """

    action = REDUCE


class RetireEverything(_Constant):
    """Retire every candidate every visit: nothing is displayed (the R fresh arrivals go the next visit)."""

    action = RETIRE


class ThresholdPolicy(RulePolicy):
    """The seed's rule on the system's predicted interest (observation block 0).

    Per non-empty slot with predicted interest p: show if p >= ``show_above``, reduce if
    ``retire_below`` <= p < ``show_above``, retire if p < ``retire_below``. With equal
    thresholds the rule never reduces; with ``retire_below`` = 0 it never retires.

    Args:
        show_above: show while predicted interest is at least this.
        retire_below: retire once predicted interest is below this; must be <= ``show_above``.

    Raises:
        ConfigError: a threshold is not finite, or ``show_above`` < ``retire_below``.
    """

    def __init__(self, show_above: float, retire_below: float) -> None:
        for name, value in (("show_above", show_above), ("retire_below", retire_below)):
            if not isinstance(value, int | float | np.floating) or not math.isfinite(value):
                raise ConfigError(f"ThresholdPolicy.{name}={value!r}: must be a finite number")
        if show_above < retire_below:
            raise ConfigError(
                f"ThresholdPolicy: need retire_below <= show_above, got show_above={show_above!r} "
                f"< retire_below={retire_below!r}"
            )
        self.show_above = float(show_above)
        self.retire_below = float(retire_below)

    def decide(self, obs: NDArray[np.float32]) -> NDArray[np.integer]:
        """Show / reduce / retire by predicted interest (see the class docstring)."""
        p = block(obs, PREDICTED_INTEREST_BLOCK)
        actions = np.where(p >= np.float32(self.show_above), SHOW, REDUCE)
        return np.where(p < np.float32(self.retire_below), RETIRE, actions)

    def to_dict(self) -> dict[str, float]:
        """The thresholds, JSON-ready."""
        return {"show_above": self.show_above, "retire_below": self.retire_below}

    def __repr__(self) -> str:
        return f"ThresholdPolicy(show_above={self.show_above!r}, retire_below={self.retire_below!r})"


class RandomPolicy(RulePolicy):
    """Uniform random action per non-empty slot, from its own seeded NumPy Generator.

    The draws depend on the order and batch sizes of the calls; evaluate it with the same
    batches to reproduce a run.

    Args:
        seed: seed of the policy's own ``numpy.random.Generator``.
        probs: chances of show, reduce, retire (default uniform).
    """

    def __init__(self, seed: int = 0, probs: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)) -> None:
        p = np.asarray(probs, dtype=np.float64)
        if p.shape != (3,) or not np.all(np.isfinite(p)) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise ConfigError(f"RandomPolicy.probs={probs!r}: need three non-negative chances summing to 1")
        self.seed = seed
        self.probs = p
        self.rng = np.random.default_rng(seed)

    def decide(self, obs: NDArray[np.float32]) -> NDArray[np.integer]:
        """Random actions (``deterministic`` is ignored: the policy is random by definition)."""
        return self.rng.choice(3, size=(obs.shape[0], num_slots(obs.shape[1])), p=self.probs)

    def __repr__(self) -> str:
        return f"RandomPolicy(seed={self.seed!r})"
