"""Cross-validated choice of the engagement constants (envs.calibration) on a small synthetic log."""

from __future__ import annotations

import math

import numpy as np
import pytest

from decay_model.errors import ConfigError
from decay_model.logs import BehaviourLog
from decay_model.synthetic import SyntheticConfig, generate
from envs.calibration import (
    FIDELITY_SPLIT,
    Calibration,
    Fold,
    GridPoint,
    calibrate,
    noise_floor,
    split_users,
    subset,
)
from envs.config import get_preset

GRID = {"engagement_scale": (0.3, 0.9), "engagement_lift": (0.35,)}


@pytest.fixture(scope="module")
def log() -> BehaviourLog:
    return generate(SyntheticConfig(n_users=40, n_categories=6), seed=0).log


@pytest.fixture(scope="module")
def result(log: BehaviourLog, stub_decay):
    return calibrate(log, base=get_preset("small"), grid=GRID, seeds=(0,), folds=2, model=stub_decay())


def test_split_users_is_a_seeded_partition() -> None:
    users = np.arange(100, 131)
    groups = split_users(users[::-1], 3, seed=7)
    assert [len(g) for g in groups] == [11, 10, 10]
    assert np.array_equal(np.sort(np.concatenate(groups)), users)
    again = split_users(users, 3, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(groups, again, strict=True))
    other = split_users(users, 3, seed=8)
    assert not all(np.array_equal(a, b) for a, b in zip(groups, other, strict=True))
    with pytest.raises(ConfigError, match="folds"):
        split_users(users, 1, seed=0)
    with pytest.raises(ConfigError, match="3 cohort users cannot fill 4 folds"):
        split_users([1, 2, 3], 4, seed=0)


def test_subset_keeps_only_the_given_users(log: BehaviourLog) -> None:
    users = np.unique(log.events["user_id"])[:5]
    part = subset(log, users)
    assert set(part.events["user_id"]) == set(users)
    assert len(part.events) == int(log.events["user_id"].isin(users).sum())


def test_every_point_is_scored_on_every_group_and_the_best_comes_first(result) -> None:
    assert len(result.points) == 2 and len(result.groups) == 2
    assert sorted(len(g) for g in result.groups) == [20, 20]
    scores = [p.score_over([0, 1]) for p in result.points]
    assert scores == sorted(scores)
    for p in result.points:
        assert set(p.values) == {"engagement_scale", "engagement_lift"}
        assert len(p.mean) == len(p.worst) == 2
        assert all(m <= w for m, w in zip(p.mean, p.worst, strict=True))  # a mean is at most the worst
        for g in range(2):
            assert list(p.distances[g]) == result.statistics
    assert result.best is result.points[0]
    chosen = result.chosen_config(get_preset("small"))
    assert chosen.engagement_scale == result.choice.values["engagement_scale"]


def test_each_fold_chooses_without_its_group_and_is_judged_on_it(result) -> None:
    for fold in result.folds:
        other = 1 - fold.held_out
        chosen = min(result.points, key=lambda p: p.mean[other])
        assert fold.chosen == chosen.values
        assert fold.chosen_in_sample == pytest.approx(chosen.mean[other])
        assert fold.chosen_held_out == pytest.approx(chosen.mean[fold.held_out])
        assert fold.base_held_out == pytest.approx(result.base.mean[fold.held_out])
    chosen, base = result.cross_validated()
    assert chosen == pytest.approx(np.mean([f.chosen_held_out for f in result.folds]))
    assert math.isfinite(base)


def _calibration(chosen_held_out: list[float], base_held_out: list[float]) -> Calibration:
    """A two-fold calibration with the given held-out scores (grid best κ 0.45, base κ 0.65)."""
    best = GridPoint({"engagement_scale": 0.45}, [0.4, 0.4], [1.0, 1.0], [{}, {}])
    base = GridPoint({"engagement_scale": 0.65}, [0.5, 0.5], [1.0, 1.0], [{}, {}])
    folds = [Fold(f, best.values, 0.4, chosen_held_out[f], base_held_out[f]) for f in range(2)]
    return Calibration([best, base], base, folds, [np.arange(3), np.arange(3, 6)], [{}, {}], [])


def test_the_grid_replaces_the_base_constants_only_when_its_choice_carries_over() -> None:
    carries = _calibration([0.45, 0.47], [0.5, 0.52])
    assert not carries.kept_base and carries.choice is carries.best
    assert carries.to_dict()["chosen"] == {"engagement_scale": 0.45}
    noise = _calibration([0.55, 0.57], [0.55, 0.47])  # held out, the grid's choices do no better
    assert noise.kept_base and noise.choice is noise.base
    assert noise.chosen_config(get_preset("small")).engagement_scale == 0.65
    record = noise.to_dict()
    assert record["chosen"] == {"engagement_scale": 0.65}
    assert record["grid_best"] == {"engagement_scale": 0.45}
    assert record["kept_base"] is True
    pinned = Calibration([noise.best], noise.base, noise.folds, noise.groups, [{}, {}], [])
    assert not pinned.kept_base and pinned.choice is pinned.best  # a grid without the base: its own choice


def test_the_base_constants_score_like_the_same_grid_point(log: BehaviourLog, stub_decay) -> None:
    base = get_preset("small").replace(engagement_scale=0.9, engagement_lift=0.35)
    res = calibrate(log, base=base, grid=GRID, seeds=(0,), model=stub_decay())
    same = next(p for p in res.points if p.values["engagement_scale"] == 0.9)
    assert res.base.mean == same.mean  # same seeds, same users: the same simulation


def test_noise_floor_compares_real_groups(log: BehaviourLog, result) -> None:
    floor = noise_floor(log, result.groups, FIDELITY_SPLIT)
    assert len(floor) == 2 and list(floor[0]) == result.statistics
    for name in ("time_between_visits_h", "events_per_user"):  # KS is symmetric between two groups
        assert floor[0][name] == pytest.approx(floor[1][name])
        assert 0.0 < floor[0][name] < 1.0
    assert floor == result.noise_floor


def test_bad_grids_name_the_problem(log: BehaviourLog, stub_decay) -> None:
    with pytest.raises(ConfigError, match=r"unknown knob.*click_lift"):
        calibrate(log, grid={"click_lift": (0.1,)}, model=stub_decay())
    with pytest.raises(ConfigError, match="engagement_lift has no values"):
        calibrate(log, grid={"engagement_lift": ()}, model=stub_decay())
    with pytest.raises(ConfigError, match="seed"):
        calibrate(log, grid=GRID, seeds=(), model=stub_decay())
