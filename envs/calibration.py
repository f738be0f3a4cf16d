"""Choosing the engagement constants out of sample: cross-validation over the log's users.

The simulator's return times, browsing depth and purchase rate are fitted per user on the
log's training period (``decay_model.activity``). Three constants of the browsing model are
not: ``engagement_scale`` (κ), ``engagement_gap_power`` (β) and ``engagement_lift``. They
map the decay model's 24 h engagement chance to a per-visit one and say how much a visit
re-ignites a category, and the fidelity report is most sensitive to them.

A 9-day log is too short to choose them on a window before the test period and meet the
test period with the same amount of history (a window 5 days in leaves 2 days of history
and a decay model fitted on 1 day: a different regime). So they are chosen out of sample
over *users*: the fidelity cohort is split at random (seeded) into k groups; every grid
point is simulated on every group; fold f chooses the point with the best mean score on the
other groups and is judged on group f, which played no part in its choice. The final
choice is the best mean score over all groups, and the folds say how well such a choice
carries over to users it has not seen. The decay model is fitted once on the training
period of the whole log (it never reads the test period).

The choice must earn its place. When the base config's constants are a grid point (as in
``DEFAULT_GRID``), the grid's best point replaces them only when choosing that way carries over:
the folds' held-out score of the points chosen without each group beats the base constants'
score on the same groups. Otherwise the grid's minimum is noise (on the Taobao log, where budget
mode makes these constants matter little, the points chosen per fold score 0.560 on their
held-out groups against the shipped constants' 0.511), and the base constants are kept;
``Calibration.kept_base`` says which happened.

Score of a report: the mean over its statistics of distance / target (below 1 when the
statistics meet their targets on average), averaged over the seeds. The worst ratio is kept
too, but is not used to choose: it follows the noisiest statistic (on the Taobao slice the
1 h re-engagement point) and chose points that did worse on held-out users.

Sampling noise: ``noise_floor`` compares the *real* events of each group with those of
the rest of the cohort. A perfect simulator would still be this far from a group of that
size, so a distance near the floor cannot be told from noise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from decay_model.errors import ConfigError
from decay_model.logs import BehaviourLog
from decay_model.task import TaskConfig, make_split
from envs.config import SimConfig
from envs.fidelity import (
    CURVE_HOURS,
    FIDELITY_SPLIT,
    HORIZONS_H,
    Cohort,
    FidelityReport,
    compare,
    fit_decay,
    prepare_cohort,
    report_on,
    window_stats,
)

__all__ = [
    "DEFAULT_GRID",
    "FIDELITY_SPLIT",
    "KNOBS",
    "Calibration",
    "Fold",
    "GridPoint",
    "calibrate",
    "noise_floor",
    "score",
    "split_users",
    "subset",
]

KNOBS: tuple[str, ...] = ("engagement_scale", "engagement_gap_power", "engagement_lift")
"""The constants chosen here (fields of ``SimConfig``)."""

DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "engagement_scale": (0.45, 0.55, 0.65, 0.75, 0.85),
    "engagement_gap_power": (0.0, 0.1, 0.2, 0.3, 0.4),
    "engagement_lift": (0.25, 0.3, 0.35, 0.4, 0.45),
}
"""125 points around the shipped constants (κ 0.65, β 0.2, lift 0.35)."""


def score(report: FidelityReport) -> tuple[float, float]:
    """(mean, worst) of distance / target over the report's statistics; a NaN distance counts as inf."""
    ratios = [s.distance / s.target if math.isfinite(s.distance) else math.inf for s in report.statistics]
    return float(np.mean(ratios)), max(ratios)


def split_users(users: Sequence[int] | np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """``users`` split at random (seeded) into ``folds`` groups of near-equal size, each sorted."""
    users = np.unique(np.asarray(users))
    if not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"calibration folds must be an integer >= 2, got {folds!r}")
    if len(users) < folds:
        raise ConfigError(f"calibration: {len(users)} cohort users cannot fill {folds} folds")
    order = np.random.default_rng(seed).permutation(len(users))
    return [np.sort(users[part]) for part in np.array_split(order, folds)]


def subset(log: BehaviourLog, users: np.ndarray) -> BehaviourLog:
    """The log restricted to ``users`` (same load report and id maps)."""
    events = log.events[log.events["user_id"].isin(users)].reset_index(drop=True)
    return BehaviourLog(events, log.report, log.id_maps)


@dataclass(frozen=True)
class GridPoint:
    """One grid point: its constants and, per user group, its mean and worst score over the seeds.

    ``distances[g][name]`` lists the statistic's distance per seed on group g.
    """

    values: dict[str, float]
    mean: list[float]
    worst: list[float]
    distances: list[dict[str, list[float]]]

    def score_over(self, groups: Sequence[int]) -> float:
        """Mean score over the given groups."""
        return float(np.mean([self.mean[g] for g in groups]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (inf and NaN as None)."""
        return {
            **self.values,
            "mean_over_target": [_clean(x) for x in self.mean],
            "worst_over_target": [_clean(x) for x in self.worst],
            "distances": [{k: [_clean(x) for x in v] for k, v in d.items()} for d in self.distances],
        }


@dataclass(frozen=True)
class Fold:
    """Fold f: the point chosen without group f, and how it and the base constants do on group f."""

    held_out: int
    chosen: dict[str, float]
    chosen_in_sample: float
    chosen_held_out: float
    base_held_out: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "held_out_group": self.held_out,
            "chosen": self.chosen,
            "chosen_score_on_other_groups": _clean(self.chosen_in_sample),
            "chosen_score_held_out": _clean(self.chosen_held_out),
            "base_score_held_out": _clean(self.base_held_out),
        }


@dataclass(frozen=True)
class Calibration:
    """The grid's scores, the cross-validation folds and the final choice.

    Attributes:
        points: every grid point, best mean score over all groups first.
        base: the base config's constants, scored the same way.
        folds: one per user group.
        groups: the user groups (cohort users with history before the test period).
        noise_floor: per group, the distances between its real events and the rest's.
        statistics: the statistics' names, in report order.
    """

    points: list[GridPoint]
    base: GridPoint
    folds: list[Fold]
    groups: list[np.ndarray]
    noise_floor: list[dict[str, float]]
    statistics: list[str]

    @property
    def best(self) -> GridPoint:
        """The grid's best point: the best mean score over all groups."""
        return self.points[0]

    @property
    def kept_base(self) -> bool:
        """True when the base constants are kept (module docstring).

        That is when they are a grid point and choosing from the grid did not carry over to
        held-out groups; a grid without them asks for a choice among its own points.
        """
        chosen_cv, base_cv = self.cross_validated()
        in_grid = any(p.values == self.base.values for p in self.points)
        return in_grid and not chosen_cv < base_cv

    @property
    def choice(self) -> GridPoint:
        """The final choice: the grid's best point if choosing so carries over, else the base constants."""
        return self.base if self.kept_base else self.best

    def chosen_config(self, base: SimConfig) -> SimConfig:
        """``base`` with the chosen constants."""
        return base.replace(**self.choice.values)

    def to_dict(self) -> dict[str, Any]:
        """calibration.json's content: the choice, the folds, the noise floor and every grid point."""
        chosen_cv, base_cv = self.cross_validated()
        return {
            "chosen": self.choice.values,
            "grid_best": self.best.values,
            "kept_base": self.kept_base,
            "rule": "the grid's best point replaces the base constants only when the points chosen "
            "without each user group score better on it than the base constants do",
            "cross_validated_score": {"chosen": chosen_cv, "shipped": base_cv},
            "folds": [f.to_dict() for f in self.folds],
            "groups": [len(g) for g in self.groups],
            "noise_floor": [{k: _clean(v) for k, v in d.items()} for d in self.noise_floor],
            "shipped": self.base.to_dict(),
            "points": [p.to_dict() for p in self.points],
            "score": "mean over statistics of distance / target, averaged over the simulation seeds",
        }

    def cross_validated(self) -> tuple[float, float]:
        """(chosen, base): mean held-out score over the folds (how well a choice carries over)."""
        return (
            float(np.mean([f.chosen_held_out for f in self.folds])),
            float(np.mean([f.base_held_out for f in self.folds])),
        )


def _clean(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def noise_floor(
    log: BehaviourLog, groups: Sequence[np.ndarray], task_config: TaskConfig, gap_h: float = 0.5
) -> list[dict[str, float]]:
    """Per group, each statistic's distance between the group's real events and the other groups'."""
    split = make_split(log, task_config)
    start, end = int(split.test_start), int(split.end)
    hours = sorted(set(CURVE_HOURS) | set(HORIZONS_H))
    floors = []
    for g, users in enumerate(groups):
        rest = np.concatenate([u for j, u in enumerate(groups) if j != g])
        ours = window_stats(log.events, start, end, users, gap_h, hours)
        theirs = window_stats(log.events, start, end, rest, gap_h, hours)
        floors.append({s.name: s.distance for s in compare(theirs, ours)})
    return floors


def _point(
    values: dict[str, float], cohorts: Sequence[Cohort], config: SimConfig, seeds: Sequence[int]
) -> GridPoint:
    means, worsts, distances = [], [], []
    for cohort in cohorts:
        reports = [report_on(cohort, config, s) for s in seeds]
        scores = [score(r) for r in reports]
        means.append(float(np.mean([m for m, _ in scores])))
        worsts.append(float(np.mean([w for _, w in scores])))
        distances.append(
            {s.name: [r.statistics[j].distance for r in reports] for j, s in enumerate(reports[0].statistics)}
        )
    return GridPoint(values, means, worsts, distances)


def calibrate(
    log: BehaviourLog,
    base: SimConfig | None = None,
    grid: Mapping[str, Sequence[float]] | None = None,
    seeds: Sequence[int] = (0, 1),
    task_config: TaskConfig | None = None,
    folds: int = 2,
    split_seed: int = 0,
    gap_h: float = 0.5,
    model: Any = None,
    on_point: Callable[[GridPoint], None] | None = None,
) -> Calibration:
    """Simulate every grid point on every user group; choose per fold and overall (module docstring).

    Args:
        log: any log in the canonical schema.
        base: the config whose other fields stay fixed (default ``SimConfig()``).
        grid: values per knob (keys from ``KNOBS``); a knob left out keeps ``base``'s value.
        seeds: simulation seeds each score is averaged over.
        task_config: the split (default ``FIDELITY_SPLIT``).
        folds: number of user groups k (>= 2).
        split_seed: seed of the user split.
        gap_h: inactivity that ends a visit, hours.
        model: a fitted decay model (default: ``ExponentialDecay`` fitted on the training period).
        on_point: called after each grid point (progress).
    """
    base = base or SimConfig()
    grid = dict(DEFAULT_GRID if grid is None else grid)
    task_config = task_config or FIDELITY_SPLIT
    unknown = sorted(set(grid) - set(KNOBS))
    if unknown:
        raise ConfigError(f"calibration grid: unknown knob(s) {unknown}; choose from {list(KNOBS)}")
    for name, values in grid.items():
        if len(values) == 0:
            raise ConfigError(f"calibration grid: {name} has no values")
    if len(seeds) == 0:
        raise ConfigError("calibration needs at least one seed")
    split = make_split(log, task_config)
    cohort = log.events.loc[log.events["timestamp"] < int(split.test_start), "user_id"].to_numpy()
    groups = split_users(cohort, folds, split_seed)
    if model is None:
        model = fit_decay(log, task_config)
    cohorts = [prepare_cohort(subset(log, users), model, task_config, gap_h) for users in groups]

    names = list(grid)
    points = []
    for combo in itertools.product(*(grid[n] for n in names)):
        values = {n: float(v) for n, v in zip(names, combo, strict=True)}
        point = _point(values, cohorts, base.replace(**values), seeds)
        points.append(point)
        if on_point is not None:
            on_point(point)
    every = range(len(groups))
    points.sort(key=lambda p: (p.score_over(every), float(np.mean(p.worst))))
    base_point = _point({n: float(getattr(base, n)) for n in names}, cohorts, base, seeds)
    fold_list = []
    for f in every:
        others = [g for g in every if g != f]
        chosen = min(
            points, key=lambda p: (p.score_over(others), float(np.mean([p.worst[g] for g in others])))
        )
        fold_list.append(
            Fold(f, chosen.values, chosen.score_over(others), chosen.mean[f], base_point.mean[f])
        )
    statistics = list(points[0].distances[0])
    floor = noise_floor(log, groups, task_config, gap_h)
    return Calibration(points, base_point, fold_list, groups, floor, statistics)
