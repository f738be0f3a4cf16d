import json

import pandas as pd
import pytest

from decay_model.errors import ConfigError
from scripts import tune_threshold


def test_tune_threshold_writes_its_files(tmp_path, capsys):
    out = tmp_path / "run"
    code = tune_threshold.main(
        [
            "--preset", "small", "--train-users", "8", "--eval-users", "8", "--n-boot", "50",
            "--grid", "0.2,0.3", "0,0.1", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    for name in ("grid.csv", "results.csv", "summary.json", "config.json"):
        assert (out / name).is_file(), name
    grid = pd.read_csv(out / "grid.csv")
    assert len(grid) == 4 and (grid["retire_below"] <= grid["show_above"]).all()
    results = pd.read_csv(out / "results.csv")
    assert results["policy"].nunique() == 5 and len(results) == 5 * 8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval_seeds"][0] >= summary["train_seeds"][1]  # held-out users are disjoint
    assert set(summary["lifecycle_check"]) >= {"show_above_gt_retire_below", "uses_all_three_actions"}
    tuned = summary["tuned"]
    best = grid.loc[grid["return"].idxmax()]
    assert (tuned["show_above"], tuned["retire_below"]) == (best["show_above"], best["retire_below"])
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 0 and config["config"]["preset"] == "small"
    assert "always-show" in capsys.readouterr().out


def test_tune_threshold_rejects_an_empty_grid(tmp_path):
    with pytest.raises(ConfigError, match="retire_below <= show_above"):
        tune_threshold.main(["--preset", "small", "--grid", "0.1", "0.5", "--out", str(tmp_path)])
