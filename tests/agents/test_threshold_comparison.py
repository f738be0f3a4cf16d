import pandas as pd
import pytest

from agents import seeds as seed_scheme
from agents.policy import ThresholdPolicy
from agents.simulator import Simulator
from agents.threshold_comparison import TRIVIAL, ThresholdStudy, lifecycle_check
from agents.tuning import TuningGrid, grid_size
from decay_model.errors import ConfigError


def test_grid_pairs_keep_retire_below_at_most_show_above():
    assert TuningGrid.parse("0.2,0.4", "0,0.3", "none").pairs() == [(0.2, 0.0), (0.4, 0.0), (0.4, 0.3)]
    with pytest.raises(ConfigError, match="--grid: no pair has retire_below <= show_above"):
        TuningGrid.parse("0.1", "0.5", "none")


def frame(rows: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"mean": rows, "ci_low": rows, "ci_high": rows})


def test_the_lifecycle_check_asks_for_all_three_actions_and_clearly_worse_trivial_policies():
    tuned = ThresholdPolicy(0.4, 0.1)
    shares = frame({"share_show": 0.3, "share_reduce": 0.5, "share_retire": 0.2})
    diffs = {
        "threshold (tuned)": frame({"return": 0.0}),
        "always-show": frame({"return": -0.5}),
        "retire-everything": frame({"return": 0.1}),
        "random": frame({"return": 0.2}),
    }
    check = lifecycle_check(tuned, shares, diffs, "threshold (tuned)")
    assert check == {
        "show_above_gt_retire_below": True,
        "uses_all_three_actions": True,
        "always-show_clearly_worse": True,
        "retire-everything_clearly_worse": False,
    }


def test_a_study_records_its_settings_and_counts_its_steps():
    grid = TuningGrid((0.2, 0.4), (0.0, 0.1), (None, 3))
    study = ThresholdStudy(
        Simulator.of_preset("small"),
        seed_scheme.train_users(1, 8),
        seed_scheme.eval_users(1, 16),
        ["threshold", "threshold_plus"],
        grid,
        seed=1,
        batch=64,
        n_boot=10,
    )
    record = study.record()
    assert record["grid"] == [[0.2, 0.0], [0.2, 0.1], [0.4, 0.0], [0.4, 0.1]]
    assert (record["train_users"], record["eval_users"]) == (8, 16)
    assert record["eval_seeds"][0] >= record["train_seeds"][1]
    assert study.steps() == grid_size(grid, ["threshold", "threshold_plus"]) + 2 + TRIVIAL
