import json

import pandas as pd
import pytest

from agents.evaluation import evaluate
from agents.policy import (
    AlwaysShow,
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

GRID = TuningGrid((0.2, 0.4), (0.0, 0.1, 0.3), max_unanswered=(None, 2), retire_purchased=(False, True))
SEEDS = tuning_seeds(0, 24)


@pytest.fixture(scope="module")
def result():
    return tune("small", SEEDS, grid=GRID, batch=24)


def test_the_grid_holds_only_ordered_pairs_in_order():
    assert GRID.pairs() == [(0.2, 0.0), (0.2, 0.1), (0.4, 0.0), (0.4, 0.1), (0.4, 0.3)]
    assert len(GRID.points("threshold_plus")) == 5 * 2 * 2
    assert grid_size(GRID) == 5 + 20 + 5
    with pytest.raises(ConfigError, match="retire_below <= show_above"):
        TuningGrid((0.1,), (0.5,))
    with pytest.raises(ConfigError, match="max_unanswered"):
        TuningGrid(max_unanswered=(0,))


def test_tune_keeps_the_best_point_of_each_family(result):
    table = result.table
    assert len(table) == grid_size(GRID)
    for family in TUNED_FAMILIES:
        rows = result.family_table(family)
        best = rows.loc[rows["return"].idxmax()]
        assert result.train_return[family] == pytest.approx(best["return"])
        for key, value in result.tuned[family].items():
            assert (pd.isna(value) and pd.isna(best[key])) or best[key] == value, (family, key)
    # threshold+ contains the plain rule (max_unanswered None, not retiring bought items): never worse
    assert result.train_return["threshold_plus"] >= result.train_return["threshold"]
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


def test_tuned_values_round_trip_through_json(result, tmp_path):
    path = tmp_path / "tuned.json"
    save_tuned(path, result)
    data = load_tuned(path, "small")
    assert data["tuned"] == json.loads(json.dumps(result.tuned))
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
        "oracle": {"show_above": 0.3, "retire_below": 0.1},
    }
    kinds = {
        "threshold": ThresholdPolicy,
        "threshold_plus": ThresholdPlusPolicy,
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
    with pytest.raises(ConfigError, match="needs tuned parameters"):
        baseline("oracle", cfg, {})
    with pytest.raises(ConfigError, match="unknown baseline"):
        baseline("ppo", cfg, tuned)
