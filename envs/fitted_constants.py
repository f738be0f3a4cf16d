"""The simulator's constants fitted on a behaviour log, loaded once as one object.

``SimConfig`` keeps one flat field per constant, so that ``gymnasium.make(id, gap_log_mean=...)``
and ``SimConfig.replace`` work as for any other field; the defaults of those fields come from
:func:`taobao`, which reads ``envs/fitted/taobao.json`` once per process. The file says what
each group of values was fitted on and how. :data:`FITTED_FIELDS` names the ``SimConfig``
fields such a fit sets: ``decaygym-build-sim`` sets the activity ones from a team's own log
(``envs.build``) and chooses the engagement ones by cross-validation (``envs.calibration``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

ACTIVITY_FIELDS: tuple[str, ...] = (
    "session_gap_h",
    "gap_log_mean",
    "gap_log_user_sd",
    "gap_residual_quantiles",
    "events_log_mean",
    "events_log_user_sd",
    "explore_per_visit",
    "organic_purchase_rate",
    "purchase_rate",
    "engagement_budget",
    "engagement_budget_user_sd",
)
"""The ``SimConfig`` fields the activity fit sets (``decay_model.activity``, ``envs.build``)."""
ENGAGEMENT_FIELDS: tuple[str, ...] = ("engagement_scale", "engagement_gap_power", "engagement_lift")
"""The ``SimConfig`` fields chosen against the fidelity report (``envs.calibration``)."""
FITTED_FIELDS: tuple[str, ...] = ACTIVITY_FIELDS + ENGAGEMENT_FIELDS
CLICKED_QUALITY = 0.5
"""E[quality | click] = (a + 1)/(a + b + 1) for the default quality ~ Beta(2, 3): clicks favour
good items, so P(purchase | click) = purchase_rate · quality has the log's view-to-buy conversion
as its mean over clicked items when purchase_rate = view_to_buy / CLICKED_QUALITY."""
TAOBAO_FILE = Path(__file__).with_name("fitted") / "taobao.json"


@dataclass(frozen=True)
class FittedConstants:
    """One log's fitted values, with what they were fitted on and how."""

    log: str
    """The log the values come from."""
    activity: str
    """How the activity values were fitted."""
    engagement: str
    """How the engagement constants were chosen."""
    values: MappingProxyType[str, Any]
    """The fit's own quantities (``view_to_buy``, ``repeat_per_visit``, ... as fitted)."""

    def sim_fields(self) -> dict[str, Any]:
        """The values as ``SimConfig`` fields (every name of :data:`FITTED_FIELDS`)."""
        v = self.values
        fields = {name: v[name] for name in FITTED_FIELDS if name in v}
        fields["gap_residual_quantiles"] = tuple(v["gap_residual_quantiles"])
        fields["purchase_rate"] = v["view_to_buy"] / CLICKED_QUALITY
        fields["engagement_budget"] = v["repeat_per_visit"]
        fields["engagement_budget_user_sd"] = v["repeat_user_sd"]
        return fields


def read_fitted(path: Path) -> FittedConstants:
    """The constants in a JSON file of ``envs/fitted/``'s form."""
    data = json.loads(path.read_text())
    return FittedConstants(
        log=data["log"],
        activity=data["activity"],
        engagement=data["engagement"],
        values=MappingProxyType(dict(data["values"])),
    )


@functools.cache
def taobao() -> FittedConstants:
    """The Taobao log's constants, the defaults of ``SimConfig`` (read once per process)."""
    return read_fitted(TAOBAO_FILE)
