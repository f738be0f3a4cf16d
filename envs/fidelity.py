"""How closely the simulator reproduces real users: the fidelity report.

The real users of a log's test period are simulated from their own histories and
compared with what they really did. One set of statistics is computed, by the same
code, on the real events of the window and on the simulated ones:

- **time between visits**: events are split into visits (sessions) wherever one user
  is inactive for more than ``gap_h`` hours (default 0.5); the statistic is the time
  from the start of one visit to the start of the user's next visit in the window, hours.
- **events per user**: engagement events of each cohort user in the window (users
  without any count as 0).
- **purchase rate per engagement**: purchases / engagement events in the window. On
  the real side every logged row (view, click, cart, fav, buy) is one engagement event
  and ``buy`` rows are the purchases; on the simulated side every click is one event
  and every purchase one more (as a real purchase is logged as its own row after the
  item's page view).
- **category re-engagement curve**: one *engagement* is a (user, category, visit) with
  at least one event, timed at the last such event of the visit. For a horizon t it
  counts as re-engaged if the user engages with that category again in a *later*
  visit within t hours. Only engagements with time + t before the window's end count
  toward horizon t, so both sides see the same censoring.

Who is compared (the *cohort*): the users with at least one event before the test
start, i.e. the users the decay model can encode. The real side reads their events
in [test_start, end); the simulated side runs each of them exactly once.

How the simulated side is made:

1. ``ExponentialDecay`` is fitted on the log's training period (its validation period
   tunes the shrinkage; the test period is never read), or a fitted model is passed in.
2. Every cohort user is encoded at the test start (training + validation history) with
   ``model.encode(log, at=test_start)`` and bootstrapped with
   ``Population.from_encoded``, one simulated user per real user (user i of the
   batch is real user i, not a random draw).
3. The batched step of the vector env (``envs.dynamics.Simulator``, the one
   ``InterestDecayVectorEnv`` runs) is driven directly, so that a user who churns stays
   gone instead of being auto-reset into a new user. Policy: **always show** (action 0
   on every slot): the top M candidates are displayed at every visit, nothing is
   reduced or retired. The real log was produced by Taobao's own recommender, which
   cannot be replayed; always-show is the simplest fixed policy and the report says so.
   Under it the candidate pool never changes (nothing is retired), so item fatigue and
   purchase satiation wear the same few items down; ``policy="refresh"`` (retire every
   candidate once displayed, so fresh ones arrive each visit) is offered for comparison.
4. A user's first simulated visit is at test_start + an Exponential(``return_gap_h``)
   offset (the gap of a neutral user, drawn from ``seed``; the simulator's own clock
   starts at its first visit), later visits follow the simulated ``gap_h``. Every
   click is an event ``click`` of the displayed item's category, every purchase an
   event ``buy``, stamped with the visit's time. Events after the window's end are cut.

This module measures; it does not calibrate (see ``SimConfig`` for the knobs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats as sps

from decay_model.activity import fit_activity
from decay_model.errors import ConfigError, DataValidationError
from decay_model.logs import BEHAVIORS, BehaviourLog
from decay_model.task import HOUR, EvalTask, TaskConfig
from envs import rng
from envs.config import SimConfig
from envs.dynamics import SimState, Simulator
from envs.population import Population, population_stream
from envs.state_layout import BUYS, CLICKS, EXPO

__all__ = [
    "CURVE_HOURS",
    "FIDELITY_SPLIT",
    "HORIZONS_H",
    "KS_TARGET",
    "POLICIES",
    "REL_TARGET",
    "Cohort",
    "FidelityReport",
    "Statistic",
    "WindowStats",
    "compare",
    "fidelity_report",
    "fit_decay",
    "prepare_cohort",
    "reengagement_curve",
    "report_on",
    "sessionize",
    "simulate_cohort",
    "window_stats",
]

HORIZONS_H: tuple[float, ...] = (1.0, 24.0, 72.0)
"""Re-engagement horizons of the table, hours."""
CURVE_HOURS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0, 36.0, 48.0, 72.0)
"""Horizons of the re-engagement overlay plot, hours."""
KS_TARGET = 0.1
"""The target for the KS distances (time between visits, events per user)."""
REL_TARGET = 0.2
"""The target for the relative errors (purchase rate, re-engagement at 1, 24, 72 h)."""
FIDELITY_SPLIT = TaskConfig(train_days=4.0, valid_days=1.0, test_days=4.0)
"""The fidelity script's default split: the last 4 days are compared (the 72 h point needs room)."""
POLICIES: tuple[str, ...] = ("always_show", "refresh")
"""Fixed exposure policies the simulated side can run (see ``simulate_cohort``)."""

CLICK = BEHAVIORS.index("click")
VIEW = BEHAVIORS.index("view")
BUY = BEHAVIORS.index("buy")


# ------------------------------------------------------------------------------------------
# statistics of one event frame (real or simulated)
# ------------------------------------------------------------------------------------------


def sessionize(events: pd.DataFrame, gap_h: float = 0.5) -> NDArray[np.int64]:
    """Visit number of every event: a new visit starts after more than ``gap_h`` hours of inactivity.

    Args:
        events: columns ``user_id`` and ``timestamp`` (seconds), sorted by (user_id, timestamp).
        gap_h: inactivity that ends a visit, hours.

    Returns:
        Global visit ids (0, 1, ...), non-decreasing along the frame, shape (len(events),).
    """
    if gap_h <= 0:
        raise ValueError(f"gap_h must be > 0, got {gap_h!r}")
    users = events["user_id"].to_numpy()
    ts = events["timestamp"].to_numpy().astype(np.float64)
    new = np.ones(len(events), dtype=bool)
    if len(events) > 1:
        new[1:] = (users[1:] != users[:-1]) | (np.diff(ts) > gap_h * HOUR)
    return np.cumsum(new) - 1


def _engagements(events: pd.DataFrame, visit: NDArray[np.int64]) -> pd.DataFrame:
    """One row per (user, category, visit): first and last event time of the category there."""
    frame = pd.DataFrame(
        {
            "user_id": events["user_id"].to_numpy(),
            "category_id": events["category_id"].to_numpy(),
            "visit": visit,
            "t": events["timestamp"].to_numpy().astype(np.float64),
        }
    )
    eng = (
        frame.groupby(["user_id", "category_id", "visit"], sort=True)["t"]
        .agg(first="min", last="max")
        .reset_index()
    )
    return eng.sort_values(["user_id", "category_id", "first"], kind="stable").reset_index(drop=True)


def reengagement_curve(
    engagements: pd.DataFrame, end: float, hours: Sequence[float]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """P(re-engagement with the category in a later visit within t) and its denominator, per t.

    Args:
        engagements: from ``_engagements`` (sorted by user, category, first time).
        end: end of the window, seconds: an engagement counts toward t only if last + t <= end.
        hours: the horizons t.

    Returns:
        (rate per horizon, NaN where no engagement is eligible; eligible engagements per horizon).
    """
    users = engagements["user_id"].to_numpy()
    cats = engagements["category_id"].to_numpy()
    last = engagements["last"].to_numpy()
    first = engagements["first"].to_numpy()
    delay = np.full(len(engagements), np.inf)
    if len(engagements) > 1:
        same = (users[1:] == users[:-1]) & (cats[1:] == cats[:-1])
        delay[:-1] = np.where(same, first[1:] - last[:-1], np.inf)
    rates, counts = [], []
    for h in hours:
        eligible = last + h * HOUR <= end
        n = int(eligible.sum())
        counts.append(n)
        rates.append(float((delay[eligible] <= h * HOUR).mean()) if n else float("nan"))
    return np.asarray(rates), np.asarray(counts, dtype=np.int64)


@dataclass(frozen=True)
class WindowStats:
    """The statistics of one side (real or simulated) over one window.

    Attributes:
        gaps_h: time between consecutive visit starts of one user, hours.
        events_per_user: engagement events per cohort user (0 for users without any).
        n_events: engagement events in the window.
        n_purchases: purchases in the window.
        n_visits: visits in the window.
        curve_hours: horizons of ``curve``, hours.
        curve: re-engagement rate per horizon (NaN where nothing is eligible).
        curve_n: eligible engagements per horizon.
    """

    gaps_h: NDArray[np.float64]
    events_per_user: NDArray[np.int64]
    n_events: int
    n_purchases: int
    n_visits: int
    curve_hours: tuple[float, ...]
    curve: NDArray[np.float64]
    curve_n: NDArray[np.int64]

    @property
    def purchase_rate(self) -> float:
        """Purchases per engagement event (NaN without events)."""
        return self.n_purchases / self.n_events if self.n_events else float("nan")

    def reengagement(self, hours: float) -> float:
        """The curve at one of its horizons."""
        return float(self.curve[self.curve_hours.index(float(hours))])


def window_stats(
    events: pd.DataFrame,
    start: float,
    end: float,
    users: Sequence[Any] | NDArray[Any],
    gap_h: float = 0.5,
    curve_hours: Sequence[float] = CURVE_HOURS,
) -> WindowStats:
    """Statistics of the cohort's events in [start, end) (see the module docstring for definitions).

    Args:
        events: columns ``user_id``, ``category_id``, ``behavior`` (codes of ``BEHAVIORS``) and
            ``timestamp`` (seconds); any order.
        start: window start, seconds (inclusive).
        end: window end, seconds (exclusive).
        users: the cohort; events of other users are ignored.
        gap_h: inactivity that ends a visit, hours.
        curve_hours: horizons of the re-engagement curve, hours (must include those read later).
    """
    if not end > start:
        raise DataValidationError(f"fidelity window: end {end} must be after start {start}")
    cohort = np.unique(np.asarray(users))
    ts = events["timestamp"].to_numpy()
    keep = (ts >= start) & (ts < end) & np.isin(events["user_id"].to_numpy(), cohort)
    ev = events.loc[keep, ["user_id", "category_id", "behavior", "timestamp"]]
    ev = ev.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    visit = sessionize(ev, gap_h)
    # visit starts, in order: consecutive starts of one user give the gaps
    is_start = np.ones(len(ev), dtype=bool)
    if len(ev) > 1:
        is_start[1:] = visit[1:] != visit[:-1]
    start_user = ev["user_id"].to_numpy()[is_start]
    start_t = ev["timestamp"].to_numpy().astype(np.float64)[is_start]
    same_user = start_user[1:] == start_user[:-1]
    gaps_h = (np.diff(start_t)[same_user] / HOUR).astype(np.float64)
    per_user = ev.groupby("user_id").size().reindex(cohort, fill_value=0).to_numpy().astype(np.int64)
    curve, curve_n = reengagement_curve(_engagements(ev, visit), end, curve_hours)
    return WindowStats(
        gaps_h=gaps_h,
        events_per_user=per_user,
        n_events=len(ev),
        n_purchases=int((ev["behavior"].to_numpy() == BUY).sum()),
        n_visits=int(is_start.sum()),
        curve_hours=tuple(float(h) for h in curve_hours),
        curve=curve,
        curve_n=curve_n,
    )


# ------------------------------------------------------------------------------------------
# the simulated side
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cohort(Population):
    """Real users bootstrapped one to one: the user with key ``key0 + i`` is real user i."""

    key0: int = 0

    def draw(
        self, config: SimConfig, key: NDArray[np.uint64], episode: NDArray[np.uint64]
    ) -> dict[str, NDArray[Any]]:
        """Real user ``key - key0`` for every key (episodes do not matter: nobody is reset)."""
        pick = (np.asarray(key, np.uint64) - np.uint64(self.key0)).astype(np.int64)
        return self.pick_real(config, pick, population_stream(key, episode))


def fit_decay(log: BehaviourLog, task_config: TaskConfig | None = None, fit_config: Any = None) -> Any:
    """``ExponentialDecay`` fitted on the log's training period (validation tunes its shrinkage)."""
    from decay_model.exponential import ExponentialDecay

    return ExponentialDecay(fit_config).fit(EvalTask(log, task_config))


def simulate_cohort(
    encoded: pd.DataFrame,
    start: float,
    end: float,
    config: SimConfig | None = None,
    seed: int = 0,
    max_visits: int = 100_000,
    policy: str = "always_show",
    activity: pd.DataFrame | None = None,
    population: Population | None = None,
) -> pd.DataFrame:
    """Simulate every encoded user once over [start, end) under a fixed policy; their events.

    Args:
        encoded: ``model.encode(log, at=start)`` (decay_model.population's contract).
        start: window start, seconds; the simulated clock begins here.
        end: window end, seconds.
        config: the simulator's config (default ``SimConfig()``).
        seed: seeds the users' random streams and their first-visit times.
        max_visits: safety cap on simulated visits per user.
        policy: one of ``POLICIES``: ``always_show`` (action 0 on every slot, the report's
            default) or ``refresh`` (retire every candidate once it has been displayed, so that
            up to ``fresh_per_visit`` new ones arrive per visit; a crude stand-in for a feed).
        activity: ``decay_model.activity.fit_activity(...).per_user`` fitted before ``start``:
            each user's own return time and browsing depth (without it users draw them from the
            config). A user's first visit is one gap after their last real event, drawn from their
            return-time distribution, conditioned on the time since their last real event.
        population: ``Population.from_encoded(encoded, config.max_user_categories,
            activity=activity)`` when the caller already built it (the same cohort simulated again).

    Returns:
        Events with columns ``user_id`` (the real ids), ``category_id`` (the real ids),
        ``behavior`` (codes of ``BEHAVIORS``: the user's browsing as ``view`` and ``buy``, the
        agent's page as ``click`` and ``buy``) and ``timestamp`` (float seconds). Its ``attrs``
        count the simulated ``visits`` in the window, the users who ``churned`` there and those
        ``capped`` by ``max_visits`` (still visiting).
    """
    config = config or SimConfig()
    if policy not in POLICIES:
        raise ConfigError(f"fidelity policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    base = population or Population.from_encoded(
        encoded, config.max_user_categories, source="fidelity cohort", activity=activity
    )
    user_ids = np.unique(encoded["user_id"].to_numpy())  # the order from_encoded uses
    n = len(user_ids)
    key0 = int(rng.key_from_seed(seed))
    population = _Cohort(**base.__dict__, key0=key0)
    sim = Simulator(config, population)
    state = SimState.allocate(n, config)
    state.key[:] = np.uint64(key0) + np.arange(n, dtype=np.uint64)
    sim.reset_users(state, np.arange(n))
    gen = np.random.default_rng(seed)
    # first visit: one return gap after the user's last real event, conditioned to end after
    # ``start`` (what a renewal process with the user's gaps says, given the time already gone)
    last = np.full(n, float(start))
    if activity is not None:
        seen = activity.set_index("user_id")["last_event"].reindex(user_ids).to_numpy(np.float64)
        last = np.where(np.isfinite(seen), seen, last)
    beyond_h = np.maximum((start - last) / HOUR - config.session_gap_h, 1e-6)
    mu = state.gap_mu.astype(np.float64)
    quant = np.asarray(config.gap_residual_quantiles, np.float64)
    probs = np.linspace(0.0, 1.0, len(quant))
    lo = np.interp(np.log(beyond_h) - mu, quant, probs)  # P(gap <= the time already gone)
    u = lo + (1 - lo) * gen.uniform(size=n)
    gap_h = config.session_gap_h + np.exp(mu + np.interp(u, probs, quant))
    t0 = last + gap_h * HOUR
    state.last_gap_h[:] = gap_h.astype(np.float32)
    # the encoded interest is as of start: let it fade until the first visit
    sim.fade_interest(state, ((t0 - start) / HOUR).astype(np.float32))
    names = np.asarray([int(c) for c in population.names], dtype=np.int64)
    per_cat = config.items_per_category
    action = np.zeros((n, config.num_slots), np.int64)  # always show
    frames: list[pd.DataFrame] = []

    def emit(rows: NDArray[np.intp], cats: NDArray[np.int64], counts: NDArray[Any], behavior: int) -> None:
        reps = np.asarray(counts, dtype=np.int64)
        keep = reps > 0
        rows, cats, reps = rows[keep], cats[keep], reps[keep]
        if reps.size:
            frames.append(
                pd.DataFrame(
                    {
                        "user_id": np.repeat(user_ids[rows], reps),
                        "category_id": np.repeat(names[cats], reps),
                        "behavior": np.full(int(reps.sum()), behavior, np.int8),
                        "timestamp": np.repeat(when[rows], reps),
                    }
                )
            )

    visits = 0
    churned = np.zeros(n, dtype=bool)
    active = np.zeros(n, dtype=bool)
    for visit_no in range(max_visits + 1):
        when = t0 + (state.clock_h.astype(np.float64)) * HOUR
        active = state.alive & (when < end)
        if not active.any() or visit_no == max_visits:
            break
        visits += int(active.sum())
        if policy == "refresh":
            action = np.where(state.slots[EXPO] > 0, 2, 0).astype(np.int64)
        before = state.slots[[CLICKS, BUYS]].copy()
        item_cat = (state.item // per_cat).astype(np.int64)  # (N, K): category of every slot's item
        res = sim.step(state, action, browsing=True)
        churned |= active & ~state.alive
        gone = ~active
        # the user's own browsing: events of the tracked categories engaged (one of them a purchase)
        br = res.browsing
        assert br is not None
        rows, cols = np.nonzero((br.engaged_events > 0) & active[:, None])
        cats = state.cat[rows, cols].astype(np.int64)
        emit(rows, cats, br.engaged_events[rows, cols] - br.engaged_buys[rows, cols], VIEW)
        emit(rows, cats, br.engaged_buys[rows, cols], BUY)
        rows, cols = np.nonzero((br.explore_cat >= 0) & active[:, None])
        cats = br.explore_cat[rows, cols]
        emit(rows, cats, br.explore_events[rows, cols] - br.explore_buys[rows, cols], VIEW)
        emit(rows, cats, br.explore_buys[rows, cols], BUY)
        # the agent's page: clicks, and a purchase as one more row
        delta = state.slots[[CLICKS, BUYS]] - before
        delta[:, gone] = 0
        for behavior, d in ((CLICK, delta[0]), (BUY, delta[1])):
            rows, cols = np.nonzero(d > 0)
            emit(rows, item_cat[rows, cols], d[rows, cols], behavior)
    counts = {"visits": visits, "churned": int(churned.sum()), "capped": int(active.sum())}
    if frames:
        out = pd.concat(frames, ignore_index=True)
        out = out.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    else:
        out = pd.DataFrame({"user_id": [], "category_id": [], "behavior": [], "timestamp": []})
    out.attrs.update(counts)
    return out


# ------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statistic:
    """One row of the fidelity table.

    Attributes:
        name: machine name (key of fidelity.json).
        label: for people.
        simulated, real: the value on each side (the median for distributions).
        distance: KS distance (``metric`` "ks") or relative error |sim - real| / real.
        metric: "ks" or "relative_error".
        target: the issue's threshold for ``distance``.
        n_simulated, n_real: how many observations each side has.
    """

    name: str
    label: str
    simulated: float
    real: float
    distance: float
    metric: str
    target: float
    n_simulated: int
    n_real: int

    @property
    def passed(self) -> bool:
        """Whether the distance meets the target (False when it is NaN)."""
        return bool(math.isfinite(self.distance) and self.distance <= self.target)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, NaN as None."""

        def clean(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {
            "label": self.label,
            "simulated": clean(self.simulated),
            "real": clean(self.real),
            "distance": clean(self.distance),
            "metric": self.metric,
            "target": self.target,
            "pass": self.passed,
            "n_simulated": self.n_simulated,
            "n_real": self.n_real,
        }


@dataclass(frozen=True)
class FidelityReport:
    """Real against simulated statistics of one log's test period.

    Attributes:
        statistics: the table's rows, in order.
        real, simulated: the full statistics of each side (for plots).
        window: (start, end) of the compared window, epoch seconds.
        n_users: cohort size.
        info: how it was made (policy, gap, config, counts), for fidelity.json.
    """

    statistics: list[Statistic]
    real: WindowStats
    simulated: WindowStats
    window: tuple[int, int]
    n_users: int
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """fidelity.json's content."""
        return {
            "statistics": {s.name: s.to_dict() for s in self.statistics},
            "window": {"start": self.window[0], "end": self.window[1]},
            "n_users": self.n_users,
            "curve": {
                "hours": list(self.real.curve_hours),
                "real": [None if math.isnan(x) else float(x) for x in self.real.curve],
                "simulated": [None if math.isnan(x) else float(x) for x in self.simulated.curve],
            },
            **self.info,
        }


def _ks(a: NDArray[Any], b: NDArray[Any]) -> float:
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(sps.ks_2samp(a, b).statistic)


def _rel(sim: float, real: float) -> float:
    if not (math.isfinite(sim) and math.isfinite(real)) or real == 0:
        return float("nan")
    return abs(sim - real) / abs(real)


def _median(x: NDArray[Any]) -> float:
    return float(np.median(x)) if len(x) else float("nan")


def compare(real: WindowStats, sim: WindowStats, horizons: Sequence[float] = HORIZONS_H) -> list[Statistic]:
    """The table's rows from the two sides' statistics."""
    rows = [
        Statistic(
            "time_between_visits_h",
            "time between visits (h, median)",
            _median(sim.gaps_h),
            _median(real.gaps_h),
            _ks(sim.gaps_h, real.gaps_h),
            "ks",
            KS_TARGET,
            len(sim.gaps_h),
            len(real.gaps_h),
        ),
        Statistic(
            "events_per_user",
            "events per user (median)",
            _median(sim.events_per_user),
            _median(real.events_per_user),
            _ks(sim.events_per_user, real.events_per_user),
            "ks",
            KS_TARGET,
            len(sim.events_per_user),
            len(real.events_per_user),
        ),
        Statistic(
            "purchase_rate",
            "purchase rate per engagement",
            sim.purchase_rate,
            real.purchase_rate,
            _rel(sim.purchase_rate, real.purchase_rate),
            "relative_error",
            REL_TARGET,
            sim.n_events,
            real.n_events,
        ),
    ]
    for h in horizons:
        j = real.curve_hours.index(float(h))
        rows.append(
            Statistic(
                f"reengagement_{h:g}h",
                f"category re-engagement within {h:g} h",
                sim.reengagement(h),
                real.reengagement(h),
                _rel(sim.reengagement(h), real.reengagement(h)),
                "relative_error",
                REL_TARGET,
                int(sim.curve_n[j]),
                int(real.curve_n[j]),
            )
        )
    return rows


@dataclass
class Cohort:
    """What a fidelity report reads from the log, whatever the simulator's config.

    Prepared once, so that many configs (``envs.calibration``'s grid) are simulated without
    encoding the log, fitting the activity or measuring the real side again.

    Attributes:
        encoded: the cohort encoded at the test start (``model.encode(log, at=start)``).
        activity: per-user activity fitted on the days before the test (``fit_activity(...).per_user``).
        real: the real side's statistics of the window.
        window: (start, end) of the test period, epoch seconds.
        gap_h: inactivity that ends a visit, hours.
        test_users_without_history: test-period users the model cannot encode (not in the cohort).
        task_config: how the log was split.
    """

    encoded: pd.DataFrame
    activity: pd.DataFrame
    real: WindowStats
    window: tuple[int, int]
    gap_h: float
    test_users_without_history: int
    task_config: TaskConfig
    _populations: dict[int, Population] = field(default_factory=dict, repr=False)

    @property
    def users(self) -> NDArray[Any]:
        """The cohort's user ids, sorted (user i of a simulation is ``users[i]``)."""
        return np.unique(self.encoded["user_id"].to_numpy())

    def population(self, width: int) -> Population:
        """The cohort bootstrapped for users tracking ``width`` categories (built once per width)."""
        if width not in self._populations:
            self._populations[width] = Population.from_encoded(
                self.encoded, width, source="fidelity cohort", activity=self.activity
            )
        return self._populations[width]


def prepare_cohort(
    log: BehaviourLog,
    model: Any = None,
    task_config: TaskConfig | None = None,
    gap_h: float = 0.5,
    fit_config: Any = None,
) -> Cohort:
    """Split the log, encode its test-period cohort, fit their activity and measure the real side.

    Args are those of :func:`fidelity_report`.
    """
    from decay_model.task import make_split

    task_config = task_config or TaskConfig()
    split = make_split(log, task_config)
    start, end = int(split.test_start), int(split.end)
    if model is None:
        model = fit_decay(log, task_config, fit_config)
    encoded = model.encode(log, at=start)
    users = np.unique(encoded["user_id"].to_numpy())
    activity = fit_activity(log.events, split.train_start, start, session_gap_h=gap_h)
    curve_hours = sorted(set(CURVE_HOURS) | set(HORIZONS_H))
    real = window_stats(log.events, start, end, users, gap_h, curve_hours)
    test_users = np.unique(log.events.loc[log.events["timestamp"] >= start, "user_id"].to_numpy())
    return Cohort(
        encoded=encoded,
        activity=activity.per_user,
        real=real,
        window=(start, end),
        gap_h=gap_h,
        test_users_without_history=len(np.setdiff1d(test_users, users)),
        task_config=task_config,
    )


def fidelity_report(
    log: BehaviourLog,
    model: Any = None,
    config: SimConfig | None = None,
    seed: int = 0,
    task_config: TaskConfig | None = None,
    gap_h: float = 0.5,
    fit_config: Any = None,
    policy: str = "always_show",
) -> FidelityReport:
    """Simulate the test period's users from their histories and compare with the real events.

    Args:
        log: any log in the canonical schema.
        model: a fitted decay model with ``encode(log, at)``; default: ``ExponentialDecay`` fitted
            on the log's training period (with ``fit_config``).
        config: the simulator's config (default ``SimConfig()``).
        seed: seed of the simulated users.
        task_config: how the log is split (default ``TaskConfig()``: the last 2 days are the test).
        gap_h: inactivity that ends a visit, hours.
        fit_config: ``DecayFitConfig`` of the default fit.
        policy: the simulated side's fixed policy (``POLICIES``; default always show).
    """
    return report_on(prepare_cohort(log, model, task_config, gap_h, fit_config), config, seed, policy)


def report_on(
    cohort: Cohort, config: SimConfig | None = None, seed: int = 0, policy: str = "always_show"
) -> FidelityReport:
    """The fidelity report of one simulator config on a prepared cohort (see :func:`fidelity_report`)."""
    config = config or SimConfig()
    start, end = cohort.window
    users, gap_h = cohort.users, cohort.gap_h
    sim_events = simulate_cohort(
        cohort.encoded,
        start,
        end,
        config,
        seed,
        policy=policy,
        activity=cohort.activity,
        population=cohort.population(config.max_user_categories),
    )
    curve_hours = sorted(set(CURVE_HOURS) | set(HORIZONS_H))
    real = cohort.real
    sim = window_stats(sim_events, start, end, users, gap_h, curve_hours)
    info = {
        "policy": {
            "always_show": "always show (action 0 on every slot; nothing reduced or retired)",
            "refresh": "refresh (retire every candidate once displayed; fresh ones arrive each visit)",
        }[policy],
        "session_gap_h": gap_h,
        "seed": seed,
        "definitions": {
            "visit": f"events of one user with no pause longer than {gap_h} h",
            "time_between_visits_h": "start of a visit to the start of the user's next visit in the window",
            "events_per_user": "engagement events per cohort user in the window (0 included)",
            "purchase_rate": "purchases / engagement events (real: buy rows / all rows; "
            "simulated: purchases / (clicks + purchases))",
            "reengagement": "(user, category, visit) engagements followed by the same category in a later "
            "visit within t; only engagements at least t before the window end",
        },
        "cohort": {
            "users": len(users),
            "real_active_in_window": int((real.events_per_user > 0).sum()),
            "simulated_active_in_window": int((sim.events_per_user > 0).sum()),
            "test_users_without_history": cohort.test_users_without_history,
            "simulated_visits_with_or_without_clicks": sim_events.attrs.get("visits"),
            "simulated_churned_in_window": sim_events.attrs.get("churned"),
            "simulated_capped_by_max_visits": sim_events.attrs.get("capped"),
        },
        "counts": {
            "real": {"events": real.n_events, "purchases": real.n_purchases, "visits": real.n_visits},
            "simulated": {"events": sim.n_events, "purchases": sim.n_purchases, "visits": sim.n_visits},
        },
        "sim_config": config.to_dict(),
        "task_config": cohort.task_config.to_dict(),
    }
    return FidelityReport(
        statistics=compare(real, sim),
        real=real,
        simulated=sim,
        window=(start, end),
        n_users=len(users),
        info=info,
    )
