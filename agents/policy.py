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

Hidden state: a policy sees observations only, except :class:`OraclePolicy`, the one policy
allowed to read the simulator's hidden truth. It says so with ``needs_hidden_info = True``;
``agents.evaluation.evaluate`` then runs the env with ``hidden_info=True`` and calls
``policy.set_hidden(info)`` with ``true_interest`` and ``true_appeal`` (shape (N, K)) of the
current visit before every ``predict``. Learned agents never get it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from decay_model.errors import ConfigError
from envs.config import SimConfig
from envs.layout import (  # the observation's layout (feature-major blocks, then the user features)
    COUNT_SCALE,
    EMPTY_BLOCK,
    NUM_ITEM_FEATURES,
    NUM_USER_FEATURES,
    PREDICTED_INTEREST_BLOCK,
    PURCHASES_BLOCK,
    UNANSWERED_BLOCK,
    VALUE_BLOCK,
    VALUE_SCALE,
)

SHOW, REDUCE, RETIRE = 0, 1, 2
ACTION_NAMES = ("show", "reduce", "retire")


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


def unsquash(x: NDArray[np.floating], scale: float, cap: float = 1e6) -> NDArray[np.float64]:
    """The exact inverse of the observation's squashing x = c/(c + s): c = s·x/(1 - x), at most ``cap``.

    x = 1 (a count so large that float32 rounds it to 1) gives ``cap``, not infinity.
    """
    x64 = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        c = scale * x64 / (1.0 - x64)
    return np.minimum(np.where(x64 >= 1.0, cap, c), cap)


def unsquash_count(x: NDArray[np.floating], scale: float = COUNT_SCALE) -> NDArray[np.float64]:
    """A squashed count back to its integer value (float32 rounding undone by rounding)."""
    return np.rint(unsquash(x, scale))


def uses_hidden_info(policy: object) -> bool:
    """Whether ``policy`` asks for the simulator's hidden truth (only :class:`OraclePolicy` may)."""
    return bool(getattr(policy, "needs_hidden_info", False))


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
    """Show every candidate: the platform displays the M it ranks highest every visit."""

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


def threshold_actions(
    signal: NDArray[np.floating], show_above: float, retire_below: float
) -> NDArray[np.int64]:
    """The threshold rule on any per-slot signal: show >= show_above > reduce >= retire_below > retire."""
    actions = np.where(signal >= np.float32(show_above), SHOW, REDUCE)
    return np.where(signal < np.float32(retire_below), RETIRE, actions)


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
        name = type(self).__name__
        for field, value in (("show_above", show_above), ("retire_below", retire_below)):
            if not isinstance(value, int | float | np.floating) or not math.isfinite(value):
                raise ConfigError(f"{name}.{field}={value!r}: must be a finite number")
        if show_above < retire_below:
            raise ConfigError(
                f"{name}: need retire_below <= show_above, got show_above={show_above!r} "
                f"< retire_below={retire_below!r}"
            )
        self.show_above = float(show_above)
        self.retire_below = float(retire_below)

    def signal(self, obs: NDArray[np.float32]) -> NDArray[np.floating]:
        """What the thresholds are applied to: the predicted interest (block 0), shape (N, K)."""
        return block(obs, PREDICTED_INTEREST_BLOCK)

    def decide(self, obs: NDArray[np.float32]) -> NDArray[np.integer]:
        """Show / reduce / retire by predicted interest (see the class docstring)."""
        return threshold_actions(self.signal(obs), self.show_above, self.retire_below)

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


class ThresholdPlusPolicy(ThresholdPolicy):
    """The threshold rule given the same information as the agents: it also rests bought and ignored items.

    Per non-empty slot: retire if the item was already purchased (block 4 > 0, when
    ``retire_purchased``) or has had at least ``max_unanswered`` exposures since its last click
    (block 5, squashed as c/(c + 5), inverted exactly); otherwise the threshold rule on the
    predicted interest. A learned policy that beats :class:`ThresholdPolicy` but not this one
    has shown that it reads these features, not that it learned more.

    Args:
        show_above, retire_below: as for :class:`ThresholdPolicy`.
        max_unanswered: retire after this many exposures without a click (>= 1); None = never.
        retire_purchased: retire items the user has bought.
    """

    def __init__(
        self,
        show_above: float,
        retire_below: float,
        max_unanswered: int | None = None,
        retire_purchased: bool = True,
    ) -> None:
        super().__init__(show_above, retire_below)
        if max_unanswered is not None and (
            isinstance(max_unanswered, bool)
            or not isinstance(max_unanswered, int | np.integer)
            or max_unanswered < 1
        ):
            raise ConfigError(
                f"ThresholdPlusPolicy.max_unanswered={max_unanswered!r}: must be an integer >= 1 or None"
            )
        self.max_unanswered = None if max_unanswered is None else int(max_unanswered)
        self.retire_purchased = bool(retire_purchased)

    def decide(self, obs: NDArray[np.float32]) -> NDArray[np.integer]:
        """The threshold rule, then retire bought items and items ignored ``max_unanswered`` times."""
        actions = super().decide(obs)
        rest = np.zeros(actions.shape, bool)
        if self.retire_purchased:
            rest |= block(obs, PURCHASES_BLOCK) > 0
        if self.max_unanswered is not None:
            rest |= unsquash_count(block(obs, UNANSWERED_BLOCK)) >= self.max_unanswered
        return np.where(rest, RETIRE, actions)

    def to_dict(self) -> dict[str, Any]:
        """The parameters, JSON-ready."""
        return {
            **super().to_dict(),
            "max_unanswered": self.max_unanswered,
            "retire_purchased": self.retire_purchased,
        }

    def __repr__(self) -> str:
        return (
            f"ThresholdPlusPolicy(show_above={self.show_above!r}, retire_below={self.retire_below!r}, "
            f"max_unanswered={self.max_unanswered!r}, retire_purchased={self.retire_purchased!r})"
        )


class GreedyPolicy(RulePolicy):
    """Myopic: show the M items with the highest expected value of this visit, reduce the rest, never retire.

    Expected value of showing an item, from what the system sees: p · (click_value +
    purchase_value_scale · purchase_rate · E[quality] · v), where p is the predicted interest
    (block 0, the system's click estimate, already lowered after a purchase), v the item value
    (block 8 = v/(v + 1), inverted) and E[quality] the mean of the quality Beta distribution;
    position bias, fatigue and crowding are left out (that is what makes it myopic and simple).
    With ``cost_aware`` (the default), an item is shown only if that value exceeds
    ``slot_cost``: showing a slot that is expected to earn less than it costs is not greedy for
    reward. Ties go to the lower slot. Items not shown are reduced (they may still be
    displayed below, see ``SimConfig.reduce_display_prob``), never retired.

    Args:
        config: the simulator config the policy acts in (M and the reward terms).
        cost_aware: show only items whose expected value exceeds the slot cost.
    """

    def __init__(self, config: SimConfig, cost_aware: bool = True) -> None:
        self.config = config
        self.cost_aware = bool(cost_aware)
        mean_quality = config.quality_a / (config.quality_a + config.quality_b)
        self.click_value = float(config.click_value)
        self.buy_value_per_unit = float(config.purchase_value_scale * config.purchase_rate * mean_quality)

    def expected_value(self, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        """Expected immediate reward of showing each slot's item (before the slot cost), shape (N, K)."""
        p = block(obs, PREDICTED_INTEREST_BLOCK).astype(np.float64)
        value = unsquash(block(obs, VALUE_BLOCK), VALUE_SCALE)
        return p * (self.click_value + self.buy_value_per_unit * value)

    def decide(self, obs: NDArray[np.float32]) -> NDArray[np.integer]:
        """Show the top M by expected value (above the slot cost if ``cost_aware``), reduce the rest."""
        k = num_slots(obs.shape[1])
        if k != self.config.num_slots:
            raise ValueError(
                f"GreedyPolicy was built for K={self.config.num_slots} slots, the observation has K={k}: "
                "build it from the config of the env it acts in"
            )
        ev = self.expected_value(obs)
        score = np.where(block(obs, EMPTY_BLOCK) > 0.5, -np.inf, ev)
        order = np.argsort(-score, axis=1, kind="stable")
        top = np.zeros(score.shape, bool)
        np.put_along_axis(top, order[:, : self.config.exposure_slots], True, axis=1)
        if self.cost_aware:
            top &= ev > self.config.slot_cost
        return np.where(top, SHOW, REDUCE)

    def __repr__(self) -> str:
        return f"GreedyPolicy(M={self.config.exposure_slots}, cost_aware={self.cost_aware!r})"


OracleSignal = Literal["interest", "interest_x_appeal"]


class OraclePolicy(ThresholdPolicy):
    """The threshold rule on the hidden truth: what perfect knowledge of interest is worth.

    The ONLY policy allowed to read the simulator's hidden state. Its ``needs_hidden_info`` tells
    ``agents.evaluation.evaluate`` to call :meth:`set_hidden` with the env's ``info`` before
    every ``predict``; without it ``predict`` raises. The signal is, per slot:

    - ``"interest_x_appeal"`` (default): true category interest × the item's true click
      multiplier (click_scale · quality · appeal), i.e. the chance of a click at the top
      position before fatigue, satiation and crowding. This is what the predicted interest
      estimates, and the more informative of the two: interest alone cannot tell a
      good item from a poor one of the same category.
    - ``"interest"``: the true category interest only.

    Args:
        show_above, retire_below: as for :class:`ThresholdPolicy`, applied to the signal.
        signal: which hidden quantity the thresholds read.
    """

    needs_hidden_info = True

    def __init__(
        self, show_above: float, retire_below: float, signal: OracleSignal = "interest_x_appeal"
    ) -> None:
        super().__init__(show_above, retire_below)
        if signal not in ("interest", "interest_x_appeal"):
            raise ConfigError(f"OraclePolicy.signal={signal!r}: must be 'interest' or 'interest_x_appeal'")
        self.signal_name: OracleSignal = signal
        self._hidden: NDArray[np.float32] | None = None

    def set_hidden(self, info: Mapping[str, Any]) -> None:
        """Take the hidden truth of the visit about to be decided (``true_interest``, ``true_appeal``)."""
        try:
            interest = np.atleast_2d(np.asarray(info["true_interest"], dtype=np.float32))
            appeal = np.atleast_2d(np.asarray(info["true_appeal"], dtype=np.float32))
        except KeyError as exc:
            raise ValueError(
                f"OraclePolicy.set_hidden: info lacks {exc}; run the env with hidden_info=True"
            ) from None
        self._hidden = interest * appeal if self.signal_name == "interest_x_appeal" else interest

    def signal(self, obs: NDArray[np.float32]) -> NDArray[np.floating]:
        """The hidden signal set by :meth:`set_hidden` for this batch (used once, then cleared)."""
        hidden, self._hidden = self._hidden, None
        if hidden is None:
            raise RuntimeError(
                "OraclePolicy needs the hidden truth before every predict: call set_hidden(info) "
                "(agents.evaluation.evaluate does it)"
            )
        expected = (obs.shape[0], num_slots(obs.shape[1]))
        if hidden.shape != expected:
            raise ValueError(f"OraclePolicy: hidden info has shape {hidden.shape}, observations {expected}")
        return hidden

    def to_dict(self) -> dict[str, Any]:
        """The parameters, JSON-ready."""
        return {**super().to_dict(), "signal": self.signal_name}

    def __repr__(self) -> str:
        return (
            f"OraclePolicy(show_above={self.show_above!r}, retire_below={self.retire_below!r}, "
            f"signal={self.signal_name!r})"
        )
