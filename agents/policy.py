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
    AGE_BLOCK,
    CLICKS_BLOCK,
    COUNT_SCALE,
    EMPTY_BLOCK,
    EXPOSURES_BLOCK,
    HOURS_SCALE,
    HOURS_SINCE_ENGAGEMENT_BLOCK,
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


class BestRulePolicy(ThresholdPlusPolicy):
    """The strongest hand-written rule with the agents' information: threshold+ plus three mechanisms.

    It reads the observation only (no hidden state) and two public constants of the simulator,
    the estimate's prior strength α (``SimConfig.estimate_prior_clicks``) and the repurchase
    cycle (``SimConfig.repurchase_cycle_h``); :meth:`from_config` takes them from a config. Per
    non-empty slot, in this order:

    1. **Upper-confidence signal** (``z``). The predicted interest p is the category estimate ×
       a Gamma-Poisson click-through posterior mean (α + clicks) / (α + expected clicks), whose
       relative spread is 1/√(α + clicks). The thresholds read s = p·(1 + z/√(α + clicks)), so
       an item with little evidence is not retired for a low estimate that may be noise, while
       one with many clicks is judged on its estimate (z = 0: the plain estimate).
    2. **Deliberate tries** (``tries``). A candidate with fewer than ``tries`` exposures is
       shown whatever its signal: fresh candidates arrive cold (their estimate is the category's
       prior), so a rule that retires on the prior throws away items it never saw answered.
       Being shown is not being displayed: the platform still ranks the page by p.
    3. **After a purchase** (``rest_cycles``). None: retire the bought item for good (threshold+
       with ``retire_purchased``). A number c >= 0: keep it, and reduce it (neither show nor
       retire it) while fewer than c·``repurchase_cycle_h`` hours have passed since its
       category's last engagement; after that the rule judges it like any other item (its
       estimate already carries the remaining satiation, so c = 0 leaves it to the estimate
       alone, which right after a purchase is about a tenth of what it was). A purchase
       engages its category, so those hours are a lower bound of the hours since the purchase
       (the observation has no purchase time): the rest lasts at least c cycles, longer if the
       user engaged the category again since.
    4. **Unanswered items** are retired after ``max_unanswered`` exposures without a click, as
       in threshold+ (this overrides a try).
    5. **Category de-duplication** (``dup_show_above``). Same-category items displayed together
       crowd each other (``SimConfig.crowding`` per extra item), so of the shown items of one
       category only the one the platform ranks first (highest p, then the older) stays shown;
       the others are reduced unless their p is at least ``dup_show_above`` (then both clear the
       bar, the first having the higher p). None: no de-duplication.

    The observation has no category id. Two items are taken to be of one category when their
    "hours since the category's last engagement" (block 1) are exactly equal, except that two
    items never exposed (whose p is exactly their category's estimate, capped at 1) with
    different p are of different categories. Limits: categories engaged at the same moment (the
    same visit's browsing or clicks) share block 1 exactly and are merged (only never-exposed
    pairs are told apart, by their estimates); all orphan items (of categories the user stopped
    tracking) share one column and are merged, though their true categories differ (their
    estimate is tiny, so the rule rarely shows them); a category the user dropped and picked up
    again under another column would be split. Merging errs towards showing fewer duplicates.

    Args:
        show_above, retire_below, max_unanswered: as for :class:`ThresholdPlusPolicy`, with
            the thresholds applied to the upper-confidence signal.
        dup_show_above: a second item of a category is shown only at p >= this; None = off.
        tries: show a candidate with fewer exposures than this whatever its signal (0 = off).
        z: weight of the upper-confidence bonus (>= 0; 0 = the plain estimate).
        rest_cycles: after a purchase, None = retire; c >= 0 = rest c repurchase cycles.
        prior_clicks: α, the estimate's prior strength in clicks (> 0).
        repurchase_cycle_h: the simulator's repurchase cycle, hours (> 0).

    Raises:
        ConfigError: a parameter out of range, named.
    """

    def __init__(
        self,
        show_above: float,
        retire_below: float,
        max_unanswered: int | None = None,
        dup_show_above: float | None = None,
        tries: int = 0,
        z: float = 0.0,
        rest_cycles: float | None = None,
        prior_clicks: float = 1.0,
        repurchase_cycle_h: float = 168.0,
    ) -> None:
        super().__init__(show_above, retire_below, max_unanswered, retire_purchased=rest_cycles is None)
        name = type(self).__name__

        def number(field: str, value: Any, low: float, strict: bool) -> float:
            ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value < low or (strict and value == low):
                bound = f"> {low:g}" if strict else f">= {low:g}"
                raise ConfigError(f"{name}.{field}={value!r}: must be a finite number {bound}")
            return float(value)

        if dup_show_above is not None:
            number("dup_show_above", dup_show_above, 0.0, False)
        if isinstance(tries, bool) or not isinstance(tries, int | np.integer) or tries < 0:
            raise ConfigError(f"{name}.tries={tries!r}: must be an integer >= 0")
        self.dup_show_above = None if dup_show_above is None else float(dup_show_above)
        self.tries = int(tries)
        self.z = number("z", z, 0.0, False)
        self.rest_cycles = None if rest_cycles is None else number("rest_cycles", rest_cycles, 0.0, False)
        self.prior_clicks = number("prior_clicks", prior_clicks, 0.0, True)
        self.repurchase_cycle_h = number("repurchase_cycle_h", repurchase_cycle_h, 0.0, True)

    @classmethod
    def from_config(cls, config: SimConfig, **params: Any) -> BestRulePolicy:
        """The rule with ``params`` and the public constants (α, repurchase cycle) of ``config``."""
        return cls(
            **params,
            prior_clicks=config.estimate_prior_clicks,
            repurchase_cycle_h=config.repurchase_cycle_h,
        )

    def signal(self, obs: NDArray[np.float32]) -> NDArray[np.floating]:
        """The upper-confidence signal p·(1 + z/√(α + clicks)), shape (N, K)."""
        p = block(obs, PREDICTED_INTEREST_BLOCK).astype(np.float64)
        if self.z == 0.0:
            return p
        clicks = unsquash_count(block(obs, CLICKS_BLOCK))
        return p * (1.0 + self.z / np.sqrt(self.prior_clicks + clicks))

    def same_category(self, obs: NDArray[np.float32]) -> NDArray[np.bool_]:
        """Whether slots j and k hold items of one category, as far as the observation tells: (N, K, K).

        Equal block 1 (hours since the category's last engagement), both non-empty, and not two
        never-exposed items with different estimates (see the class docstring for the limits).
        """
        hours = block(obs, HOURS_SINCE_ENGAGEMENT_BLOCK)
        present = block(obs, EMPTY_BLOCK) <= 0.5
        p = block(obs, PREDICTED_INTEREST_BLOCK)
        cold = block(obs, EXPOSURES_BLOCK) == 0
        same = (hours[:, :, None] == hours[:, None, :]) & present[:, :, None] & present[:, None, :]
        told_apart = cold[:, :, None] & cold[:, None, :] & (p[:, :, None] != p[:, None, :])
        return same & ~told_apart

    def ranked_before(self, obs: NDArray[np.float32]) -> NDArray[np.bool_]:
        """Whether the platform ranks slot j before slot k, (N, K, K) [i, j, k]: higher p, then older.

        The platform breaks ties by arrival order; the observation's item age (then the slot)
        stands in for it.
        """
        p = block(obs, PREDICTED_INTEREST_BLOCK)
        age = block(obs, AGE_BLOCK)
        k = p.shape[1]
        lower_slot = np.arange(k)[:, None] < np.arange(k)[None, :]
        pj, pk = p[:, :, None], p[:, None, :]
        aj, ak = age[:, :, None], age[:, None, :]
        return (pj > pk) | ((pj == pk) & ((aj > ak) | ((aj == ak) & lower_slot)))

    def decide(self, obs: NDArray[np.float32]) -> NDArray[np.integer]:
        """Signal thresholds, tries, purchases, unanswered items, then de-duplication (class docstring)."""
        actions = threshold_actions(self.signal(obs), self.show_above, self.retire_below)
        if self.tries:
            actions = np.where(unsquash_count(block(obs, EXPOSURES_BLOCK)) < self.tries, SHOW, actions)
        bought = block(obs, PURCHASES_BLOCK) > 0
        if self.rest_cycles is None:
            actions = np.where(bought, RETIRE, actions)
        elif self.rest_cycles > 0:
            hours = unsquash(block(obs, HOURS_SINCE_ENGAGEMENT_BLOCK), HOURS_SCALE)
            resting = bought & (hours < self.rest_cycles * self.repurchase_cycle_h)
            actions = np.where(resting, REDUCE, actions)  # not retired for its satiated estimate
        if self.max_unanswered is not None:
            ignored = unsquash_count(block(obs, UNANSWERED_BLOCK)) >= self.max_unanswered
            actions = np.where(ignored, RETIRE, actions)
        if self.dup_show_above is not None:
            shown = actions == SHOW
            ahead = shown[:, :, None] & self.same_category(obs) & self.ranked_before(obs)
            crowded = ahead.any(axis=1)  # a shown item of the same category ranks before it
            below_bar = block(obs, PREDICTED_INTEREST_BLOCK) < np.float32(self.dup_show_above)
            actions = np.where(shown & crowded & below_bar, REDUCE, actions)
        return actions

    def to_dict(self) -> dict[str, Any]:
        """The tuned parameters, JSON-ready (the simulator's constants are not among them)."""
        return {
            "show_above": self.show_above,
            "retire_below": self.retire_below,
            "max_unanswered": self.max_unanswered,
            "dup_show_above": self.dup_show_above,
            "tries": self.tries,
            "z": self.z,
            "rest_cycles": self.rest_cycles,
        }

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return (
            f"BestRulePolicy({params}, prior_clicks={self.prior_clicks!r}, "
            f"repurchase_cycle_h={self.repurchase_cycle_h!r})"
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
