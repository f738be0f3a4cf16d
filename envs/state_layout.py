"""Where every field of the simulator's packed state lives, and what a visit reports.

The compiled step (``envs.kernels``), the state object (``envs.dynamics.SimState``) and the
reports that read the state (``envs.fidelity``, ``envs.reencode``) share these indices. No
Numba here: importing it is free, and ``import envs`` compiles nothing.
"""

from __future__ import annotations

# per-slot float fields of ``SimState.slots`` (S, N, K); see envs.dynamics.SLOT_FIELDS
APPEAL, BUYP, VALUE, ARRIVED, EXPO, CLICKS, BUYS, SINCE, EXPECTED, FATIGUE, SAT = range(11)
NUM_SLOT_FIELDS = 11
FRESH_FIELDS = EXPO  # fields set when a candidate arrives; the rest are counters

# per-user outputs of a visit, columns of ``out`` (N, NUM_OUT)
(
    OUT_REWARD,
    OUT_CLICK_REWARD,
    OUT_PURCHASE_REWARD,
    OUT_SLOT_COST,
    OUT_CLICKS,
    OUT_PURCHASES,
    OUT_SLOTS_USED,
    OUT_GAP_H,
    OUT_ORGANIC_EVENTS,
    OUT_ORGANIC_PURCHASES,
) = range(10)
NUM_OUT = 10

# words of a visit's DRAW_VISIT stream: churn, return gap, then browsing: engage, count, buy per
# tracked category (3W), then per exploration try: active, events, buy, category (4 x MAX_EXPLORE).
# A candidate's words (DRAW_CANDIDATE stream) are 3·id + CAND_REDUCE / CAND_CLICK / CAND_BUY.
WORD_CHURN, WORD_GAP = 0, 1
USER_WORDS = 2
CAND_REDUCE, CAND_CLICK, CAND_BUY = 0, 1, 2

PARAM_FIELDS = (
    "num_slots",
    "exposure_slots",
    "fresh_per_visit",
    "items_per_category",
    "reduce_display_prob",
    "click_value",
    "purchase_value_scale",
    "slot_cost",
    "click_lift",
    "purchase_satiation",
    "fatigue_per_exposure",
    "annoyance_per_exposure",
    "satisfaction_per_click",
    "satisfaction_per_purchase",
    "churn_logit",
    "churn_annoyance",
    "churn_satisfaction",
    "return_satisfaction",
    "return_gap_min_fraction",
    "session_gap_h",
    "explore_chance",
    "log1m_organic_buy",
    "engagement_scale",
    "engagement_gap_power",
    "engagement_lift",
    "estimate_prior_clicks",
    "mean_click_mult",
    "appeal_power",
    "fatigue_rate",
    "satiation_rate",
    "mood_rate",
    "horizon",
    "engagement_budget",
)
(
    P_NUM_SLOTS,
    P_EXPOSURE_SLOTS,
    P_FRESH_PER_VISIT,
    P_ITEMS_PER_CATEGORY,
    P_REDUCE_DISPLAY_PROB,
    P_CLICK_VALUE,
    P_PURCHASE_VALUE_SCALE,
    P_SLOT_COST,
    P_CLICK_LIFT,
    P_PURCHASE_SATIATION,
    P_FATIGUE_PER_EXPOSURE,
    P_ANNOYANCE_PER_EXPOSURE,
    P_SATISFACTION_PER_CLICK,
    P_SATISFACTION_PER_PURCHASE,
    P_CHURN_LOGIT,
    P_CHURN_ANNOYANCE,
    P_CHURN_SATISFACTION,
    P_RETURN_SATISFACTION,
    P_RETURN_GAP_MIN_FRACTION,
    P_SESSION_GAP_H,
    P_EXPLORE_CHANCE,
    P_LOG1M_ORGANIC_BUY,
    P_ENGAGEMENT_SCALE,
    P_ENGAGEMENT_GAP_POWER,
    P_ENGAGEMENT_LIFT,
    P_ESTIMATE_PRIOR_CLICKS,
    P_MEAN_CLICK_MULT,
    P_APPEAL_POWER,
    P_FATIGUE_RATE,
    P_SATIATION_RATE,
    P_MOOD_RATE,
    P_HORIZON,
    P_ENGAGEMENT_BUDGET,
) = range(33)
assert len(PARAM_FIELDS) == P_ENGAGEMENT_BUDGET + 1
"""The scalars the kernels read, as one float64 vector ``par`` (``par[P_CLICK_LIFT]`` in a kernel)."""

# behaviour codes of the canonical log schema (decay_model.logs.BEHAVIORS)
VIEW, CLICK, BUY = 0, 1, 4

# -- rows of the packed arrays (see envs.dynamics.SimState) --------------------------------------
KEY, EPISODE, VISIT, NEXT_ID = range(4)  # rows of the uint64 counters (4, N)
# rows of user (8, N)
CLOCK, ANNOYANCE, SATISFACTION, RECENT, GAP_MU, EVENTS_EXTRA, LAST_GAP, BUDGET = range(8)
LAM, FLOOR, INTEREST, ESTIMATE, LAST_ENGAGED = range(5)  # rows of the per-category floats (5, N, W + 1)
