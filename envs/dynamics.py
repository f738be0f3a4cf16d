"""The simulator's dynamics, written once: a batched step over N users × K candidate slots.

State is explicit (:class:`SimState`, a struct of arrays); randomness is counter-based
(``envs.rng``: every draw hashes the user's key, episode, visit, purpose and slot), so
user i's trajectory does not depend on the other users in the batch. The single env
is this step with N = 1; the vector env runs it for many users in one call.

A user tracks W = ``max_user_categories`` categories (their current interests) plus one
*orphan* column: items whose category the user has moved away from point there, with the
low constant interest ``orphan_interest``.

One visit (``step``), for every user at once:

1. **Browsing** (the user's own activity, not the agent's page): each tracked category c
   is engaged with chance 1 - (1 - I_c)^{κ·(Δ/24)^β}, Δ the hours since the previous visit
   (I_c is the decay model's P(engagement within 24 h); β = 1 would make it a hazard over
   the gap, β = 0 a fixed chance per visit; κ, β = ``engagement_scale``,
   ``engagement_gap_power``), with 1 + Geometric events of mean e_u (the user's). A visit
   with nothing engaged engages the category that came nearest (a visit is browsing). About
   ``explore_per_visit`` new categories are engaged too: each replaces the user's
   least-interesting tracked category that was not engaged now (its items become orphans).
   Engagement lifts interest, I ← I + engagement_lift·(1 - I), and each event is a purchase
   with chance ``organic_purchase_rate``. The system sees all of it (it is its own log).
2. **Retire** (action 2): the slot empties for good (its item leaves the user's pool).
3. **Exposure**: at most M items are displayed. Candidates marked show (0) take the top
   positions in slot order; candidates marked reduce (1) are displayed below them, each
   with chance ``reduce_display_prob``, if positions are left. Empty slots show nothing.
4. **Response**: P(click) = interest(category) · appeal · quality · 1/log2(1 + position)
   · e^{-fatigue} · (1 - satiation) · crowding^{(same-category items on the page) - 1};
   P(purchase | click) = purchase_rate · quality · (1 - satiation).
5. **Reward** = click_value · clicks + purchase_value_scale · Σ value of purchases
   - slot_cost · displayed slots (each term also returned).
6. **Updates**: a click lifts its category's interest (I ← I + click_lift·(1 - I)); a purchase
   sets the item's satiation (which recovers over the repurchase cycle); an unanswered
   exposure adds item fatigue and user annoyance; clicks and purchases add satisfaction.
7. **Churn**: the user leaves for good with chance σ(churn_logit + churn_annoyance·annoyance
   - churn_satisfaction·satisfaction).
8. **Time passes** until the next visit: Δ = session_gap_h + e^{μ_u + r}·m, r drawn from the
   within-user residual distribution (``gap_residual_quantiles``),
   m = f + (1 - f)·e^{-return_satisfaction·satisfaction} (a satisfied user comes back
   sooner, f = return_gap_min_fraction). True interest and the system's estimate decay,
   I ← b + (I - b)e^{-λΔ}; fatigue, satiation, annoyance and satisfaction fade.
9. **Retrieval**: at most R fresh candidates fill empty slots (lowest slots first). A fresh
   candidate is cold: its category is drawn in proportion to the system's estimate of the
   user's category interests, its item uniformly in that category; its hidden appeal is
   drawn (log-appeal ~ logistic with sd ``appeal_sd``).

The system's estimate of an item (observation block 0) = its estimate of the category's
interest (tracked from every observed engagement with the decay model's λ and b) × the
item's relative click-through, a Gamma-Poisson posterior mean (α + clicks) / (α + expected
clicks), α = ``estimate_prior_clicks``, expected clicks summed over the item's exposures
at its position's bias × the category estimate × the catalogue's mean click multiplier
× (1 - satiation): a cold item reads its category's estimate, and showing it is how the
system learns what it is worth.

Performance: NumPy array operations only (none a Python loop over users or slots); all
draws of a visit come from one hash per word. A CUDA/array-API backend is not implemented.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import numpy as np
import threadpoolctl
from numpy.typing import NDArray

from envs import rng
from envs.config import MAX_EXPLORE, SimConfig
from envs.population import Catalogue, Population

F32 = np.float32
NEVER_ENGAGED_H = F32(1e6)
"""Hours since the last engagement with a category the user never engaged with in the episode."""

# observation block order (feature-major: block f holds feature f of all K candidates)
ITEM_FEATURES = (
    "predicted_interest",
    "time_since_category_engagement",
    "exposures",
    "clicks",
    "purchases",
    "exposures_since_click",
    "empty",
    "item_age",
    "item_value",
)
USER_FEATURES = ("visit_index", "recent_unanswered", "empty_slots")
HOURS_SCALE = F32(24.0)
COUNT_SCALE = F32(5.0)
AGE_SCALE = F32(720.0)


_BLAS_SINGLE_THREAD_FROM = 256


@functools.cache
def _blas_controller() -> threadpoolctl.ThreadpoolController:
    return threadpoolctl.ThreadpoolController()


# per-slot float fields, packed in one (S, N, K) array so that a retired or refilled slot is one write
# (the first FRESH_FIELDS are set when a candidate arrives; the rest are counters, zeroed on retirement)
SLOT_FIELDS = (
    "appeal_mult",  # hidden: click_scale · quality · appeal
    "buy_p",  # hidden: purchase_rate · quality
    "value",
    "arrived_h",  # clock (hours) when the candidate entered the user's pool
    "exposures",
    "clicks",
    "purchases",
    "since_click",  # exposures since the last click
    "expected_clicks",  # what the system expected from the exposures so far (see the module docstring)
    "fatigue",
    "satiation",
)
_S = {name: j for j, name in enumerate(SLOT_FIELDS)}
APPEAL, BUYP, VALUE, ARRIVED, EXPO, CLICKS, BUYS, SINCE, EXPECTED, FATIGUE, SAT = range(len(SLOT_FIELDS))
FRESH_FIELDS = EXPO

# words of the visit hash, per user: [0, K) click + reduce coin, [K, 2K) purchase, then these
_CHURN, _GAP1 = 0, 1
_USER_WORDS = 2


@dataclass
class SimState:
    """Everything that changes, as arrays: (N,) per user, (N, W + 1) per user category, (N, K) per slot.

    Per user: ``key`` (uint32 seed-derived key), ``episode`` and ``visit`` counters, ``clock_h``
    (hours since the episode began), ``annoyance``, ``satisfaction``, ``recent_unanswered``
    (halving average of unanswered exposures per visit), ``alive``, ``gap_mu`` (μ_u of the
    return time), ``events_extra`` (mean events beyond the first per engaged category),
    ``last_gap_h`` (hours since the previous visit).
    Per user category (column W is the orphan column): ``cat`` (category index), ``lam``,
    ``floor``, ``interest`` (true), ``estimate`` (the system's), ``last_engaged_h``.
    Per slot: ``present``, ``flat_uc`` (index into the flattened (N·(W+1)) user-category arrays),
    ``item`` (catalogue index) and ``slots``, shape (S, N, K), the float fields ``SLOT_FIELDS``
    (also readable as attributes, e.g. ``state.exposures``). In an empty slot only the counters
    are meaningful (all 0); the other fields keep stale values that nothing reads unmasked.
    """

    key: NDArray[np.uint32]
    episode: NDArray[np.uint32]
    visit: NDArray[np.uint32]
    clock_h: NDArray[np.float32]
    annoyance: NDArray[np.float32]
    satisfaction: NDArray[np.float32]
    recent_unanswered: NDArray[np.float32]
    gap_mu: NDArray[np.float32]
    events_extra: NDArray[np.float32]
    last_gap_h: NDArray[np.float32]
    alive: NDArray[np.bool_]
    cat: NDArray[np.int32]
    lam: NDArray[np.float32]
    floor: NDArray[np.float32]
    interest: NDArray[np.float32]
    estimate: NDArray[np.float32]
    last_engaged_h: NDArray[np.float32]
    present: NDArray[np.bool_]
    flat_uc: NDArray[np.intp]
    item: NDArray[np.int32]
    slots: NDArray[np.float32]

    @classmethod
    def allocate(cls, num_users: int, config: SimConfig) -> SimState:
        """Zeroed state for ``num_users`` users (call ``Simulator.reset_users`` before stepping)."""
        n, k, c = num_users, config.num_slots, config.max_user_categories + 1
        shapes = {
            "key": ((n,), np.uint32),
            "episode": ((n,), np.uint32),
            "visit": ((n,), np.uint32),
            "alive": ((n,), np.bool_),
            "cat": ((n, c), np.int32),
            "present": ((n, k), np.bool_),
            "flat_uc": ((n, k), np.intp),
            "item": ((n, k), np.int32),
            "slots": ((len(SLOT_FIELDS), n, k), F32),
        }
        for name in (
            "clock_h",
            "annoyance",
            "satisfaction",
            "recent_unanswered",
            "gap_mu",
            "events_extra",
            "last_gap_h",
        ):
            shapes[name] = ((n,), F32)
        for name in ("lam", "floor", "interest", "estimate", "last_engaged_h"):
            shapes[name] = ((n, c), F32)
        return cls(**{f.name: np.zeros(*shapes[f.name]) for f in fields(cls)})

    def __getattr__(self, name: str) -> NDArray[np.float32]:
        j = _S.get(name)
        if j is None:
            raise AttributeError(name)
        return self.slots[j]

    @property
    def num_users(self) -> int:
        """N."""
        return len(self.key)

    def rows(self, index: NDArray[np.intp]) -> SimState:
        """A copy of some users' state, with ``flat_uc`` renumbered for the copy."""
        out = {f.name: getattr(self, f.name)[index].copy() for f in fields(self) if f.name != "slots"}
        out["slots"] = self.slots[:, index].copy()
        width = self.cat.shape[1]
        out["flat_uc"] += ((np.arange(len(index)) - index) * width)[:, None]
        return SimState(**out)


@dataclass
class Browsing:
    """The user's own activity in one visit (step 1), for reports such as the fidelity check.

    ``engaged_events`` (N, W): events per tracked category (0 = not engaged), read against
    ``state.cat`` after the step (engaged categories are never replaced in the same visit);
    ``engaged_buys`` (N, W): purchases among them; ``explore_cat`` (N, MAX_EXPLORE): category index
    of each new category engaged, -1 for none; ``explore_events`` / ``explore_buys`` (N, MAX_EXPLORE).
    """

    engaged_events: NDArray[np.float32]
    engaged_buys: NDArray[np.float32]
    explore_cat: NDArray[np.int64]
    explore_events: NDArray[np.float32]
    explore_buys: NDArray[np.float32]


@dataclass
class StepResult:
    """What one visit produced, per user (shape (N,)).

    ``reward`` = ``click_reward`` + ``purchase_reward`` - ``slot_cost``; ``organic_events`` and
    ``organic_purchases`` count the user's own browsing (not rewarded); ``browsing`` details it.
    """

    reward: NDArray[np.float32]
    click_reward: NDArray[np.float32]
    purchase_reward: NDArray[np.float32]
    slot_cost: NDArray[np.float32]
    clicks: NDArray[np.float32]
    purchases: NDArray[np.float32]
    slots_used: NDArray[np.float32]
    churned: NDArray[np.bool_]
    gap_h: NDArray[np.float32]
    organic_events: NDArray[np.float32]
    organic_purchases: NDArray[np.float32]
    browsing: Browsing


class Simulator:
    """The dynamics bound to a config, a population and a catalogue (all read-only).

    Args:
        config: sizes and parameters.
        population: who the users are; defaults to ``Population.from_config(config)``.
    """

    def __init__(self, config: SimConfig, population: Population | None = None) -> None:
        self.config = config
        self.population = population if population is not None else Population.from_config(config)
        self.catalogue = Catalogue.build(config, self.population.num_categories)
        k, m, w = config.num_slots, config.exposure_slots, config.max_user_categories
        self.width = w + 1
        self.num_words = 2 * k + _USER_WORDS + 3 * w + 4 * MAX_EXPLORE
        self.salt_visit = rng.salt(rng.DRAW_VISIT, self.num_words)[None, :]
        self.salt_fresh = rng.salt(rng.DRAW_FRESH, 3 * k).reshape(k, 3)
        # per catalogue item, the slot fields a fresh candidate starts with (before its appeal)
        cat_ = self.catalogue
        self.item_table = np.stack(  # fields APPEAL..VALUE
            [config.click_scale * cat_.quality, config.purchase_rate * cat_.quality, cat_.value]
        ).astype(F32)
        # log-appeal ~ logistic with sd appeal_sd: (u / (1 - u))^(sd·√3/π)
        self._appeal_scale = config.appeal_sd * np.sqrt(3.0) / np.pi
        s = float(self._appeal_scale)
        mean_appeal = np.pi * s / np.sin(np.pi * s) if 0 < s < 1 else 1.0  # E[(u/(1-u))^s]
        # the system's prior click multiplier of a cold item: the catalogue's mean, times the mean appeal
        self.mean_click_mult = F32(float(self.item_table[APPEAL].mean()) * mean_appeal)
        # reduce coin: low 8 bits of the click hash below this threshold
        self.reduce_threshold = np.uint32(round(config.reduce_display_prob * 256))
        # bias_table[p] for 1-based position p <= M is 2^24 / log2(1 + p) (the 2^24 matches the 24-bit
        # uniforms); index 0 (not marked for display) and M+1..K (no position left) give 0
        positions = np.arange(1, m + 1, dtype=np.float64)
        bias = np.zeros(k + 2)
        bias[1 : m + 1] = 1.0 / np.log2(1.0 + positions)
        self.bias_table = (bias * 2.0**24).astype(F32)
        self.crowd_table = (config.crowding ** np.maximum(np.arange(m + 2) - 1, 0)).astype(F32)
        tri = np.triu(np.ones((k, k), F32))  # x @ tri = cumulative sum along slots
        self.position_matrix = np.block([[tri, np.ones((k, k), F32)], [np.zeros((k, k), F32), tri]])
        pop = self.population
        self.share_cdf = np.cumsum(pop.share).astype(F32)
        self.share_cdf[-1] = 1.0
        self.cat_lam = np.exp(pop.log_lam_mean).clip(1e-6, 1e3).astype(F32)
        self.cat_floor = (1.0 / (1.0 + np.exp(-pop.logit_floor_mean))).astype(F32)
        self._fade_rates = np.array(
            [
                np.log(2.0) / config.fatigue_halflife_h,
                1.0 / config.repurchase_cycle_h,
                np.log(2.0) / config.mood_halflife_h,
            ],
            F32,
        )
        # added to a clicked slot's fields
        self._click_delta = np.zeros(len(SLOT_FIELDS), F32)
        self._click_delta[[CLICKS, FATIGUE]] = [1.0, -config.fatigue_per_exposure]
        self.gap_quantiles = np.asarray(config.gap_residual_quantiles, np.float64)
        self.gap_probs = np.linspace(0.0, 1.0, len(self.gap_quantiles))
        self._log1m_buy = F32(np.log1p(-min(config.organic_purchase_rate, 1 - 1e-6)))

    # -- episodes ------------------------------------------------------------------------
    def reset_users(self, state: SimState, rows: NDArray[np.intp]) -> None:
        """Start a new user (episode ``state.episode[rows]``) in each given row, with K fresh candidates."""
        if len(rows) == 0:
            return
        cfg = self.config
        w = cfg.max_user_categories
        drawn = self.population.draw(cfg, state.key[rows], state.episode[rows])
        for name in ("cat", "lam", "floor", "interest", "estimate"):
            getattr(state, name)[rows, :w] = drawn[name]
        orphan = F32(cfg.orphan_interest)
        state.cat[rows, w] = -1
        state.lam[rows, w] = 0.0
        for name in ("floor", "interest", "estimate"):
            getattr(state, name)[rows, w] = orphan
        state.gap_mu[rows] = drawn["gap_mu"]
        state.events_extra[rows] = drawn["events_extra"]
        # the first visit follows a gap of typical length: the user's median
        state.last_gap_h[rows] = F32(cfg.session_gap_h) + np.exp(drawn["gap_mu"]).astype(F32)
        state.last_engaged_h[rows] = -NEVER_ENGAGED_H
        for name in ("visit", "clock_h", "annoyance", "satisfaction", "recent_unanswered"):
            getattr(state, name)[rows] = 0
        state.alive[rows] = True
        state.slots[FRESH_FIELDS:, rows] = 0
        k = cfg.num_slots
        flat = (rows[:, None] * k + np.arange(k)[None, :]).ravel()
        self._fill(state, flat)

    def _fill(self, state: SimState, flat: NDArray[np.intp], base: NDArray[np.uint32] | None = None) -> None:
        """Put a fresh, cold candidate into each given slot (flat index user·K + slot).

        ``base`` is the per-user stream of the visit the candidates arrive at (computed if None).
        """
        cfg = self.config
        k, w, per_cat = cfg.num_slots, cfg.max_user_categories, cfg.items_per_category
        width = self.width
        user = flat // k
        if base is None:
            base_u = rng.stream(state.key[user], state.episode[user], state.visit[user], rng.DRAW_FRESH)
        else:
            base_u = base[user]
        u = rng.to_unit(rng.mix(base_u[:, None] + self.salt_fresh[flat - user * k]))  # (n, 3)
        # category in proportion to the system's estimate of the user's tracked interests
        weight = state.estimate[user, :w]
        cdf = np.cumsum(weight, axis=1)
        ucat = np.einsum("nc->n", (cdf < u[:, :1] * cdf[:, -1:]).astype(F32)).astype(np.intp)
        flat_uc = user * width + np.minimum(ucat, w - 1)
        cat = state.cat.ravel()[flat_uc]
        item = cat * per_cat + np.minimum((u[:, 1] * per_cat).astype(np.intp), per_cat - 1)
        values = np.empty((FRESH_FIELDS, len(flat)), F32)
        values[APPEAL : VALUE + 1] = self.item_table[:, item]  # hidden appeal·quality, purchase chance, value
        u2 = u[:, 2]
        values[APPEAL] *= (u2 / (1 - u2)) ** F32(self._appeal_scale)  # e^{logistic}: hidden appeal
        values[ARRIVED] = state.clock_h[user]
        state.slots.reshape(len(SLOT_FIELDS), -1)[:FRESH_FIELDS, flat] = values  # counters are already 0
        state.present.ravel()[flat] = True
        state.flat_uc.ravel()[flat] = flat_uc
        state.item.ravel()[flat] = item

    # -- one visit -----------------------------------------------------------------------
    def step(self, state: SimState, action: NDArray[np.integer]) -> StepResult:
        """Apply one visit's actions (shape (N, K), values 0/1/2) to every user; mutates ``state``.

        Users with ``alive`` False are stepped too (the callers reset or ignore them).
        """
        if len(action) < _BLAS_SINGLE_THREAD_FROM:
            return self._step(state, action)
        # the one matrix product per step is small; BLAS threads waking up per call cost far more
        with _blas_controller().limit(limits=1, user_api="blas"):
            return self._step(state, action)

    def _browse(self, state: SimState, words: NDArray[np.uint32]) -> tuple[Browsing, NDArray[np.float32]]:
        """Step 1: the user's own browsing this visit; returns it and the organic event count."""
        cfg = self.config
        n = state.num_users
        w = cfg.max_user_categories
        u = rng.to_unit(words)  # (N, 3W + 4E): engage, count, buy per tracked category; explore x 4
        u_eng, u_cnt, u_buy = u[:, :w], u[:, w : 2 * w], u[:, 2 * w : 3 * w]
        tracked = state.interest[:, :w]
        # 1 - (1 - I)^{κΔ/24}: the 24 h engagement chance as a hazard over the gap since the last visit
        expo = F32(cfg.engagement_scale) * (state.last_gap_h / F32(24.0)) ** F32(cfg.engagement_gap_power)
        q = -np.expm1(expo[:, None] * np.log1p(-np.minimum(tracked, F32(1 - 1e-6))))
        engaged = u_eng < q
        # new categories: each of MAX_EXPLORE tries engages one with chance explore_per_visit / MAX_EXPLORE
        ue = u[:, 3 * w :].reshape(n, 4, MAX_EXPLORE)  # active, events, buy, category
        active = ue[:, 0] < F32(cfg.explore_per_visit / MAX_EXPLORE)
        # a visit is a visit because something was browsed: with nothing else, the nearest miss is engaged
        idle = ~(engaged.any(axis=1) | active.any(axis=1))
        if idle.any():
            rows = idle.nonzero()[0]
            engaged[rows, np.argmax(q[rows] / u_eng[rows], axis=1)] = True
        # events of an engaged category: 1 + Geometric with mean events_extra (P(more) = m / (1 + m))
        # (computed only where engaged: about one category in seven)
        extra = state.events_extra
        log_more = np.log(extra / (1 + extra))
        events = np.zeros((n, w), F32)
        buys = np.zeros((n, w), F32)
        er, ec = engaged.nonzero()
        count = np.floor(np.log(u_cnt[er, ec]) / log_more[er]) + 1
        events[er, ec] = count
        buys[er, ec] = u_buy[er, ec] < -np.expm1(count * self._log1m_buy)  # at least one purchase
        x_events = np.zeros((n, MAX_EXPLORE), F32)
        x_buys = np.zeros((n, MAX_EXPLORE), F32)
        xr, xc = active.nonzero()
        count = np.floor(np.log(ue[xr, 1, xc]) / log_more[xr]) + 1
        x_events[xr, xc] = count
        x_buys[xr, xc] = ue[xr, 2, xc] < -np.expm1(count * self._log1m_buy)
        x_cat = np.full((n, MAX_EXPLORE), -1, np.int64)
        lift = F32(cfg.engagement_lift)
        now = state.clock_h[:, None]
        if engaged.any():
            for arr in (state.interest, state.estimate):
                view = arr[:, :w]
                np.add(view, lift * (1 - view), out=view, where=engaged)
            np.copyto(state.last_engaged_h[:, :w], now, where=engaged)
        if active.any():
            self._explore(state, engaged, active, ue[:, 3], x_cat)
        organic = np.einsum("nc->n", events) + np.einsum("nc->n", x_events)
        browsing = Browsing(events, buys, x_cat, x_events, x_buys)
        return browsing, organic

    def _explore(
        self,
        state: SimState,
        engaged: NDArray[np.bool_],
        active: NDArray[np.bool_],
        u_cat: NDArray[np.float32],
        x_cat: NDArray[np.int64],
    ) -> None:
        """New categories replace the least-interesting tracked ones not engaged this visit."""
        cfg = self.config
        w, width = cfg.max_user_categories, self.width
        users, tries = active.nonzero()
        # the j-th active try of a user replaces the user's j-th least interesting free category
        rows = np.flatnonzero(active.any(axis=1))  # sorted, as ``users`` is
        free = np.where(engaged[rows], np.inf, state.interest[rows, :w])
        order = np.argsort(free, axis=1, kind="stable")
        at = np.searchsorted(rows, users)
        rank = np.cumsum(active, axis=1)[users, tries] - 1
        ok = rank < w - engaged[users].sum(axis=1)  # never more than the free categories
        users, tries, rank, at = users[ok], tries[ok], rank[ok], at[ok]
        if not users.size:
            return
        slot = order[at, rank]
        # the category: by population share
        new = np.minimum(np.searchsorted(self.share_cdf, u_cat[users, tries]), len(self.share_cdf) - 1)
        x_cat[users, tries] = new
        flat_uc = users * width + slot
        replaced = np.zeros(state.cat.size, bool)
        replaced[flat_uc] = True
        orphans = replaced[state.flat_uc] & state.present
        if orphans.any():
            rows = orphans.nonzero()[0]
            state.flat_uc[orphans] = rows * width + w
        floor = self.cat_floor[new]
        start = floor + F32(cfg.engagement_lift) * (1 - floor)
        for name, value in (
            ("cat", new),
            ("lam", self.cat_lam[new]),
            ("floor", floor),
            ("interest", start),
            ("estimate", start),
            ("last_engaged_h", state.clock_h[users]),
        ):
            getattr(state, name).ravel()[flat_uc] = value

    def _step(self, state: SimState, action: NDArray[np.integer]) -> StepResult:
        cfg = self.config
        n, k = action.shape
        w, width = cfg.max_user_categories, self.width
        present = state.present
        slots = state.slots

        # every draw of this visit from one hash: per slot (click | reduce coin), per slot purchase,
        # then churn and the return gap per user, then the browsing words
        base = rng.stream(state.key, state.episode, state.visit, rng.DRAW_VISIT)
        x = base[:, None] + self.salt_visit
        rng.mix(x)
        stride = self.num_words

        # 1. browsing
        browsing, organic = self._browse(state, x[:, 2 * k + _USER_WORDS :].copy())
        organic_buys = np.einsum("nc->n", browsing.engaged_buys) + np.einsum("nc->n", browsing.explore_buys)

        # 2. retire
        retire = action == 2
        retire &= present
        retired = retire.ravel().nonzero()[0]
        flat_slots = slots.reshape(len(SLOT_FIELDS), n * k)  # (S, N·K) view: one index per slot
        if retired.size:
            present.ravel()[retired] = False
            flat_slots[FRESH_FIELDS:, retired] = 0  # the counters; the rest is overwritten on arrival

        # 3. exposure: 1-based positions; show first (slot order), then the reduce items that won their coin
        x_slot = x[:, :k]
        show = action == 0
        show &= present
        red = action == 1
        red &= present
        red &= (x_slot & np.uint32(255)) < self.reduce_threshold
        # display positions from one product: [show | red] @ [[tri, 1], [0, tri]] gives per slot the number
        # of show items up to it and (all show items + reduce items up to it)
        marked = np.concatenate((show, red), axis=1).astype(F32)
        both = marked @ self.position_matrix
        cs = both[:, :k]
        both *= marked  # keep the count of each slot's own kind
        cs += both[:, k:]  # the 1-based position of every candidate marked for display, 0 elsewhere
        bias = self.bias_table.take(cs.astype(np.intp))  # 0 for position 0 and beyond M
        shown = bias > 0
        shown_f = shown.astype(F32)

        # 4. response
        flat_uc = state.flat_uc
        per_cat = np.bincount(flat_uc.ravel(), weights=shown_f.ravel(), minlength=n * width)
        p = self.crowd_table.take(per_cat.take(flat_uc).astype(np.intp))
        p *= state.interest.ravel().take(flat_uc)
        p *= slots[APPEAL]
        p *= bias
        tmp = np.exp(-slots[FATIGUE])
        p *= tmp
        avail = 1 - slots[SAT]
        p *= avail
        click = (x_slot >> np.uint32(8)).astype(F32) < p
        clicked = click.ravel().nonzero()[0]
        # what the system expected of these exposures, at mult 1 (the 2^-24 undoes the table's scale)
        expected = state.estimate.ravel().take(flat_uc)
        expected *= bias
        expected *= avail
        expected *= F32(2.0**-24) * self.mean_click_mult
        slots[EXPECTED] += expected

        # 5. reward
        n_shown = np.einsum("nk->n", shown_f)
        cost = F32(cfg.slot_cost) * n_shown
        zero = np.zeros(n, F32)
        n_click, n_buy, purchase_reward = zero, zero, zero

        # 6. updates: every shown item counts as unanswered first, then clicked ones are corrected
        slots[EXPO : SINCE + 1 : SINCE - EXPO] += shown_f  # exposures and exposures since the last click
        shown_f *= F32(cfg.fatigue_per_exposure)
        slots[FATIGUE] += shown_f
        if clicked.size:
            cu = clicked // k
            n_click = np.bincount(cu, minlength=n).astype(F32)
            # purchase | click: top 24 bits of the slot's purchase word against purchase_rate·quality·(1-sat)
            u_buy = (x.ravel()[cu * stride + k + (clicked - cu * k)] >> np.uint32(8)).astype(F32)
            buy = u_buy < flat_slots[BUYP, clicked] * avail.ravel()[clicked] * F32(2**24)
            bought = clicked[buy]
            if bought.size:
                bu = cu[buy]
                n_buy = np.bincount(bu, minlength=n).astype(F32)
                purchase_reward = F32(cfg.purchase_value_scale) * np.bincount(
                    bu, weights=flat_slots[VALUE, bought], minlength=n
                ).astype(F32)
                flat_slots[BUYS, bought] += 1
                flat_slots[SAT, bought] = cfg.purchase_satiation
            # the click count grows; the fatigue is undone
            flat_slots[:, clicked] += self._click_delta[:, None]
            flat_slots[SINCE, clicked] = 0
            lifts = np.bincount(flat_uc.ravel()[clicked], minlength=n * width).reshape(n, width)
            lifts[:, w] = 0  # the orphan column keeps its constant interest
            lifted = lifts > 0  # only these change: a user's numbers must not depend on other users' clicks
            factor = ((1 - cfg.click_lift) ** lifts).astype(F32)
            for arr in (state.interest, state.estimate):  # the system sees the click, too
                kept = (1 - arr) * factor
                np.subtract(F32(1), kept, out=arr, where=lifted)
            np.copyto(state.last_engaged_h, state.clock_h[:, None], where=lifted)
            state.satisfaction += F32(cfg.satisfaction_per_click) * n_click
            state.satisfaction += F32(cfg.satisfaction_per_purchase) * n_buy
        click_reward = F32(cfg.click_value) * n_click
        n_unanswered = n_shown - n_click
        state.annoyance += F32(cfg.annoyance_per_exposure) * n_unanswered
        state.recent_unanswered *= F32(0.5)
        state.recent_unanswered += n_unanswered

        # 7. churn and 8. the gap to the next visit
        u = rng.to_unit(x[:, 2 * k : 2 * k + _USER_WORDS])
        logit = (
            cfg.churn_logit
            + cfg.churn_annoyance * state.annoyance
            - cfg.churn_satisfaction * state.satisfaction
        )
        # clipped so that exp cannot overflow for a very satisfied (or annoyed) user
        churned = u[:, _CHURN] * (1 + np.exp(-np.clip(logit, -60.0, 60.0))) < 1
        state.alive &= ~churned
        resid = np.interp(u[:, _GAP1], self.gap_probs, self.gap_quantiles).astype(F32)
        gap = np.exp(state.gap_mu + resid)
        floor_f = F32(cfg.return_gap_min_fraction)
        gap *= floor_f + (1 - floor_f) * np.exp(F32(-cfg.return_satisfaction) * state.satisfaction)
        gap += F32(cfg.session_gap_h)
        gap = gap.astype(F32)
        state.last_gap_h[:] = gap
        state.clock_h += gap
        self.fade_interest(state, gap)
        minus_g = -gap[:, None]
        rates = np.exp(self._fade_rates * minus_g)  # (N, 3): fatigue, satiation, mood
        slots[FATIGUE : SAT + 1] *= rates.T[:2, :, None]
        mood = rates[:, 2]
        state.annoyance *= mood
        state.satisfaction *= mood

        # 9. retrieval for the next visit: the lowest empty slots, at most R of them
        state.visit += np.uint32(1)
        if not present.all():
            empty = ~present
            n_empty = np.einsum("nk->n", empty.astype(F32))
            over = (n_empty > cfg.fresh_per_visit).nonzero()[0]
            if over.size:  # more empty slots than fresh candidates: only the lowest R are filled
                rank = np.cumsum(empty[over], axis=1)
                empty[over] &= rank <= cfg.fresh_per_visit
            self._fill(state, empty.ravel().nonzero()[0], base)

        return StepResult(
            reward=click_reward + purchase_reward - cost,
            click_reward=click_reward,
            purchase_reward=purchase_reward,
            slot_cost=cost,
            clicks=n_click,
            purchases=n_buy,
            slots_used=n_shown,
            churned=churned,
            gap_h=gap,
            organic_events=organic,
            organic_purchases=organic_buys,
            browsing=browsing,
        )

    def fade_interest(self, state: SimState, hours: NDArray[np.float32]) -> None:
        """Decay every user's true interest and the system's estimate over ``hours`` (shape (N,)).

        I ← b + (I - b)·e^{-λΔ}: the one place the decay law is applied (visits and the fidelity start).
        """
        fade = np.exp(state.lam * -hours[:, None])
        for arr in (state.interest, state.estimate):
            arr -= state.floor
            arr *= fade
            arr += state.floor

    # -- what the agent sees -------------------------------------------------------------
    def predicted_interest(self, state: SimState) -> NDArray[np.float32]:
        """The system's estimate per slot (observation block 0 before masking), shape (N, K)."""
        slots = state.slots
        alpha = F32(self.config.estimate_prior_clicks)
        est = state.estimate.ravel().take(state.flat_uc)
        est *= slots[CLICKS] + alpha
        est /= slots[EXPECTED] + alpha
        est *= 1 - slots[SAT]
        return np.minimum(est, F32(1), out=est)

    def observe(
        self, state: SimState, out: NDArray[np.float32], rows: NDArray[np.intp] | None = None
    ) -> None:
        """Write observations into ``out`` (shape (N, K·F + U)), for all users or only ``rows``.

        Layout (feature-major): block f = ``out[:, f*K:(f+1)*K]`` holds feature ``ITEM_FEATURES[f]``
        of the K candidates; the last U entries are ``USER_FEATURES``. Every value is in [0, 1].
        """
        if rows is not None:
            view = np.empty((len(rows), out.shape[1]), F32)
            self.observe(state.rows(rows), view)
            out[rows] = view
            return
        cfg = self.config
        k = cfg.num_slots
        n = state.num_users
        nf = len(ITEM_FEATURES)
        blocks = out[:, : k * nf].reshape(n, nf, k)
        slots = state.slots
        present = state.present.astype(F32)
        np.multiply(self.predicted_interest(state), present, out=blocks[:, 0])
        since = state.last_engaged_h.ravel().take(state.flat_uc)
        np.subtract(state.clock_h[:, None], since, out=since)
        tmp = since + HOURS_SCALE
        np.divide(since, tmp, out=since)
        np.multiply(since, present, out=blocks[:, 1])
        counts = slots[EXPO : SINCE + 1]  # exposures, clicks, purchases, since_click: (4, N, K)
        np.divide(counts, counts + COUNT_SCALE, out=blocks[:, 2:6].transpose(1, 0, 2))
        np.subtract(F32(1), present, out=blocks[:, 6])
        age = state.clock_h[:, None] - slots[ARRIVED]
        np.add(age, AGE_SCALE, out=tmp)
        np.divide(age, tmp, out=tmp)
        np.multiply(tmp, present, out=blocks[:, 7])
        value = slots[VALUE]
        np.add(value, F32(1), out=tmp)
        np.divide(value, tmp, out=tmp)
        np.multiply(tmp, present, out=blocks[:, 8])
        user = out[:, k * nf :]
        v = state.visit.astype(F32)
        user[:, 0] = v / (v + F32(cfg.horizon))
        user[:, 1] = state.recent_unanswered / (state.recent_unanswered + F32(cfg.exposure_slots))
        user[:, 2] = (k - np.einsum("nk->n", present)) / F32(k)

    def hidden(self, state: SimState) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """The hidden truth per slot, for the oracle baseline only; 0 for empty slots.

        Returns:
            (category interest, click multiplier click_scale·quality·appeal), each shape (N, K).
        """
        interest = state.interest.ravel().take(state.flat_uc)
        interest *= state.present
        return interest, slots_masked(state.slots[APPEAL], state.present)


def slots_masked(values: NDArray[np.float32], present: NDArray[np.bool_]) -> NDArray[np.float32]:
    """``values`` with empty slots set to 0 (a copy)."""
    return values * present
