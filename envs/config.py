"""The simulator's one configuration object, ``SimConfig``, and its named presets.

Every number the dynamics use lives here, with its unit. A config is frozen and
validated on construction: a bad field raises :class:`decay_model.errors.ConfigError`
naming the field and the value. Derived values are properties, never stored.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from decay_model.errors import ArtifactError, ConfigError
from envs import layout
from envs.fitted_constants import FITTED_FIELDS, taobao

MAX_EXPLORE = 4
"""New categories a user can engage with in one visit (``explore_per_visit`` is their mean)."""
_TAOBAO = taobao().sim_fields()
TAOBAO_REPEAT_PER_VISIT: float = taobao().values["repeat_per_visit"]
"""Categories a visit re-engages that the user had engaged before, the Taobao training period's mean
user (``decay_model.activity``): the default ``SimConfig.engagement_budget``."""
TAOBAO_REPEAT_USER_SD: float = taobao().values["repeat_user_sd"]
"""The spread of that number between Taobao users: the default ``SimConfig.engagement_budget_user_sd``."""
TAOBAO_VIEW_TO_BUY: float = taobao().values["view_to_buy"]
"""Of the items a Taobao user viewed on the training days, the share they bought after the view
(``decay_model.activity``, ``view_to_buy``): what a click on the page's item turns into."""
MAX_APPEAL_SD = math.pi / math.sqrt(3.0)
"""Log-appeal is logistic with sd ``appeal_sd``; at this sd or above, appeal has no finite mean."""


@dataclass(frozen=True)
class SimConfig:
    """Sizes, item distributions, rewards and user dynamics of the simulator.

    Times are in hours; probabilities in [0, 1]; rates and half-lives positive. The fields fitted
    on a log (``envs.fitted_constants.FITTED_FIELDS``: return times, browsing, purchase rates,
    engagement) default to the Taobao log's values, read once from ``envs/fitted/taobao.json``;
    :meth:`fitted` gives them as one group. Validation reads no file more than once per
    artifact folder, so ``replace`` stays cheap.
    """

    # -- sizes ------------------------------------------------------------------------
    num_slots: int = 20
    """K: candidate slots the agent decides on every visit."""
    exposure_slots: int = 6
    """M: items actually displayed per visit (positions 1..M); must be < K."""
    fresh_per_visit: int = 3
    """R: at most this many fresh candidates fill empty (retired) slots per visit."""
    max_user_categories: int = 16
    """W: categories a simulated user tracks at once (new ones replace the least interesting)."""
    items_per_category: int = 200
    """Catalogue size per category."""
    catalogue_seed: int = 0
    """Seed of the catalogue draw (the catalogue is part of the environment, not of an episode)."""

    # -- items ------------------------------------------------------------------------
    quality_a: float = 2.0
    """Item quality ~ Beta(quality_a, quality_b): a multiplier of the click chance."""
    quality_b: float = 3.0
    """Second Beta parameter of item quality."""
    value_log_mean: float = 0.0
    """Item value (purchase margin) ~ LogNormal(value_log_mean, value_log_sd)."""
    value_log_sd: float = 0.5
    """Log-scale sd of item value."""
    appeal_sd: float = 0.5
    """Sd of the log of a user's hidden appeal for one item (logistic; drawn when the candidate arrives).
    Below ``MAX_APPEAL_SD`` (π/√3), where the appeal's mean, which the system's prior reads, is finite."""

    # -- response ---------------------------------------------------------------------
    click_scale: float = 1.0
    """P(click) = 1 - e^{-x}, x = click_scale · interest · appeal · quality · position bias · fatigue
    · (1 - satiation) · crowding (≈ x while x is small)."""
    purchase_rate: float = _TAOBAO["purchase_rate"]
    """P(purchase | click) = purchase_rate · quality · (1 - satiation). The default makes the mean over
    clicked items the Taobao log's view-to-buy conversion, ``TAOBAO_VIEW_TO_BUY``: clicks favour good
    items, so it is ``TAOBAO_VIEW_TO_BUY / CLICKED_QUALITY`` (``envs.fitted_constants``)."""
    reduce_display_prob: float = 0.3
    """Chance that a candidate marked reduce (1) is eligible for the page (ranked below all shown ones,
    displayed if a position is left)."""
    crowding: float = 0.7
    """Click rate multiplier per additional displayed item of the same (true) category on the page."""

    # -- reward -----------------------------------------------------------------------
    click_value: float = 0.1
    """Reward per click."""
    purchase_value_scale: float = 10.0
    """Reward per purchase = purchase_value_scale · item value (mean value 1.13: a purchase is worth about
    110 clicks). At the log's view-to-buy conversion (1.5 %) a click's expected purchase value is then
    about 1.7 times its click value, so the lifecycle trades purchases against fatigue and churn."""
    slot_cost: float = 0.01
    """Cost per displayed slot."""

    # -- interest, fatigue, churn ------------------------------------------------------
    click_lift: float = 0.1
    """A click moves category interest a fraction toward 1: I ← I + click_lift·(1 - I)."""
    purchase_satiation: float = 0.9
    """A purchase sets the item's satiation to this (click chance × (1 - satiation))."""
    repurchase_cycle_h: float = 168.0
    """Satiation recovers as e^{-Δ/repurchase_cycle_h}."""
    fatigue_per_exposure: float = 0.3
    """Item fatigue added per unanswered exposure (click chance × e^{-fatigue})."""
    fatigue_halflife_h: float = 24.0
    """Half-life of item fatigue, hours."""
    annoyance_per_exposure: float = 0.02
    """User annoyance added per unanswered exposure."""
    satisfaction_per_click: float = 0.2
    """User satisfaction added per click."""
    satisfaction_per_purchase: float = 1.0
    """User satisfaction added per purchase."""
    mood_halflife_h: float = 72.0
    """Half-life of annoyance and satisfaction, hours."""
    churn_logit: float = -7.0
    """Logit of the chance to leave for good after a visit, for a neutral user."""
    churn_annoyance: float = 1.0
    """Added to the churn logit per unit of annoyance."""
    churn_satisfaction: float = 0.5
    """Subtracted from the churn logit per unit of satisfaction."""
    return_satisfaction: float = 0.2
    """A satisfied user comes back sooner: the gap beyond ``session_gap_h`` is multiplied by
    f + (1 - f) × e^{-return_satisfaction · satisfaction}, f = return_gap_min_fraction."""
    return_gap_min_fraction: float = 0.25
    """Floor f of that factor: however satisfied, a user's gap stays ≥ f × their usual one
    (without it, satisfaction from many clicks can drive the gap, and time, to zero)."""

    # -- activity: return times and browsing (decay_model.activity, fitted on the Taobao log) --------
    session_gap_h: float = _TAOBAO["session_gap_h"]
    """Inactivity that separates two visits, hours: every gap is at least this long."""
    gap_log_mean: float = _TAOBAO["gap_log_mean"]
    """Mean over users of μ_u: log(gap - session_gap_h) = μ_u + a within-user residual, gap in hours."""
    gap_log_user_sd: float = _TAOBAO["gap_log_user_sd"]
    """Sd of μ_u over users."""
    gap_residual_quantiles: tuple[float, ...] = _TAOBAO["gap_residual_quantiles"]
    """Quantiles, at probabilities 0, 0.025, ..., 1 (ends at 0.005, 0.995), of the within-user
    residual of log(gap - session_gap_h): days and nights make it skewed and far from normal,
    so gaps are drawn from these (linear interpolation of the quantile function)."""
    events_log_mean: float = _TAOBAO["events_log_mean"]
    """Mean over users of log(e_u - 1), e_u the user's mean events per engaged category."""
    events_log_user_sd: float = _TAOBAO["events_log_user_sd"]
    """Sd over users of log(e_u - 1)."""
    explore_per_visit: float = _TAOBAO["explore_per_visit"]
    """Mean number of new categories a user engages with per visit (at most MAX_EXPLORE)."""
    organic_purchase_rate: float = _TAOBAO["organic_purchase_rate"]
    """Chance that an event of the user's own browsing is a purchase."""
    engagement_scale: float = _TAOBAO["engagement_scale"]
    """κ: a category with 24 h engagement chance I is engaged in a visit after Δ hours with chance
    1 - (1 - I)^{κ(Δ/24)^β}. κ, β and engagement_lift were chosen from a grid against the
    fidelity report on the Taobao log (decaygym-fidelity; decaygym-calibrate cross-validates
    such a choice, and shows that in budget mode, ``engagement_budget``, they barely matter);
    the activity fields above are fitted by decay_model.activity on its training period."""
    engagement_gap_power: float = _TAOBAO["engagement_gap_power"]
    """β: how much the gap since the last visit matters (1: a hazard over the gap, 0: per visit)."""
    engagement_lift: float = _TAOBAO["engagement_lift"]
    """Browsing a category moves its interest a fraction toward 1: I ← I + engagement_lift·(1 - I)
    (calibrated with engagement_scale)."""
    engagement_budget: float = _TAOBAO["engagement_budget"]
    """0 (off): each tracked category is engaged on its own chance, as above. B > 0 (budget mode, the
    default): a visit's chances are scaled to sum to the user's budget r_u (each capped at 1), so interest
    decides which tracked categories a visit re-engages, not how many. Real users re-engage a
    steady number per visit whatever their interests, and a cohort whose tracked interests are all
    recent otherwise over-engages. Bootstrapped real users bring their own r_u
    (``decay_model.activity``: categories engaged before, per visit); B is everyone else's.
    ``TAOBAO_REPEAT_PER_VISIT`` is the Taobao training period's mean user."""
    engagement_budget_user_sd: float = _TAOBAO["engagement_budget_user_sd"]
    """Budget mode: the sd of r_u between new users (log-normal around ``engagement_budget``; 0: all
    take B). ``TAOBAO_REPEAT_USER_SD`` is the Taobao training period's."""
    orphan_interest: float = 0.01
    """Interest in an item whose category the user no longer tracks (replaced by a new one)."""
    initial_interest_sd: float = 0.5
    """Logit-scale sd of a new user's initial interest around the category's mean interest."""

    # -- the system's estimate ---------------------------------------------------------
    estimate_prior_clicks: float = 1.0
    """α: prior strength, in clicks, of the system's estimate of an item's relative click-through
    (α + clicks) / (α + expected clicks); small α learns fast from few exposures."""

    # -- episode ----------------------------------------------------------------------
    horizon: int = 100
    """Visits per episode: the single env and the vector env truncate here."""
    reencode_every: int = 0
    """Every this many visits, re-encode each user's recent simulated events with the neural
    decay model of ``artifact`` (the shipped one when None) into fresh interest, λ and floor; 0 = never."""
    reencode_history: int = 64
    """Recent events kept per user for re-encoding (a ring; the model reads at most its max_len)."""
    artifact: str | None = None
    """Folder of a fitted decay artifact with a population summary to draw users from;
    None = the built-in default population."""

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"SimConfig.{name}={getattr(self, name)!r}: {why}")

        for name in (
            "num_slots",
            "exposure_slots",
            "fresh_per_visit",
            "max_user_categories",
            "items_per_category",
            "horizon",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, "must be an integer >= 1")
        if self.exposure_slots >= self.num_slots:
            raise bad("exposure_slots", f"must be < num_slots={self.num_slots}")
        if self.fresh_per_visit > self.num_slots:
            raise bad("fresh_per_visit", f"must be <= num_slots={self.num_slots}")
        q = self.gap_residual_quantiles
        finite = all(math.isfinite(float(v)) for v in q)
        if len(q) < 2 or not finite or any(b < a for a, b in itertools.pairwise(q)):
            raise bad("gap_residual_quantiles", "must be at least 2 finite, non-decreasing numbers")
        budget = self.engagement_budget
        if not isinstance(budget, int | float) or not 0.0 <= budget <= self.max_user_categories:
            raise bad(
                "engagement_budget",
                f"must be a number in [0, max_user_categories={self.max_user_categories}]",
            )
        if not self.appeal_sd < MAX_APPEAL_SD:
            raise bad(
                "appeal_sd",
                f"must be < π/√3 = {MAX_APPEAL_SD:.4f}: at or above it the logistic log-appeal's "
                "exponential has no finite mean, which the system's prior of a cold item needs",
            )
        if self.explore_per_visit > MAX_EXPLORE:
            raise bad("explore_per_visit", f"must be <= MAX_EXPLORE={MAX_EXPLORE}")
        if not isinstance(self.reencode_every, int) or self.reencode_every < 0:
            raise bad("reencode_every", "must be an integer >= 0")
        if not isinstance(self.reencode_history, int) or self.reencode_history < 1:
            raise bad("reencode_history", "must be an integer >= 1")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise bad(f.name, "must be finite")
        for name in (
            "quality_a",
            "quality_b",
            "repurchase_cycle_h",
            "fatigue_halflife_h",
            "mood_halflife_h",
            "session_gap_h",
            "estimate_prior_clicks",
        ):
            if getattr(self, name) <= 0:
                raise bad(name, "must be > 0")
        for name in (
            "value_log_sd",
            "appeal_sd",
            "click_scale",
            "click_value",
            "purchase_value_scale",
            "slot_cost",
            "fatigue_per_exposure",
            "annoyance_per_exposure",
            "satisfaction_per_click",
            "satisfaction_per_purchase",
            "churn_annoyance",
            "churn_satisfaction",
            "return_satisfaction",
            "initial_interest_sd",
            "gap_log_user_sd",
            "events_log_user_sd",
            "explore_per_visit",
            "engagement_scale",
            "engagement_gap_power",
            "engagement_budget_user_sd",
        ):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0 (rates, costs and scales cannot be negative)")
        for name in (
            "purchase_rate",
            "reduce_display_prob",
            "crowding",
            "click_lift",
            "purchase_satiation",
            "return_gap_min_fraction",
            "organic_purchase_rate",
            "engagement_lift",
            "orphan_interest",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "must be in [0, 1]")
        if self.artifact is not None:
            self._check_artifact()
        if self.reencode_every:
            self._check_neural()

    def _check_neural(self) -> None:
        """Re-encoding needs a neural artifact: ``artifact`` or the shipped default."""
        problem = _neural_problem(None if self.artifact is None else str(self.artifact))
        if problem is not None:
            raise ConfigError(f"SimConfig.reencode_every={self.reencode_every}: {problem}")

    def _check_artifact(self) -> None:
        problem = _artifact_problem(str(self.artifact))
        if problem is not None:
            raise ConfigError(f"SimConfig.artifact={self.artifact!r}: {problem}")

    def fitted(self) -> dict[str, Any]:
        """The fields fitted on a log (``envs.fitted_constants.FITTED_FIELDS``), as one group."""
        return {name: getattr(self, name) for name in FITTED_FIELDS}

    @property
    def obs_size(self) -> int:
        """Length of the flat observation, K·F + U (``envs.layout``)."""
        return layout.obs_size(self.num_slots)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)

    def replace(self, **changes: Any) -> SimConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


@functools.lru_cache(maxsize=64)
def _artifact_problem(folder: str) -> str | None:
    """What makes ``folder`` unusable as ``SimConfig.artifact`` (None: usable); read once per folder."""
    from decay_model.cards import load_population

    if not os.path.isdir(folder):
        return "no such artifact folder"
    try:
        summary = load_population(folder)
    except ArtifactError as exc:
        return f"not usable: {exc}"
    if not isinstance(summary, dict) or not summary.get("categories"):
        return "its population summary has no categories"
    return None


@functools.lru_cache(maxsize=64)
def _neural_problem(artifact: str | None) -> str | None:
    """Why re-encoding cannot use ``artifact`` (None: the shipped one); read once per folder."""
    from decay_model.cards import PRETRAINED, read_card

    folder = artifact if artifact is not None else str(PRETRAINED)
    try:
        model = read_card(folder).get("model")
    except ArtifactError as exc:
        return f"no usable artifact: {exc}"
    if model != "neural":
        return f"re-encoding needs a neural decay artifact; {folder} holds a {model!r} model"
    return None


#: Named presets: ``small`` for tests (runs in milliseconds), ``default``, ``large``, and
#: ``independent_browsing``, the default with the browsing model before budget mode (each tracked
#: category engaged on its own chance), kept for comparison.
PRESETS: dict[str, SimConfig] = {
    "small": SimConfig(
        num_slots=8,
        exposure_slots=3,
        fresh_per_visit=2,
        max_user_categories=4,
        items_per_category=30,
        horizon=20,
    ),
    "default": SimConfig(),
    "large": SimConfig(
        num_slots=50,
        exposure_slots=12,
        fresh_per_visit=6,
        max_user_categories=24,
        items_per_category=2000,
        horizon=200,
    ),
    "independent_browsing": SimConfig(engagement_budget=0.0, engagement_budget_user_sd=0.0),
}


def get_preset(name: str) -> SimConfig:
    """The preset of that name; ConfigError lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
