import json

import pandas as pd
import pytest

from agents.evaluation import evaluate
from agents.policy import (
    AlwaysShow,
    BestRulePolicy,
    GreedyPolicy,
    OraclePolicy,
    RandomPolicy,
    RetireEverything,
    ShowNothing,
    ThresholdPlusPolicy,
    ThresholdPolicy,
)
from agents.tuning import (
    BASELINES,
    TUNED_FAMILIES,
    TuningGrid,
    baseline,
    best_rule_start,
    coordinate_search,
    evaluation_seeds,
    grid_search,
    grid_size,
    load_tuned,
    save_tuned,
    tune,
    tuning_seeds,
)
from decay_model.errors import ConfigError
from envs.config import get_preset

GRID = TuningGrid(
    (0.2, 0.4),
    (0.0, 0.1, 0.3),
    max_unanswered=(None, 2),
    retire_purchased=(False, True),
    dup_show_above=(None, 1.01),
    tries=(0, 1),
    z=(0.0, 1.0),
    rest_cycles=(None, 1.0),
)
BEST_POINTS = 1 + 2 + 2 + 2 + 2 + 2 + 2 + 3  # the start, then each axis
SEEDS = tuning_seeds(0, 24)


@pytest.fixture(scope="module")
def result():
    return tune("small", SEEDS, grid=GRID, batch=24)


def test_the_grid_holds_only_ordered_pairs_in_order():
    assert GRID.pairs() == [(0.2, 0.0), (0.2, 0.1), (0.4, 0.0), (0.4, 0.1), (0.4, 0.3)]
    assert len(GRID.points("threshold_plus")) == 5 * 2 * 2
    assert grid_size(GRID) == 5 + 20 + BEST_POINTS + 5
    assert grid_size(GRID, ["best_rule"]) == 20 + BEST_POINTS  # it starts from threshold+'s point
    with pytest.raises(ConfigError, match="retire_below <= show_above"):
        TuningGrid((0.1,), (0.5,))
    with pytest.raises(ConfigError, match="max_unanswered"):
        TuningGrid(max_unanswered=(0,))
    with pytest.raises(ConfigError, match=r"TuningGrid\.z"):
        TuningGrid(z=(-1.0,))
    with pytest.raises(ConfigError, match=r"TuningGrid\.tries"):
        TuningGrid(tries=())


def test_tune_keeps_the_best_point_of_each_family(result):
    table = result.table
    # the best rule's search skips its invalid pairs (retire_below > show_above)
    assert grid_size(GRID) - 2 <= len(table) <= grid_size(GRID)
    for family in TUNED_FAMILIES:
        rows = result.family_table(family)
        best = rows.loc[rows["return"].idxmax()]
        assert result.train_return[family] == pytest.approx(best["return"])
        for key, value in result.tuned[family].items():
            assert (pd.isna(value) and pd.isna(best[key])) or best[key] == value, (family, key)
    # threshold+ contains the plain rule (max_unanswered None, not retiring bought items): never worse
    assert result.train_return["threshold_plus"] >= result.train_return["threshold"]
    # the best rule starts at threshold+'s point and only moves on a strict gain
    assert result.train_return["best_rule"] >= result.train_return["threshold_plus"]
    start = result.family_table("best_rule").iloc[0]
    assert start["axis"] == "start" and start["return"] == pytest.approx(
        result.train_return["threshold_plus"]
    )
    assert isinstance(result.policies()["best_rule"], BestRulePolicy)
    # the tuned return is what evaluate gives for those parameters on the same users
    rec = evaluate(ThresholdPolicy(**result.tuned["threshold"]), preset="small", seeds=SEEDS)
    assert rec["return"].mean() == pytest.approx(result.train_return["threshold"])
    assert set(result.policies()) == set(TUNED_FAMILIES)
    assert isinstance(result.policies()["oracle"], OraclePolicy)


def test_grid_search_keeps_the_first_of_equal_points():
    seen = []
    best, ret, rows = grid_search(
        lambda params: AlwaysShow(), [{"k": 2}, {"k": 1}], "small", SEEDS[:4], batch=4, on_point=seen.append
    )
    assert best == {"k": 2} and seen == [{"k": 2}, {"k": 1}]
    assert [r["k"] for r in rows] == [2, 1] and rows[0]["return"] == rows[1]["return"] == ret
    with pytest.raises(ConfigError, match="no grid point"):
        grid_search(lambda params: AlwaysShow(), [], "small", SEEDS[:4])


def test_tuning_and_evaluation_users_never_overlap():
    assert not set(tuning_seeds(3, 5000)) & set(evaluation_seeds(3, 5000))
    assert not set(tuning_seeds(0, 100)) & set(evaluation_seeds(1, 100))
    with pytest.raises(ConfigError):
        tuning_seeds(0, 0)


def test_coordinate_search_moves_one_knob_at_a_time_on_strict_gains():
    calls = []

    def make(params):
        calls.append(dict(params))
        return BestRulePolicy.from_config(get_preset("small"), **params)

    start = best_rule_start({"show_above": 0.3, "retire_below": 0.1, "retire_purchased": False})
    assert start["rest_cycles"] == 0.0 and start["dup_show_above"] is None and start["max_unanswered"] is None
    axes = {"tries": (0, 1), "show_above": (0.05, 0.3), "retire_below": (0.1, 1.0)}
    best, ret, rows = coordinate_search(make, start, axes, "small", SEEDS[:8], batch=8)
    assert [r["axis"] for r in rows] == ["start", "tries", "tries", "show_above", "retire_below"]
    # the start is scored once however often it is revisited; show_above 0.05 < retire_below is skipped
    assert len(calls) == 4 and rows[1]["return"] == rows[0]["return"]
    assert ret == max(r["return"] for r in rows) and (ret > rows[0]["return"] or best == start)


def test_tuned_values_round_trip_through_json(result, tmp_path):
    path = tmp_path / "tuned.json"
    save_tuned(path, result)
    data = load_tuned(path, "small")
    assert data["tuned"] == json.loads(json.dumps(result.tuned))
    assert baseline("best_rule", get_preset("small"), data["tuned"]).to_dict() == result.tuned["best_rule"]
    assert data["train_seeds"] == [SEEDS[0], SEEDS[-1] + 1] and data["grid"]["show_above"] == [0.2, 0.4]
    with pytest.raises(ConfigError, match="preset 'small', not 'default'"):
        load_tuned(path, "default")
    with pytest.raises(ConfigError, match="no such file"):
        load_tuned(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(ConfigError, match="not a decaygym-tuned-baselines file"):
        load_tuned(tmp_path / "other.json")


def test_baselines_are_built_by_name():
    cfg = get_preset("small")
    tuned = {
        "threshold": {"show_above": 0.3, "retire_below": 0.1},
        "threshold_plus": {
            "show_above": 0.3,
            "retire_below": 0.1,
            "max_unanswered": 3,
            "retire_purchased": True,
        },
        "best_rule": {"show_above": 0.3, "retire_below": 0.1, "dup_show_above": 0.5, "tries": 1},
        "oracle": {"show_above": 0.3, "retire_below": 0.1},
    }
    kinds = {
        "threshold": ThresholdPolicy,
        "threshold_plus": ThresholdPlusPolicy,
        "best_rule": BestRulePolicy,
        "oracle": OraclePolicy,
        "greedy": GreedyPolicy,
        "random": RandomPolicy,
        "always_show": AlwaysShow,
        "show_nothing": ShowNothing,
        "retire_everything": RetireEverything,
    }
    assert set(kinds) == set(BASELINES)
    for name, kind in kinds.items():
        assert type(baseline(name, cfg, tuned, seed=1)) is kind
    assert baseline("threshold_plus", cfg, tuned).max_unanswered == 3
    assert baseline("best_rule", cfg, tuned).tries == 1
    assert baseline("best_rule", cfg.replace(repurchase_cycle_h=24.0), tuned).repurchase_cycle_h == 24.0
    with pytest.raises(ConfigError, match="needs tuned parameters"):
        baseline("oracle", cfg, {})
    old = {k: v for k, v in tuned.items() if k != "best_rule"}  # a tuned.json from before the best rule
    with pytest.raises(ConfigError, match=r"'best_rule' needs tuned parameters.*tune again"):
        baseline("best_rule", cfg, old)
    with pytest.raises(ConfigError, match="unknown baseline"):
        baseline("ppo", cfg, tuned)
