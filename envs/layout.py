"""The observation's layout, defined once: its blocks, their order and how each is scaled.

The flat observation is K candidate blocks then U user features, feature-major: block f,
``obs[f*K:(f+1)*K]``, holds item feature f of the K candidates, so
``obs[:K*F].reshape(F, K).T`` gives one row per candidate. The compiled step writes it
(``envs.kernels``), the config sizes it (``SimConfig.obs_size``), and the policies and the
per-item network read it (``agents.policy``, ``agents.per_item_policy``), all from here.

Counts c are squashed as c/(c + s) and durations h as h/(h + s), with the scales below; the
per-user visit index as v/(v + horizon) and recent unanswered exposures as r/(r + M).
"""

from __future__ import annotations

ITEM_FEATURES = (
    "predicted_interest",  # the system's estimate, aware of purchases (capped at 1)
    "time_since_category_engagement",  # hours since the user last engaged with the item's category
    "exposures",  # exposures of the item so far
    "clicks",  # clicks on the item so far
    "purchases",  # purchases of the item so far
    "exposures_since_click",  # exposures since the item's last click
    "empty",  # 1 = no candidate in this slot
    "item_age",  # hours since the item entered the user's candidate pool
    "item_value",  # the item's purchase margin
)
USER_FEATURES = (
    "visit_index",  # visits so far
    "recent_unanswered",  # halving average of unanswered exposures per visit
    "empty_slots",  # fraction of empty slots
)
NUM_ITEM_FEATURES = len(ITEM_FEATURES)
NUM_USER_FEATURES = len(USER_FEATURES)

# item blocks, in the order of ITEM_FEATURES
(
    PREDICTED_INTEREST_BLOCK,
    HOURS_SINCE_ENGAGEMENT_BLOCK,
    EXPOSURES_BLOCK,
    CLICKS_BLOCK,
    PURCHASES_BLOCK,
    UNANSWERED_BLOCK,
    EMPTY_BLOCK,
    AGE_BLOCK,
    VALUE_BLOCK,
) = range(NUM_ITEM_FEATURES)
# user features, after the K·F item features, in the order of USER_FEATURES
VISIT_FEATURE, UNANSWERED_USER_FEATURE, EMPTY_SHARE_FEATURE = range(NUM_USER_FEATURES)

# squashing scales s of x/(x + s)
HOURS_SCALE = 24.0  # hours since the category's last engagement
COUNT_SCALE = 5.0  # exposures, clicks, purchases, exposures since the last click
AGE_SCALE = 720.0  # item age, hours
VALUE_SCALE = 1.0  # item value


def obs_size(num_slots: int) -> int:
    """Length of the flat observation for K candidate slots: K·F + U."""
    return num_slots * NUM_ITEM_FEATURES + NUM_USER_FEATURES
