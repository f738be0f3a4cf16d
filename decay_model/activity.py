"""How often users come back and how much they do per visit: the activity model.

The decay model says *which* categories a user is drawn to and how fast that fades;
this module says *when* the user visits and *how much* they browse, fitted on the
same logs. Events are split into visits (sessions) wherever one user is inactive
for more than ``session_gap_h`` hours (0.5 by default, the usual choice for web logs).

Per user, from the visits in a window:

- **return time**: the time from one visit's start to the next, minus the
  ``session_gap_h`` of inactivity that a new visit needs, is log-normal:
  log(G - session_gap_h) ~ N(μ_u, σ²). μ_u is the user's mean log gap, shrunk toward
  the population mean by empirical Bayes (users with few visits get the mean); σ is
  the pooled within-user sd.
- **events per engaged category**: in a visit, a category the user engages with gets
  1 + Geometric events; the user's mean e_u (the mean of events beyond the first) is
  shrunk the same way, and summarised over users on the log scale of e_u - 1.
- **exploration**: how many categories per visit are new to the user (never seen in
  their history before that visit), after a burn-in that lets the history fill.
- **purchase rate** per event, and the **view-to-buy conversion**: of the items a user
  viewed, the share they bought after the first view (what a click on a recommended item,
  which opens the item's page, turns into).

``fit_activity`` returns per-user parameters (for bootstrapping real users into the
simulator) and their population distribution (for drawing new users); the simulator's
built-in defaults are this fit on the Taobao log (``envs.config``), and the fidelity
report refits it on whatever log it is pointed at.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from decay_model.errors import DataValidationError
from decay_model.logs.schema import BEHAVIORS

HOUR = 3600.0
RESIDUAL_PROBS = np.linspace(0.0, 1.0, 41)
"""Probabilities at which the within-user log-gap residuals are summarised (0, 0.025, ..., 1); the
ends are taken at 0.005 and 0.995, so that one extreme gap does not stretch a whole tail."""
VIEW, CLICK, BUY = BEHAVIORS.index("view"), BEHAVIORS.index("click"), BEHAVIORS.index("buy")


@dataclass(frozen=True)
class ActivitySummary:
    """Population distribution of the activity parameters (all on the scales named).

    Attributes:
        session_gap_h: inactivity that ends a visit, hours.
        gap_log_mean: mean over users of μ_u = E log(gap - session_gap_h) (gap in hours).
        gap_log_user_sd: sd over users of μ_u (between users, after removing sampling noise).
        gap_log_sd: σ, the within-user sd of log(gap - session_gap_h).
        gap_residual_quantiles: quantiles (at ``RESIDUAL_PROBS``) of the within-user residuals of
            log(gap - session_gap_h): days and nights make them far from normal, so the
            simulator draws from these rather than from N(0, σ²).
        events_log_mean: mean over users of log(e_u - 1), e_u the user's (shrunk) mean events per
            engaged category.
        events_log_user_sd: sd over users of log(e_u - 1).
        explore_per_visit: mean number of categories per visit that are new to the user.
        purchase_rate: purchases per event.
        view_to_buy: of the (user, item) pairs with a view or click in the window, the share in
            which the user bought the item at or after the first view (NaN without item ids).
        categories_per_visit: mean distinct categories per visit (new or not).
        repeat_per_visit: mean over users of r_u, the user's (shrunk) mean number of categories
            per visit that they had engaged before (visits after the burn-in; NaN without any).
        repeat_user_sd: sd over users of r_u (between users, after removing sampling noise).
        n_users: users in the fit.
        n_visits: visits in the fit.
    """

    session_gap_h: float
    gap_log_mean: float
    gap_log_user_sd: float
    gap_log_sd: float
    gap_residual_quantiles: tuple[float, ...]
    events_log_mean: float
    events_log_user_sd: float
    explore_per_visit: float
    purchase_rate: float
    view_to_buy: float
    categories_per_visit: float
    repeat_per_visit: float
    repeat_user_sd: float
    n_users: int
    n_visits: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class ActivityFit:
    """Per-user activity parameters and their population summary.

    Attributes:
        per_user: one row per user: ``user_id``, ``gap_log_mu`` (μ_u, shrunk), ``events_mean``
            (e_u, events per engaged category, shrunk), ``repeat_per_visit`` (r_u, categories
            engaged before, per visit after the burn-in, shrunk; NaN for users without such a
            visit), ``n_visits``, ``last_event`` (seconds).
        summary: the population distribution.
    """

    per_user: pd.DataFrame
    summary: ActivitySummary


def sessions(events: pd.DataFrame, session_gap_h: float = 0.5) -> pd.Series:
    """Visit id of every event (events sorted by user and time): a new visit after > session_gap_h idle."""
    users = events["user_id"].to_numpy()
    ts = events["timestamp"].to_numpy().astype(np.float64)
    new = np.ones(len(events), dtype=bool)
    if len(events) > 1:
        new[1:] = (users[1:] != users[:-1]) | (np.diff(ts) > session_gap_h * HOUR)
    return pd.Series(np.cumsum(new) - 1, index=events.index)


def _shrink(values: pd.Series, groups: pd.Series) -> tuple[pd.Series, float, float, float]:
    """Empirical-Bayes means per group: (shrunk means, population mean, between sd, within sd)."""
    stats = values.groupby(groups).agg(["mean", "count"])
    grand = float(stats["mean"].mean())  # the mean user, not the mean observation (busy users have more)
    within_var = float(values.groupby(groups).var(ddof=1).dropna().mean()) if len(values) > 1 else 0.0
    within_var = within_var if np.isfinite(within_var) else 0.0
    # between-user variance by moments: var of user means minus the average sampling variance
    means, counts = stats["mean"], stats["count"]
    sampling = within_var / counts
    between_var = max(float(means.var(ddof=1)) - float(sampling.mean()), 0.0) if len(means) > 1 else 0.0
    weight = between_var / (between_var + sampling) if between_var > 0 else sampling * 0.0
    return grand + weight * (means - grand), grand, float(np.sqrt(between_var)), float(np.sqrt(within_var))


def _view_to_buy(events: pd.DataFrame) -> float:
    """Share of the (user, item) pairs with a view or click that the user bought at or after it."""
    behavior = events["behavior"].to_numpy()
    looked = (behavior == VIEW) | (behavior == CLICK)
    key = ["user_id", "item_id"]
    first_view = events.loc[looked].groupby(key, sort=False)["timestamp"].min()
    if first_view.empty:
        return float("nan")
    last_buy = events.loc[behavior == BUY].groupby(key, sort=False)["timestamp"].max()
    bought = last_buy.reindex(first_view.index).to_numpy() >= first_view.to_numpy()
    return float(bought.mean())


def fit_activity(
    events: pd.DataFrame,
    start: float,
    end: float,
    session_gap_h: float = 0.5,
    burn_in_h: float = 48.0,
) -> ActivityFit:
    """Fit the activity model on the events in [start, end) (seconds).

    Args:
        events: canonical log events (``user_id``, ``category_id``, ``behavior``, ``timestamp``).
        start: window start, seconds.
        end: window end, seconds (the fit never reads events at or after it).
        session_gap_h: inactivity that ends a visit, hours.
        burn_in_h: exploration is counted only in visits this long after ``start``, so that
            a category counts as new only against at least that much history.

    Raises:
        DataValidationError: when the window holds no user with two visits.
    """
    if not end > start:
        raise DataValidationError(f"activity fit: window end {end} must be after its start {start}")
    ts = events["timestamp"].to_numpy()
    in_window = (ts >= start) & (ts < end)
    view_to_buy = _view_to_buy(events.loc[in_window]) if "item_id" in events else float("nan")
    ev = events.loc[in_window, ["user_id", "category_id", "behavior", "timestamp"]]
    ev = ev.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    ev["visit"] = sessions(ev, session_gap_h).to_numpy()
    visits = ev.groupby("visit", sort=True).agg(user_id=("user_id", "first"), t=("timestamp", "min"))
    same = visits["user_id"].to_numpy()[1:] == visits["user_id"].to_numpy()[:-1]
    gap_h = np.diff(visits["t"].to_numpy().astype(np.float64)) / HOUR
    gaps = pd.DataFrame({"user_id": visits["user_id"].to_numpy()[:-1][same], "g": gap_h[same]})
    if gaps.empty:
        raise DataValidationError(
            f"activity fit: no user has two visits in the window [{start}, {end}) (sessions split at "
            f"{session_gap_h} h of inactivity)"
        )
    log_gap = np.log(np.maximum(gaps["g"] - session_gap_h, 1.0 / 60.0))
    gap_mu, gap_mean, gap_between, gap_within = _shrink(pd.Series(log_gap), gaps["user_id"])
    # within-user residuals, around the users' raw means (not the shrunk ones, which would add
    # the between-user spread); users with one gap have no residual
    raw = pd.Series(log_gap).groupby(gaps["user_id"].to_numpy())
    size = raw.transform("size").to_numpy().astype(np.float64)
    many = size > 1
    resid = (np.asarray(log_gap, np.float64) - raw.transform("mean").to_numpy())[many]
    resid = resid * np.sqrt(size[many] / (size[many] - 1))  # undo the shrink of centring on the own mean
    probs = np.clip(RESIDUAL_PROBS, 0.005, 0.995)
    quantiles = tuple(round(float(q), 3) for q in np.quantile(resid, probs)) if len(resid) else (0.0, 0.0)

    per_cat = ev.groupby(["visit", "category_id"], sort=False).agg(
        user_id=("user_id", "first"), n=("timestamp", "size")
    )
    extra = pd.Series(per_cat["n"].to_numpy() - 1.0)  # events beyond the first, per engaged category
    ev_mu, ev_mean, _, _ = _shrink(extra, per_cat["user_id"].reset_index(drop=True))
    log_extra = np.log(np.maximum(ev_mu.to_numpy(), 1e-3))

    first_seen = ev.groupby(["user_id", "category_id"])["timestamp"].transform("min")
    ev["new"] = ev["timestamp"].to_numpy() == first_seen.to_numpy()
    late = ev[ev["timestamp"].to_numpy() >= start + burn_in_h * HOUR]
    per_visit = (  # per late visit: the user, its categories, and how many of them were new
        late.groupby(["visit", "category_id"])
        .agg(user_id=("user_id", "first"), new=("new", "max"))
        .groupby(level=0)
        .agg(user_id=("user_id", "first"), new=("new", "sum"), cats=("new", "size"))
        .reset_index(drop=True)
    )
    by_visit = per_visit["new"]
    if len(per_visit):  # categories the user had engaged before, per visit (shrunk per user)
        repeat = (per_visit["cats"] - per_visit["new"]).astype(np.float64)
        rep_mu, rep_mean, rep_between, _ = _shrink(repeat, per_visit["user_id"])
    else:
        rep_mu, rep_mean, rep_between = pd.Series(dtype=np.float64), float("nan"), float("nan")
    users = visits.groupby("user_id").agg(n_visits=("t", "size"))
    per_user = pd.DataFrame(
        {
            "user_id": users.index.to_numpy(),
            "gap_log_mu": gap_mu.reindex(users.index, fill_value=gap_mean).to_numpy(),
            "events_mean": 1.0 + ev_mu.reindex(users.index, fill_value=ev_mean).to_numpy(),
            "repeat_per_visit": rep_mu.reindex(users.index).to_numpy(),
            "n_visits": users["n_visits"].to_numpy(),
            "last_event": ev.groupby("user_id")["timestamp"].max().reindex(users.index).to_numpy(),
        }
    )
    summary = ActivitySummary(
        session_gap_h=float(session_gap_h),
        gap_log_mean=gap_mean,
        gap_log_user_sd=gap_between,
        gap_log_sd=gap_within,
        gap_residual_quantiles=quantiles,
        events_log_mean=float(log_extra.mean()),
        events_log_user_sd=float(log_extra.std()),
        explore_per_visit=float(by_visit.mean()) if len(by_visit) else 0.0,
        purchase_rate=float((ev["behavior"].to_numpy() == BUY).mean()),
        view_to_buy=view_to_buy,
        categories_per_visit=float(len(per_cat) / len(visits)),
        repeat_per_visit=rep_mean,
        repeat_user_sd=rep_between,
        n_users=len(users),
        n_visits=len(visits),
    )
    return ActivityFit(per_user=per_user, summary=summary)
