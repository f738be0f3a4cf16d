"""The simulator's dynamics, written once: a batched step over N users × K candidate slots.

State is explicit (:class:`SimState`, a struct of arrays); randomness is counter-based
(``envs.rng``: every draw hashes the user's 64-bit key, episode, visit, purpose and index), so
user i's trajectory does not depend on the other users in the batch. A candidate's draws are
keyed by its id (the order in which it arrived in the user's pool) and a fresh candidate's by its
arrival order, never by its slot: where an item sits changes nothing. The single env
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
   In budget mode (``engagement_budget`` > 0) the chances of a visit are first scaled to sum to
   the user's r_u, so that interest decides which categories, not how many.
   Engagement lifts interest, I ← I + engagement_lift·(1 - I), and each event is a purchase
   with chance ``organic_purchase_rate``. The system sees all of it (it is its own log).
2. **Retire** (action 2): the slot empties for good (its item leaves the user's pool).
3. **Exposure**: the policy decides each candidate's exposure, the platform ranks the page.
   Candidates marked show (0) are eligible; each candidate marked reduce (1) is eligible with
   chance ``reduce_display_prob``. The platform orders the shown ones by its own estimate
   (observation block 0 before its cap; ties: the older candidate first), then the reduced
   ones that won their draw by the same estimate, and displays the first M at positions 1..M;
   the rest are not displayed. Empty slots show nothing.
4. **Response**: P(click) = 1 - e^{-x}, x = interest(category) · appeal · click_scale · quality
   · 1/log2(1 + position) · e^{-fatigue} · (1 - satiation) · crowding^{n - 1}, n the displayed
   items of the item's true category (orphans included); 1 - e^{-x} ≈ x for small x and stays
   below 1 however large the unbounded appeal. P(purchase | click) = purchase_rate · quality
   · (1 - satiation), in [0, 1] as quality ~ Beta.
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
9. **Retrieval**: at most R fresh candidates fill empty slots (lowest slots first), each with
   the user's next candidate id. A fresh candidate is cold: its category is drawn in proportion
   to the system's estimate of the user's category interests, its item uniformly in that
   category; its hidden appeal is drawn (log-appeal ~ logistic with sd ``appeal_sd``).

The system's estimate of an item (observation block 0) = its estimate of the category's
interest (tracked from every observed engagement with the decay model's λ and b) × the
item's relative click-through, a Gamma-Poisson posterior mean (α + clicks) / (α + expected
clicks), α = ``estimate_prior_clicks``, expected clicks summed over the item's exposures
at its position's bias × the category estimate × the catalogue's mean click multiplier
× (1 - satiation): a cold item reads its category's estimate, and showing it is how the
system learns what it is worth.

Performance: the visit, the observation and the refill are compiled loops over users
(``envs.kernels``, Numba; parallel over users for batches of ``kernels.PARALLEL_FROM`` users or
more), one source for the single env and the vector env. A CUDA backend is not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from envs import state_layout
from envs.config import MAX_EXPLORE, SimConfig
from envs.population import PRETRAINED, Catalogue, Population

if TYPE_CHECKING:
    from envs.reencode import ReEncoder

F32 = np.float32
NEVER_ENGAGED_H = F32(1e6)
"""Hours since the last engagement with a category the user never engaged with in the episode."""

# per-slot float fields, packed in one (S, N, K) array (indices: envs.state_layout.APPEAL ... SAT); the first
# state_layout.FRESH_FIELDS are set when a candidate arrives, the rest are counters, zeroed on retirement
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
assert len(SLOT_FIELDS) == state_layout.NUM_SLOT_FIELDS
COUNTER_FIELDS = ("key", "episode", "visit", "next_id")
USER_FIELDS = (
    "clock_h",
    "annoyance",
    "satisfaction",
    "recent_unanswered",
    "gap_mu",
    "events_extra",
    "last_gap_h",
    "budget",
)
CATEGORY_FIELDS = ("lam", "floor", "interest", "estimate", "last_engaged_h")
_PACKED = {
    **{name: ("counters", j) for j, name in enumerate(COUNTER_FIELDS)},
    **{name: ("user", j) for j, name in enumerate(USER_FIELDS)},
    **{name: ("cats", j) for j, name in enumerate(CATEGORY_FIELDS)},
    **{name: ("slots", j) for j, name in enumerate(SLOT_FIELDS)},
}
assert SLOT_FIELDS.index("satiation") == state_layout.SAT
assert USER_FIELDS.index("last_gap_h") == state_layout.LAST_GAP
assert COUNTER_FIELDS.index("next_id") == state_layout.NEXT_ID
assert CATEGORY_FIELDS.index("last_engaged_h") == state_layout.LAST_ENGAGED


@dataclass
class SimState:
    """Everything that changes, as a few packed arrays (the compiled step reads them directly).

    ``counters`` (4, N) uint64: ``key`` (seed-derived), ``episode``, ``visit``, ``next_id`` (the id the
    user's next fresh candidate gets: candidates are numbered 0, 1, ... in the order they arrive).
    ``user`` (8, N) float32: ``clock_h`` (hours since the episode began), ``annoyance``,
    ``satisfaction``, ``recent_unanswered`` (halving average of unanswered exposures per visit),
    ``gap_mu`` (μ_u of the return time), ``events_extra`` (mean events beyond the first per
    engaged category), ``last_gap_h`` (hours since the previous visit), ``budget`` (r_u, tracked
    categories a visit re-engages in budget mode). ``alive`` (N,).
    ``cat`` (N, W + 1) category index and ``cats`` (5, N, W + 1) float32: ``lam``, ``floor``,
    ``interest`` (true), ``estimate`` (the system's), ``last_engaged_h``; column W is the orphan column.
    Per slot: ``present``, ``flat_uc`` (index into the flattened (N·(W+1)) user-category arrays),
    ``item`` (catalogue index), ``uid`` (the candidate's id, which keys its random draws) and
    ``slots`` (S, N, K) float32, the ``SLOT_FIELDS``. In an empty slot
    only the counters are meaningful (all 0); the rest keeps stale values that nothing reads.
    Recent events, kept only when the config re-encodes users (else H = 0): a ring of H =
    ``reencode_history`` per user, ``hist_cat`` (category index), ``hist_beh`` (behaviour code),
    ``hist_time`` (clock hours), and ``hist_n`` (events recorded in the episode).

    Every packed field is also an attribute (a view), e.g. ``state.clock_h`` or ``state.exposures``.
    """

    counters: NDArray[np.uint64]
    user: NDArray[np.float32]
    alive: NDArray[np.bool_]
    cat: NDArray[np.int32]
    cats: NDArray[np.float32]
    present: NDArray[np.bool_]
    flat_uc: NDArray[np.intp]
    item: NDArray[np.int32]
    uid: NDArray[np.int64]
    slots: NDArray[np.float32]
    hist_cat: NDArray[np.int32]
    hist_beh: NDArray[np.int8]
    hist_time: NDArray[np.float32]
    hist_n: NDArray[np.int64]

    @classmethod
    def allocate(cls, num_users: int, config: SimConfig) -> SimState:
        """Zeroed state for ``num_users`` users (call ``Simulator.reset_users`` before stepping)."""
        n, k, c = num_users, config.num_slots, config.max_user_categories + 1
        h = config.reencode_history if config.reencode_every else 0
        return cls(
            counters=np.zeros((len(COUNTER_FIELDS), n), np.uint64),
            user=np.zeros((len(USER_FIELDS), n), F32),
            alive=np.zeros(n, np.bool_),
            cat=np.zeros((n, c), np.int32),
            cats=np.zeros((len(CATEGORY_FIELDS), n, c), F32),
            present=np.zeros((n, k), np.bool_),
            flat_uc=np.zeros((n, k), np.intp),
            item=np.zeros((n, k), np.int32),
            uid=np.zeros((n, k), np.int64),
            slots=np.zeros((len(SLOT_FIELDS), n, k), F32),
            hist_cat=np.zeros((n, h), np.int32),
            hist_beh=np.zeros((n, h), np.int8),
            hist_time=np.zeros((n, h), F32),
            hist_n=np.zeros(n, np.int64),
        )

    def __getattr__(self, name: str) -> NDArray[np.generic]:
        where = _PACKED.get(name)
        if where is None:
            raise AttributeError(name)
        return self.__dict__[where[0]][where[1]]

    def __setattr__(self, name: str, value: object) -> None:
        where = _PACKED.get(name)
        if where is None:
            super().__setattr__(name, value)
        elif value is not getattr(self, name):  # ``state.x += y`` has written in place already
            getattr(self, name)[...] = value

    @property
    def num_users(self) -> int:
        """N."""
        return self.alive.shape[0]

    def history(self) -> tuple[NDArray[np.generic], ...]:
        """The ring of recent events, in the order the compiled step writes it."""
        return (self.hist_cat, self.hist_beh, self.hist_time, self.hist_n)

    def rows(self, index: NDArray[np.intp]) -> SimState:
        """A copy of some users' state, with ``flat_uc`` renumbered for the copy."""
        out = {}
        for f in fields(self):
            arr = getattr(self, f.name)
            packed = f.name in ("counters", "user", "cats", "slots")
            out[f.name] = arr[:, index].copy() if packed else arr[index].copy()
        width = self.cat.shape[1]
        out["flat_uc"] += ((np.arange(len(index)) - index) * width)[:, None]
        return SimState(**out)


@dataclass
class Browsing:
    """The user's own activity in one visit (step 1), for reports such as the fidelity check.

    ``engaged_events`` (N, W): events per tracked category (0 = not engaged), read against
    ``state.cat`` after the step (engaged categories are never replaced in the same visit);
    ``engaged_buys`` (N, W): 1 where at least one of them was a purchase; ``explore_cat``
    (N, MAX_EXPLORE): category index of each new category engaged, -1 for none;
    ``explore_events`` / ``explore_buys`` (N, MAX_EXPLORE).
    """

    engaged_events: NDArray[np.float32]
    engaged_buys: NDArray[np.float32]
    explore_cat: NDArray[np.int64]
    explore_events: NDArray[np.float32]
    explore_buys: NDArray[np.float32]

    @classmethod
    def allocate(cls, num_users: int, width: int) -> Browsing:
        """Arrays for ``num_users`` users tracking ``width`` categories (the step fills every entry)."""
        n, e = num_users, MAX_EXPLORE
        return cls(
            np.zeros((n, width), F32), np.zeros((n, width), F32), np.full((n, e), -1, np.int64),
            np.zeros((n, e), F32), np.zeros((n, e), F32),
        )  # fmt: skip

    def arrays(self) -> tuple[NDArray[np.generic], ...]:
        """The arrays in the order the compiled step writes them."""
        return (
            self.engaged_events,
            self.engaged_buys,
            self.explore_cat,
            self.explore_events,
            self.explore_buys,
        )


@dataclass
class StepResult:
    """What one visit produced, per user (shape (N,)).

    ``reward`` = ``click_reward`` + ``purchase_reward`` - ``slot_cost``; ``organic_events`` and
    ``organic_purchases`` count the user's own browsing (not rewarded); ``browsing`` details it
    when the step was asked for it (``Simulator.step(..., browsing=True)``), else None.
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
    browsing: Browsing | None


class Simulator:
    """The dynamics bound to a config, a population and a catalogue (all read-only).

    Args:
        config: sizes and parameters.
        population: who the users are; defaults to ``Population.from_config(config)``.
    """

    def __init__(self, config: SimConfig, population: Population | None = None) -> None:
        from envs import kernels  # Numba loads (or compiles) with the first simulator, not on import

        self._run = kernels.run
        self.config = config
        self.population = population if population is not None else Population.from_config(config)
        self.catalogue = Catalogue.build(config, self.population.num_categories)
        k, m = config.num_slots, config.exposure_slots
        self.width = config.max_user_categories + 1
        # per catalogue item, the slot fields a fresh candidate starts with (before its appeal)
        cat_ = self.catalogue
        self.item_table = np.stack(  # the slot fields appeal_mult, buy_p, value
            [config.click_scale * cat_.quality, config.purchase_rate * cat_.quality, cat_.value]
        ).astype(F32)
        # log-appeal ~ logistic with sd appeal_sd: (u / (1 - u))^(sd·√3/π)
        s = config.appeal_sd * np.sqrt(3.0) / np.pi
        mean_appeal = np.pi * s / np.sin(np.pi * s) if s > 0 else 1.0  # E[(u/(1-u))^s], s < 1 (SimConfig)
        # the system's prior click multiplier of a cold item: the catalogue's mean, times the mean appeal
        self.mean_click_mult = F32(float(self.item_table[state_layout.APPEAL].mean()) * mean_appeal)
        # bias_table[p] for 1-based position p <= M is 1 / log2(1 + p); index 0 (not displayed) and
        # M+1..K+1 (no position left) give 0
        positions = np.arange(1, m + 1, dtype=np.float64)
        bias = np.zeros(k + 2)
        bias[1 : m + 1] = 1.0 / np.log2(1.0 + positions)
        self.bias_table = bias.astype(F32)
        self.crowd_table = (config.crowding ** np.maximum(np.arange(k + 2) - 1, 0)).astype(F32)
        pop = self.population
        share_cdf = np.cumsum(pop.share).astype(F32)
        share_cdf[-1] = 1.0
        cat_lam = np.exp(pop.log_lam_mean).clip(1e-6, 1e3).astype(F32)
        cat_floor = (1.0 / (1.0 + np.exp(-pop.logit_floor_mean))).astype(F32)
        gap_quantiles = np.asarray(config.gap_residual_quantiles, np.float64)
        self._tables = (
            self.item_table,
            self.bias_table,
            self.crowd_table,
            share_cdf,
            cat_lam,
            cat_floor,
            gap_quantiles,
        )
        derived = {
            "explore_chance": config.explore_per_visit / MAX_EXPLORE,  # per try
            "log1m_organic_buy": np.log1p(-min(config.organic_purchase_rate, 1 - 1e-6)),
            "mean_click_mult": self.mean_click_mult,
            "appeal_power": s,
            "fatigue_rate": np.log(2.0) / config.fatigue_halflife_h,
            "satiation_rate": 1.0 / config.repurchase_cycle_h,
            "mood_rate": np.log(2.0) / config.mood_halflife_h,
        }
        self._work: dict[str, Any] | None = None
        self.reencoder: ReEncoder | None = None
        if config.reencode_every:
            from envs.reencode import ReEncoder  # the neural model (torch) loads only when asked for

            folder = config.artifact if config.artifact is not None else PRETRAINED
            self.reencoder = ReEncoder.from_artifact(folder, self.population.names)
        self._params = np.array(
            [derived[n] if n in derived else getattr(config, n) for n in state_layout.PARAM_FIELDS],
            np.float64,
        )

    # -- episodes ------------------------------------------------------------------------
    def reset_users(self, state: SimState, rows: NDArray[np.intp]) -> None:
        """Start a new user (episode ``state.episode[rows]``) in each given row, with K fresh candidates."""
        if len(rows) == 0:
            return
        rows = np.asarray(rows, np.intp)
        cfg = self.config
        w = cfg.max_user_categories
        drawn = self.population.draw(cfg, state.key[rows], state.episode[rows])
        state.cat[rows, :w] = drawn["cat"]
        state.cat[rows, w] = -1
        for j, name in enumerate(CATEGORY_FIELDS[:4]):
            state.cats[j, rows, :w] = drawn[name]
        orphan = F32(cfg.orphan_interest)
        state.lam[rows, w] = 0.0
        for name in ("floor", "interest", "estimate"):
            getattr(state, name)[rows, w] = orphan
        state.gap_mu[rows] = drawn["gap_mu"]
        state.events_extra[rows] = drawn["events_extra"]
        state.budget[rows] = drawn["budget"]
        # the first visit follows a gap of typical length: the user's median
        state.last_gap_h[rows] = F32(cfg.session_gap_h) + np.exp(drawn["gap_mu"]).astype(F32)
        state.last_engaged_h[rows] = -NEVER_ENGAGED_H
        for name in ("visit", "clock_h", "annoyance", "satisfaction", "recent_unanswered"):
            getattr(state, name)[rows] = 0
        state.alive[rows] = True
        state.hist_n[rows] = 0
        self._run(
            "fill", len(rows), rows, state.counters, self._params, self.item_table, state.user, state.cat,
            state.cats, state.present, state.flat_uc, state.item, state.uid, state.slots,
        )  # fmt: skip

    # -- one visit -----------------------------------------------------------------------
    def step(
        self,
        state: SimState,
        action: NDArray[np.integer],
        *,
        obs: NDArray[np.float32] | None = None,
        browsing: bool = False,
    ) -> StepResult:
        """Apply one visit's actions (shape (N, K), values 0/1/2) to every user; mutates ``state``.

        Users with ``alive`` False are stepped too (the callers reset or ignore them). With ``obs``
        (shape (N, K·F + U)) the observations after the visit are written there in the same pass
        (as :meth:`observe` would). With ``browsing=True`` the result carries the user's own browsing
        in detail (``StepResult.browsing``, for reports such as the fidelity check).
        """
        n = action.shape[0]
        scratch = self._scratch(n)
        detail = Browsing.allocate(n, self.config.max_user_categories) if browsing else scratch["browsing"]
        churned = np.empty(n, np.bool_)
        out = scratch["out"]
        self._run(
            "step", n, np.ascontiguousarray(action), churned, self._params, self._tables, state.counters,
            state.user, state.alive, state.cat, state.cats, state.present, state.flat_uc, state.item,
            state.uid, state.slots, scratch["work"], out, detail.arrays(), state.history(),
            obs if obs is not None else scratch["no_obs"],
        )  # fmt: skip
        if self.reencoder is not None:
            due = np.flatnonzero((state.visit % np.uint32(self.config.reencode_every) == 0) & state.alive)
            if due.size:
                self.reencoder(state, due)
                if obs is not None:
                    self.observe(state, obs, rows=due)
        cols = out.T.copy()  # (NUM_OUT, N): the caller's to keep
        return StepResult(
            reward=cols[state_layout.OUT_REWARD],
            click_reward=cols[state_layout.OUT_CLICK_REWARD],
            purchase_reward=cols[state_layout.OUT_PURCHASE_REWARD],
            slot_cost=cols[state_layout.OUT_SLOT_COST],
            clicks=cols[state_layout.OUT_CLICKS],
            purchases=cols[state_layout.OUT_PURCHASES],
            slots_used=cols[state_layout.OUT_SLOTS_USED],
            churned=churned,
            gap_h=cols[state_layout.OUT_GAP_H],
            organic_events=cols[state_layout.OUT_ORGANIC_EVENTS],
            organic_purchases=cols[state_layout.OUT_ORGANIC_PURCHASES],
            browsing=detail if browsing else None,
        )

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (checkpoints, subprocess envs) without the work arrays: they hold no state."""
        state = self.__dict__.copy()
        state["_work"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._work = None  # rebuilt by the kernels' own layout on the next step

    def _scratch(self, n: int) -> dict[str, Any]:
        """Work arrays for a batch of n users, kept between steps (fresh large arrays cost page faults)."""
        if self._work is None or self._work["out"].shape[0] != n:
            k, w = self.config.num_slots, self.config.max_user_categories
            self._work = {
                "out": np.zeros((n, state_layout.NUM_OUT), F32),
                # per slot: position bias (0: not displayed) and estimate; the page's slots, best
                # first, and their true categories
                "work": (
                    np.zeros((n, k), F32),
                    np.zeros((n, k), np.float64),
                    np.zeros((n, k), np.int64),
                    np.zeros((n, k), np.int64),
                ),
                "browsing": Browsing.allocate(n, w),
                "no_obs": np.zeros((0, self.config.obs_size), F32),
            }
        return self._work

    def fade_interest(self, state: SimState, hours: NDArray[np.float32]) -> None:
        """Decay every user's true interest and the system's estimate over ``hours`` (shape (N,)).

        I ← b + (I - b)·e^{-λΔ}: the same compiled code as between visits (used for the fidelity start).
        """
        hours = np.ascontiguousarray(hours, F32)
        self._run("fade", len(hours), hours, state.cats)

    # -- what the agent sees -------------------------------------------------------------
    def predicted_interest(self, state: SimState) -> NDArray[np.float32]:
        """The system's estimate per slot (observation block 0; 0 in empty slots), shape (N, K)."""
        obs = np.empty((state.num_users, self.config.obs_size), F32)
        self.observe(state, obs)
        return obs[:, : self.config.num_slots].copy()

    def observe(
        self, state: SimState, out: NDArray[np.float32], rows: NDArray[np.intp] | None = None
    ) -> None:
        """Write observations into ``out`` (shape (N, K·F + U)), for all users or only ``rows``.

        Layout (``envs.layout``, feature-major): block f = ``out[:, f*K:(f+1)*K]`` holds feature
        ``ITEM_FEATURES[f]`` of the K candidates; the last U entries are ``USER_FEATURES``. Every
        value is in [0, 1].
        """
        rows = np.arange(state.num_users) if rows is None else np.asarray(rows, np.intp)
        self._run(
            "observe", len(rows), rows, out, self._params, state.counters, state.user, state.cats,
            state.present, state.flat_uc, state.slots,
        )  # fmt: skip

    def hidden(self, state: SimState) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """The hidden truth per slot, for the oracle baseline only; 0 for empty slots.

        Returns:
            (category interest, click multiplier click_scale·quality·appeal), each shape (N, K).
        """
        interest = state.interest.ravel().take(state.flat_uc)
        interest *= state.present
        return interest, slots_masked(state.slots[state_layout.APPEAL], state.present)


def slots_masked(values: NDArray[np.float32], present: NDArray[np.bool_]) -> NDArray[np.float32]:
    """``values`` with empty slots set to 0 (a copy)."""
    return values * present
