"""The simulator's dynamics as compiled loops over users: one visit, the observation, a refill.

This is the one implementation of the dynamics (see ``envs.dynamics`` for the model in
words). Each kernel is a ``prange`` loop over users whose body touches only that user's
rows, so a user's numbers never depend on the batch; the same source is compiled twice,
serial (small batches, where waking threads costs more than it saves) and parallel.

Random draws are counter-based and 64-bit: word j of a stream is ``mix(base + (j + 1)·φ)``
(``envs.rng``, bit for bit), computed only when the dynamics need it. A candidate's draws are
keyed by its id, a fresh candidate's by its arrival order, never by the slot it sits in.
Arithmetic is float64 in registers and float32 in the state arrays; no fast-math, so results
are exact IEEE and the same on every run and batch size.

The observation layout comes from ``envs.layout``; Numba freezes those module constants into
its on-disk cache of this file, so a change there needs a change here (or a cleared cache).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from envs import layout, rng
from envs.config import MAX_EXPLORE
from envs.state_layout import (  # the packed state's layout, shared with envs.dynamics
    ANNOYANCE,
    APPEAL,
    ARRIVED,
    BUDGET,
    BUY,
    BUYP,
    BUYS,
    CAND_BUY,
    CAND_CLICK,
    CAND_REDUCE,
    CLICK,
    CLICKS,
    CLOCK,
    EPISODE,
    ESTIMATE,
    EVENTS_EXTRA,
    EXPECTED,
    EXPO,
    FATIGUE,
    FLOOR,
    FRESH_FIELDS,
    GAP_MU,
    INTEREST,
    KEY,
    LAM,
    LAST_ENGAGED,
    LAST_GAP,
    NEXT_ID,
    NUM_SLOT_FIELDS,
    OUT_CLICK_REWARD,
    OUT_CLICKS,
    OUT_GAP_H,
    OUT_ORGANIC_EVENTS,
    OUT_ORGANIC_PURCHASES,
    OUT_PURCHASE_REWARD,
    OUT_PURCHASES,
    OUT_REWARD,
    OUT_SLOT_COST,
    OUT_SLOTS_USED,
    P_ANNOYANCE_PER_EXPOSURE,
    P_APPEAL_POWER,
    P_CHURN_ANNOYANCE,
    P_CHURN_LOGIT,
    P_CHURN_SATISFACTION,
    P_CLICK_LIFT,
    P_CLICK_VALUE,
    P_ENGAGEMENT_BUDGET,
    P_ENGAGEMENT_GAP_POWER,
    P_ENGAGEMENT_LIFT,
    P_ENGAGEMENT_SCALE,
    P_ESTIMATE_PRIOR_CLICKS,
    P_EXPLORE_CHANCE,
    P_EXPOSURE_SLOTS,
    P_FATIGUE_PER_EXPOSURE,
    P_FATIGUE_RATE,
    P_FRESH_PER_VISIT,
    P_HORIZON,
    P_ITEMS_PER_CATEGORY,
    P_LOG1M_ORGANIC_BUY,
    P_MEAN_CLICK_MULT,
    P_MOOD_RATE,
    P_PURCHASE_SATIATION,
    P_PURCHASE_VALUE_SCALE,
    P_REDUCE_DISPLAY_PROB,
    P_RETURN_GAP_MIN_FRACTION,
    P_RETURN_SATISFACTION,
    P_SATIATION_RATE,
    P_SATISFACTION_PER_CLICK,
    P_SATISFACTION_PER_PURCHASE,
    P_SESSION_GAP_H,
    P_SLOT_COST,
    RECENT,
    SAT,
    SATISFACTION,
    SINCE,
    USER_WORDS,
    VALUE,
    VIEW,
    VISIT,
    WORD_CHURN,
    WORD_GAP,
)

# observation blocks and scales (envs.layout), as plain constants for the compiled code
B_PRED, B_HOURS, B_EXPO, B_CLICKS, B_BUYS, B_SINCE, B_EMPTY, B_AGE, B_VALUE = (
    layout.PREDICTED_INTEREST_BLOCK,
    layout.HOURS_SINCE_ENGAGEMENT_BLOCK,
    layout.EXPOSURES_BLOCK,
    layout.CLICKS_BLOCK,
    layout.PURCHASES_BLOCK,
    layout.UNANSWERED_BLOCK,
    layout.EMPTY_BLOCK,
    layout.AGE_BLOCK,
    layout.VALUE_BLOCK,
)
U_VISIT, U_UNANSWERED, U_EMPTY = (
    layout.VISIT_FEATURE,
    layout.UNANSWERED_USER_FEATURE,
    layout.EMPTY_SHARE_FEATURE,
)
NUM_ITEM_FEATURES = layout.NUM_ITEM_FEATURES
HOURS_SCALE, COUNT_SCALE, AGE_SCALE, VALUE_SCALE = (
    layout.HOURS_SCALE,
    layout.COUNT_SCALE,
    layout.AGE_SCALE,
    layout.VALUE_SCALE,
)
# the slot fields observed as counts, and their blocks
COUNTED = ((EXPO, B_EXPO), (CLICKS, B_CLICKS), (BUYS, B_BUYS), (SINCE, B_SINCE))

_M1, _M2, _GOLDEN = rng.M1, rng.M2, rng.GOLDEN
_ONE = np.uint64(1)
_S11, _S27, _S30, _S31 = np.uint64(11), np.uint64(27), np.uint64(30), np.uint64(31)
_EPISODE_SHIFT, _VISIT_SHIFT = rng.EPISODE_SHIFT, rng.VISIT_SHIFT
_VISIT = np.uint64(rng.DRAW_VISIT)
_CANDIDATE = np.uint64(rng.DRAW_CANDIDATE)
_REFILL = np.uint64(rng.DRAW_REFILL)
_START = np.uint64(rng.DRAW_START)
_TO_UNIT = rng.TO_UNIT
_ALMOST_1 = 1.0 - 1e-6
_BOUND_SLACK = 1.0 + 1e-9  # keeps a bound on a probability safely above its rounded value


# -- counter-based random words (bit-identical to envs.rng) -------------------------------------
@njit(cache=True)
def _mix(x: np.uint64) -> np.uint64:
    x ^= x >> _S30
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


@njit(cache=True)
def _stream(key: np.uint64, episode: np.uint64, visit: np.uint64, purpose: np.uint64) -> np.uint64:
    counter = (np.uint64(episode) << _EPISODE_SHIFT) | (np.uint64(visit) << _VISIT_SHIFT) | purpose
    return _mix(_mix(counter) ^ np.uint64(key))


@njit(cache=True)
def _word(base: np.uint64, index: int) -> np.uint64:
    return _mix(np.uint64(base) + (np.uint64(index) + _ONE) * _GOLDEN)


@njit(cache=True)
def _unit(word: np.uint64) -> float:
    """A word to a uniform strictly inside (0, 1) (top 53 bits), as ``rng.to_unit``."""
    return (float(np.uint64(word) >> _S11) + 0.5) * _TO_UNIT


@njit(cache=True)
def _uniform(base: np.uint64, index: int) -> float:
    return _unit(_word(base, index))


# -- pieces of a visit ----------------------------------------------------------------------------
@njit(cache=True)
def _search(cdf, x):
    """``np.searchsorted(cdf, x)`` (side left) for one value, without an array round trip."""
    lo, hi = 0, len(cdf)
    while lo < hi:
        mid = (lo + hi) >> 1
        if cdf[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def _fill_slot(i, k, base, j, par, item_table, counters, user, cat, cats, present, flat_uc, item, uid, slots):
    """The j-th fresh, cold candidate of stream ``base`` into slot k of user i.

    Its category is drawn in proportion to the system's estimate, its item uniformly in it,
    from words 3j, 3j + 1, 3j + 2 (the arrival order, not the slot); it gets the user's next id.
    """
    width = cats.shape[2]
    w = width - 1
    per_cat = int(par[P_ITEMS_PER_CATEGORY])
    u0 = _uniform(base, 3 * j)
    u1 = _uniform(base, 3 * j + 1)
    u2 = _uniform(base, 3 * j + 2)
    total = np.float32(0.0)
    for c in range(w):
        total += cats[ESTIMATE, i, c]
    target = u0 * total
    col = 0
    acc = np.float32(0.0)
    for c in range(w - 1):
        acc += cats[ESTIMATE, i, c]
        if acc >= target:
            break
        col = c + 1
    it = cat[i, col] * per_cat + min(int(u1 * per_cat), per_cat - 1)
    slots[APPEAL, i, k] = item_table[0, it] * (u2 / (1.0 - u2)) ** par[P_APPEAL_POWER]  # hidden appeal
    slots[BUYP, i, k] = item_table[1, it]
    slots[VALUE, i, k] = item_table[2, it]
    slots[ARRIVED, i, k] = user[CLOCK, i]
    for f in range(FRESH_FIELDS, NUM_SLOT_FIELDS):
        slots[f, i, k] = 0.0
    present[i, k] = True
    flat_uc[i, k] = i * width + col
    item[i, k] = it
    uid[i, k] = counters[NEXT_ID, i]
    counters[NEXT_ID, i] += _ONE


@njit(cache=True, inline="always")
def _record(i, hist, category, behavior, count, clock):
    """Append ``count`` events to user i's ring of recent events (read when users are re-encoded)."""
    h_cat, h_beh, h_time, h_n = hist
    size = h_cat.shape[1]
    if size == 0:
        return
    for _ in range(min(count, size)):
        pos = h_n[i] % size
        h_cat[i, pos] = category
        h_beh[i, pos] = behavior
        h_time[i, pos] = clock
        h_n[i] += 1


@njit(cache=True, inline="always")
def _fade(i, hours, cats):
    """I ← b + (I - b)·e^{-λΔ} for user i's true interest and the system's estimate."""
    for c in range(cats.shape[2]):
        f = math.exp(-cats[LAM, i, c] * hours)
        b = cats[FLOOR, i, c]
        cats[INTEREST, i, c] = b + (cats[INTEREST, i, c] - b) * f
        cats[ESTIMATE, i, c] = b + (cats[ESTIMATE, i, c] - b) * f


@njit(cache=True, inline="always")
def _events(base, index_count, index_buy, log_more, log1m_buy):
    """1 + Geometric events (P(more) = e^{log_more}) and whether at least one was a purchase."""
    count = math.floor(math.log(_uniform(base, index_count)) / log_more) + 1.0
    buy = 1.0 if _uniform(base, index_buy) < -math.expm1(count * log1m_buy) else 0.0
    return count, buy


@njit(cache=True, inline="always")
def _browse(
    i, base, par, share_cdf, cat_lam, cat_floor, user, cat, cats, present, flat_uc, ev, eb, xc, xe, xb, hist
):
    """Step 1: the user's own browsing (tracked categories, then new ones); returns (events, buys)."""
    b0 = USER_WORDS  # first browsing word
    width = cats.shape[2]
    w = width - 1
    e = MAX_EXPLORE
    clock = user[CLOCK, i]
    expo = par[P_ENGAGEMENT_SCALE] * (user[LAST_GAP, i] / 24.0) ** par[P_ENGAGEMENT_GAP_POWER]
    engaged = 0  # bit c: tracked category c engaged, with chance q = 1 - (1 - I)^expo
    if par[P_ENGAGEMENT_BUDGET] > 0.0:  # budget mode: the chances scaled to sum to the user's r_u
        budget = user[BUDGET, i]
        total = 0.0
        for c in range(w):
            total += 1.0 - (1.0 - min(cats[INTEREST, i, c], _ALMOST_1)) ** expo
        scale = budget / total if total > 0.0 else 0.0
        for c in range(w):
            x = min(cats[INTEREST, i, c], _ALMOST_1)
            u = _uniform(base, b0 + c)
            # the same bound as below: the power again only where the decision could go either way
            if u < expo * x / (1.0 - x) * _BOUND_SLACK * scale and u < (1.0 - (1.0 - x) ** expo) * scale:
                engaged |= 1 << c
    else:
        for c in range(w):
            x = min(cats[INTEREST, i, c], _ALMOST_1)
            u = _uniform(base, b0 + c)
            # q <= expo·I/(1 - I) (as 1 - e^{-y} <= y and -log(1 - I) <= I/(1 - I)): the power only if needed
            if u < expo * x / (1.0 - x) * _BOUND_SLACK and u < 1.0 - (1.0 - x) ** expo:
                engaged |= 1 << c
    active = 0
    for t in range(e):
        if _uniform(base, b0 + 3 * w + t) < par[P_EXPLORE_CHANCE]:
            active |= 1 << t
    if engaged == 0 and active == 0:  # a visit is a visit because something was browsed: the nearest miss
        best, best_ratio = 0, -1.0
        for c in range(w):
            q = 1.0 - (1.0 - min(cats[INTEREST, i, c], _ALMOST_1)) ** expo
            ratio = q / _uniform(base, b0 + c)
            if ratio > best_ratio:
                best, best_ratio = c, ratio
        engaged = 1 << best
    extra = user[EVENTS_EXTRA, i]
    log_more = math.log(extra / (1.0 + extra)) if extra > 0 else -math.inf
    events, buys = 0.0, 0.0
    lift = par[P_ENGAGEMENT_LIFT]
    for c in range(w):
        if engaged >> c & 1:
            count, buy = _events(base, b0 + w + c, b0 + 2 * w + c, log_more, par[P_LOG1M_ORGANIC_BUY])
            ev[i, c] = count
            eb[i, c] = buy
            _record(i, hist, cat[i, c], VIEW, int(count - buy), clock)
            _record(i, hist, cat[i, c], BUY, int(buy), clock)
            events += count
            buys += buy
            cats[INTEREST, i, c] += lift * (1.0 - cats[INTEREST, i, c])
            cats[ESTIMATE, i, c] += lift * (1.0 - cats[ESTIMATE, i, c])
            cats[LAST_ENGAGED, i, c] = clock
        else:
            ev[i, c] = 0.0
            eb[i, c] = 0.0
    # new categories: the j-th active try replaces the j-th least interesting category not engaged now
    taken = engaged
    for t in range(e):
        xc[i, t] = -1
        xe[i, t] = 0.0
        xb[i, t] = 0.0
        if not active >> t & 1:
            continue
        col, low = -1, math.inf
        for c in range(w):
            if not taken >> c & 1 and cats[INTEREST, i, c] < low:
                col, low = c, cats[INTEREST, i, c]
        if col < 0:  # every tracked category is engaged or replaced already
            continue
        taken |= 1 << col
        u_cat = np.float32(_uniform(base, b0 + 3 * w + 3 * e + t))
        new = min(_search(share_cdf, u_cat), len(share_cdf) - 1)
        count, buy = _events(
            base, b0 + 3 * w + e + t, b0 + 3 * w + 2 * e + t, log_more, par[P_LOG1M_ORGANIC_BUY]
        )
        xc[i, t] = new
        xe[i, t] = count
        xb[i, t] = buy
        _record(i, hist, new, VIEW, int(count - buy), clock)
        _record(i, hist, new, BUY, int(buy), clock)
        events += count
        buys += buy
        uc = i * width + col
        for k in range(present.shape[1]):  # the replaced category's items become orphans
            if present[i, k] and flat_uc[i, k] == uc:
                flat_uc[i, k] = i * width + w
        floor = cat_floor[new]
        start = floor + lift * (1.0 - floor)
        cat[i, col] = new
        cats[LAM, i, col] = cat_lam[new]
        cats[FLOOR, i, col] = floor
        cats[INTEREST, i, col] = start
        cats[ESTIMATE, i, col] = start
        cats[LAST_ENGAGED, i, col] = clock
    return events, buys


@njit(cache=True, inline="always")
def _estimate(i, k, par, cats, flat_uc, slots):
    """The system's estimate of candidate k (observation block 0 before its cap at 1).

    The category's estimate × the item's Gamma-Poisson click-through (α + clicks) / (α + expected)
    × (1 - satiation).
    """
    col = flat_uc[i, k] - i * cats.shape[2]
    alpha = par[P_ESTIMATE_PRIOR_CLICKS]
    ctr = (slots[CLICKS, i, k] + alpha) / (slots[EXPECTED, i, k] + alpha)
    return cats[ESTIMATE, i, col] * ctr * (1.0 - slots[SAT, i, k])


@njit(cache=True, inline="always")
def _page(i, action, base_c, par, bias_table, cats, present, flat_uc, uid, slots, bias, score, order):
    """Step 3: the page. Writes each slot's position bias into ``bias[i]`` (0: not displayed).

    The policy decides exposure (show, or reduce and won its draw); the platform orders the shown
    candidates by its estimate (ties: the older candidate first), then the reduced ones likewise,
    and cuts at M positions. ``order[i, :n]`` gets the displayed slots, best first, and
    ``score[i, k]`` each ranked candidate's estimate. The ranking keeps only the best M at any
    time (an insertion into at most M entries), and the reduced candidates are not ranked at all
    once the shown ones fill the page: their draws are keyed by the candidate, so skipping them
    moves no other draw. Returns how many items are displayed.
    """
    k_slots = present.shape[1]
    m = int(par[P_EXPOSURE_SLOTS])
    for k in range(k_slots):
        bias[i, k] = 0.0
    n = 0
    start = 0
    for phase in range(2):  # 0: the shown candidates; 1: the reduced ones after them
        if phase == 1:
            if n >= m:
                break
            start = n
        for k in range(k_slots):
            if not present[i, k]:
                continue
            a = action[i, k]
            if phase == 0:
                if a != 0:
                    continue
            elif a != 1 or _uniform(base_c, 3 * uid[i, k] + CAND_REDUCE) >= par[P_REDUCE_DISPLAY_PROB]:
                continue
            key = _estimate(i, k, par, cats, flat_uc, slots)
            score[i, k] = key
            j = n  # its place among order[i, start:n]: by estimate, then by id
            while j > start:
                prev = order[i, j - 1]
                if score[i, prev] > key or (score[i, prev] == key and uid[i, prev] < uid[i, k]):
                    break
                j -= 1
            if j >= m:
                continue  # below the cut
            for q in range(min(n, m - 1), j, -1):
                order[i, q] = order[i, q - 1]
            order[i, j] = k
            n = min(n + 1, m)
    for p in range(n):
        bias[i, order[i, p]] = bias_table[p + 1]  # 1 / log2(1 + position)
    return n


@njit(cache=True, inline="always")
def _visit(
    i,
    action,
    par,
    tables,
    counters,
    user,
    alive,
    cat,
    cats,
    present,
    flat_uc,
    item,
    uid,
    slots,
    work,
    out,
    browsing,
    hist,
    obs,
):
    """One visit of user i (steps 1 to 9 of ``envs.dynamics``); returns whether the user left.

    Then the user's observation goes into ``obs[i]``, unless ``obs`` has no rows.
    """
    item_table, bias_table, crowd_table, share_cdf, cat_lam, cat_floor, gap_quantiles = tables
    bias, score, order, page_cat = work
    ev, eb, xc, xe, xb = browsing
    k_slots = present.shape[1]
    per_cat = int(par[P_ITEMS_PER_CATEGORY])
    width = cats.shape[2]
    w = width - 1
    key, episode, visit = counters[KEY, i], counters[EPISODE, i], counters[VISIT, i]
    base = _stream(key, episode, visit, _VISIT)
    base_c = _stream(key, episode, visit, _CANDIDATE)
    clock = user[CLOCK, i]

    # 1. browsing
    organic, organic_buys = _browse(
        i,
        base,
        par,
        share_cdf,
        cat_lam,
        cat_floor,
        user,
        cat,
        cats,
        present,
        flat_uc,
        ev,
        eb,
        xc,
        xe,
        xb,
        hist,
    )

    # 2. retire (the slot empties for good)
    for k in range(k_slots):
        if present[i, k] and action[i, k] == 2:
            present[i, k] = False
            for f in range(FRESH_FIELDS, NUM_SLOT_FIELDS):
                slots[f, i, k] = 0.0

    # 3. exposure: the page, ranked by the system's estimate
    n_shown = _page(
        i, action, base_c, par, bias_table, cats, present, flat_uc, uid, slots, bias, score, order
    )

    # 4. response, decided for the whole page before any interest moves; 6. the slot's counters
    n_click, n_buy, value = 0, 0, 0.0
    for p in range(n_shown):  # each displayed item's true category, once
        page_cat[i, p] = item[i, order[i, p]] // per_cat
    for k in range(k_slots):
        if bias[i, k] == 0.0:
            continue
        item_cat = item[i, k] // per_cat
        same = 0  # displayed items of the item's true category
        for p in range(n_shown):
            if page_cat[i, p] == item_cat:
                same += 1
        col = flat_uc[i, k] - i * width
        avail = 1.0 - slots[SAT, i, k]
        rate = crowd_table[same] * cats[INTEREST, i, col] * slots[APPEAL, i, k] * bias[i, k]
        rate *= math.exp(-slots[FATIGUE, i, k]) * avail
        # what the system expected of this exposure at click multiplier 1
        slots[EXPECTED, i, k] += cats[ESTIMATE, i, col] * bias[i, k] * avail * par[P_MEAN_CLICK_MULT]
        slots[EXPO, i, k] += 1.0
        if _uniform(base_c, 3 * uid[i, k] + CAND_CLICK) < -math.expm1(-rate):  # P(click) = 1 - e^{-rate}
            n_click += 1
            _record(i, hist, item_cat, CLICK, 1, clock)
            bias[i, k] = -bias[i, k]  # marks the click for the lift below
            slots[CLICKS, i, k] += 1.0
            slots[SINCE, i, k] = 0.0
            if _uniform(base_c, 3 * uid[i, k] + CAND_BUY) < slots[BUYP, i, k] * avail:
                n_buy += 1
                value += slots[VALUE, i, k]
                slots[BUYS, i, k] += 1.0
                slots[SAT, i, k] = par[P_PURCHASE_SATIATION]
                _record(i, hist, item_cat, BUY, 1, clock)
        else:
            slots[SINCE, i, k] += 1.0
            slots[FATIGUE, i, k] += par[P_FATIGUE_PER_EXPOSURE]
    # a click lifts its category (not the orphan column), and the system sees it
    keep = 1.0 - par[P_CLICK_LIFT]
    for k in range(k_slots):
        if bias[i, k] < 0.0:
            col = flat_uc[i, k] - i * width
            if col < w:
                cats[INTEREST, i, col] = 1.0 - (1.0 - cats[INTEREST, i, col]) * keep
                cats[ESTIMATE, i, col] = 1.0 - (1.0 - cats[ESTIMATE, i, col]) * keep
                cats[LAST_ENGAGED, i, col] = clock
    satisfaction = (
        user[SATISFACTION, i]
        + par[P_SATISFACTION_PER_CLICK] * n_click
        + par[P_SATISFACTION_PER_PURCHASE] * n_buy
    )
    unanswered = n_shown - n_click
    annoyance = user[ANNOYANCE, i] + par[P_ANNOYANCE_PER_EXPOSURE] * unanswered
    user[RECENT, i] = 0.5 * user[RECENT, i] + unanswered

    # 7. churn: σ(churn_logit + churn_annoyance·annoyance - churn_satisfaction·satisfaction)
    logit = par[P_CHURN_LOGIT] + par[P_CHURN_ANNOYANCE] * annoyance - par[P_CHURN_SATISFACTION] * satisfaction
    logit = min(max(logit, -60.0), 60.0)
    churned = _uniform(base, WORD_CHURN) * (1.0 + math.exp(-logit)) < 1.0
    if churned:
        alive[i] = False

    # 8. the gap to the next visit (the user's μ plus an empirical residual quantile), and time passes
    x = _uniform(base, WORD_GAP) * (len(gap_quantiles) - 1)
    j = min(int(x), len(gap_quantiles) - 2)
    resid = gap_quantiles[j] + (gap_quantiles[j + 1] - gap_quantiles[j]) * (x - j)
    f = par[P_RETURN_GAP_MIN_FRACTION]
    gap = math.exp(user[GAP_MU, i] + resid) * (
        f + (1.0 - f) * math.exp(-par[P_RETURN_SATISFACTION] * satisfaction)
    )
    gap = np.float32(gap + par[P_SESSION_GAP_H])
    user[LAST_GAP, i] = gap
    user[CLOCK, i] += gap
    _fade(i, gap, cats)
    fatigue_fade = math.exp(-par[P_FATIGUE_RATE] * gap)
    satiation_fade = math.exp(-par[P_SATIATION_RATE] * gap)
    for k in range(k_slots):
        slots[FATIGUE, i, k] *= fatigue_fade
        slots[SAT, i, k] *= satiation_fade
    mood = math.exp(-par[P_MOOD_RATE] * gap)
    user[ANNOYANCE, i] = annoyance * mood
    user[SATISFACTION, i] = satisfaction * mood

    # 9. retrieval for the next visit: at most R fresh candidates into the lowest empty slots
    counters[VISIT, i] = visit + _ONE
    base_r = _stream(key, episode, visit, _REFILL)
    filled = 0
    for k in range(k_slots):
        if filled == int(par[P_FRESH_PER_VISIT]):
            break
        if not present[i, k]:
            _fill_slot(
                i, k, base_r, filled, par, item_table, counters, user, cat, cats, present, flat_uc, item,
                uid, slots,
            )  # fmt: skip
            filled += 1

    # 5. reward, every term reported
    click_reward = par[P_CLICK_VALUE] * n_click
    purchase_reward = par[P_PURCHASE_VALUE_SCALE] * value
    cost = par[P_SLOT_COST] * n_shown
    out[i, OUT_REWARD] = click_reward + purchase_reward - cost
    out[i, OUT_CLICK_REWARD] = click_reward
    out[i, OUT_PURCHASE_REWARD] = purchase_reward
    out[i, OUT_SLOT_COST] = cost
    out[i, OUT_CLICKS] = n_click
    out[i, OUT_PURCHASES] = n_buy
    out[i, OUT_SLOTS_USED] = n_shown
    out[i, OUT_GAP_H] = gap
    out[i, OUT_ORGANIC_EVENTS] = organic
    out[i, OUT_ORGANIC_PURCHASES] = organic_buys
    if obs.shape[0]:  # the observation while the user's state is in cache
        _observe(i, obs[i], par, counters, user, cats, present, flat_uc, slots)
    return churned


@njit(cache=True, inline="always")
def _observe(i, o, par, counters, user, cats, present, flat_uc, slots):
    """Observation row of user i into ``o`` (feature-major blocks; see ``envs.layout``)."""
    k_slots = present.shape[1]
    width = cats.shape[2]
    clock = user[CLOCK, i]
    n_present = 0
    for k in range(k_slots):
        if present[i, k]:
            n_present += 1
            col = flat_uc[i, k] - i * width
            o[B_PRED * k_slots + k] = min(_estimate(i, k, par, cats, flat_uc, slots), 1.0)
            since = clock - cats[LAST_ENGAGED, i, col]
            o[B_HOURS * k_slots + k] = since / (since + HOURS_SCALE)
            age = clock - slots[ARRIVED, i, k]
            o[B_AGE * k_slots + k] = age / (age + AGE_SCALE)
            value = slots[VALUE, i, k]
            o[B_VALUE * k_slots + k] = value / (value + VALUE_SCALE)
            o[B_EMPTY * k_slots + k] = 0.0
        else:
            o[B_PRED * k_slots + k] = 0.0
            o[B_HOURS * k_slots + k] = 0.0
            o[B_AGE * k_slots + k] = 0.0
            o[B_VALUE * k_slots + k] = 0.0
            o[B_EMPTY * k_slots + k] = 1.0
        for (
            field,
            blk,
        ) in COUNTED:  # exposures, clicks, purchases, exposures since the last click (0 when empty)
            x = slots[field, i, k]
            o[blk * k_slots + k] = x / (x + COUNT_SCALE)
    u0 = NUM_ITEM_FEATURES * k_slots
    v = float(counters[VISIT, i])
    o[u0 + U_VISIT] = v / (v + par[P_HORIZON])
    r = user[RECENT, i]
    o[u0 + U_UNANSWERED] = r / (r + par[P_EXPOSURE_SLOTS])
    o[u0 + U_EMPTY] = (k_slots - n_present) / k_slots


# -- the kernels: loops over users ----------------------------------------------------------------
def _loops(parallel: bool) -> dict[str, Callable[..., Any]]:
    """The four loops over users, compiled serial (range) or parallel (prange) around the same code.

    Each gets a name of its own: Numba's on-disk cache keys a function by its name, not its flags.
    """
    loop = prange if parallel else range

    def step(
        action,
        churned,
        par,
        tables,
        counters,
        user,
        alive,
        cat,
        cats,
        present,
        flat_uc,
        item,
        uid,
        slots,
        work,
        out,
        browsing,
        hist,
        obs,
    ):
        for i in loop(action.shape[0]):
            churned[i] = _visit(
                i,
                action,
                par,
                tables,
                counters,
                user,
                alive,
                cat,
                cats,
                present,
                flat_uc,
                item,
                uid,
                slots,
                work,
                out,
                browsing,
                hist,
                obs,
            )

    def observe(rows, obs, par, counters, user, cats, present, flat_uc, slots):
        for j in loop(len(rows)):
            _observe(rows[j], obs[rows[j]], par, counters, user, cats, present, flat_uc, slots)

    def fill(rows, counters, par, item_table, user, cat, cats, present, flat_uc, item, uid, slots):
        for j in loop(len(rows)):
            _fill_user(
                rows[j], counters, par, item_table, user, cat, cats, present, flat_uc, item, uid, slots
            )

    def fade(hours, cats):
        for i in loop(len(hours)):
            _fade(i, float(hours[i]), cats)

    kind = "parallel" if parallel else "serial"
    compiled = {}
    for fn in (step, observe, fill, fade):
        fn.__qualname__ = f"{fn.__name__}_{kind}"
        compiled[fn.__name__] = njit(cache=True, parallel=parallel)(fn)
    return compiled


@njit(cache=True, inline="always")
def _fill_user(i, counters, par, item_table, user, cat, cats, present, flat_uc, item, uid, slots):
    """K fresh candidates (ids 0..K-1) for a user starting an episode."""
    base = _stream(counters[KEY, i], counters[EPISODE, i], counters[VISIT, i], _START)
    counters[NEXT_ID, i] = 0
    for k in range(present.shape[1]):
        _fill_slot(
            i, k, base, k, par, item_table, counters, user, cat, cats, present, flat_uc, item, uid, slots
        )


if not os.environ.get("NUMBA_THREADING_LAYER"):
    # Numba's OpenMP layer shares OpenMP's thread count with torch: its first parallel call sets
    # that count to Numba's, which silently changes torch's intra-op threads (and with them a
    # trained model's numbers) in every process that steps the simulator. The workqueue layer
    # keeps its own threads. A user's choice (NUMBA_THREADING_LAYER) is left alone.
    numba.config.THREADING_LAYER = "workqueue"

PARALLEL_FROM = {"step": 64, "observe": 2048, "fill": 2048, "fade": 2048}
"""Batches of at least this many users run on all of Numba's threads; smaller ones in the calling
thread (waking the threads costs more than a light loop over a few hundred users)."""

_SERIAL, _PARALLEL = _loops(False), _loops(True)
# Numba's workqueue threading layer must not run two parallel kernels at once: a batch
# that finds the threads busy (another Python thread stepping another env) runs serially instead
# (same numbers either way).
_THREADS = threading.Lock()


def run(name: str, num_users: int, *args: Any) -> None:
    """Run the compiled loop ``name`` (step, observe, fill or fade) on a batch of ``num_users``."""
    if num_users >= PARALLEL_FROM[name] and _THREADS.acquire(blocking=False):
        try:
            _PARALLEL[name](*args)
        finally:
            _THREADS.release()
    else:
        _SERIAL[name](*args)
