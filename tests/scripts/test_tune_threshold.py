import json

import pandas as pd
import pytest

from agents.tuning import load_tuned
from decay_model.errors import ConfigError
from scripts import tune_threshold


def test_tune_threshold_writes_its_files(tmp_path, capsys):
    out = tmp_path / "run"
    code = tune_threshold.main(
        [
            "--preset", "small", "--train-users", "8", "--eval-users", "8", "--n-boot", "50",
            "--grid", "0.2,0.3", "0,0.1", "--max-unanswered", "none,3", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    for name in ("grid.csv", "tuning_grid.csv", "tuned.json", "results.csv", "summary.json", "config.json"):
        assert (out / name).is_file(), name
    grid = pd.read_csv(out / "grid.csv")
    assert len(grid) == 4 and (grid["retire_below"] <= grid["show_above"]).all()
    results = pd.read_csv(out / "results.csv")
    assert results["policy"].nunique() == 7 and len(results) == 7 * 8  # 3 tuned rules, 4 trivial
    assert {"threshold+ (tuned)", "best rule (tuned)"} <= set(results["policy"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval_seeds"][0] >= summary["train_seeds"][1]  # held-out users are disjoint
    assert set(summary["lifecycle_check"]) >= {"show_above_gt_retire_below", "uses_all_three_actions"}
    tuned = summary["tuned"]
    best = grid.loc[grid["return"].idxmax()]
    assert (tuned["show_above"], tuned["retire_below"]) == (best["show_above"], best["retire_below"])
    assert summary["train_return"]["best_rule"] >= summary["train_return"]["threshold_plus"]
    assert "best rule (tuned)" in summary["paired_difference_vs_threshold_plus"]
    assert (
        load_tuned(out / "tuned.json", "small")["tuned"]["best_rule"]
        == summary["tuned_families"]["best_rule"]
    )
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 0 and config["config"]["preset"] == "small"
    printed = capsys.readouterr().out
    assert "always-show" in printed and "best rule (tuned)" in printed and "tuned best_rule:" in printed


def test_tune_threshold_rejects_an_empty_grid(tmp_path):
    with pytest.raises(ConfigError, match="retire_below <= show_above"):
        tune_threshold.main(["--preset", "small", "--grid", "0.1", "0.5", "--out", str(tmp_path)])


def test_tune_threshold_can_tune_the_threshold_rule_alone(tmp_path):
    out = tmp_path / "run"
    tune_threshold.main(
        [
            "--preset", "small", "--train-users", "4", "--eval-users", "4", "--n-boot", "20",
            "--grid", "0.3", "0.1", "--families", "threshold", "--out", str(out),
        ]
    )  # fmt: skip
    assert pd.read_csv(out / "results.csv")["policy"].nunique() == 5
    with pytest.raises(ConfigError, match="--max-unanswered"):
        tune_threshold.main(["--preset", "small", "--max-unanswered", "0", "--out", str(tmp_path / "x")])
