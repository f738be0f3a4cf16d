import json

import pandas as pd
import pytest

from decay_model.errors import ConfigError
from scripts import evaluate

GRID = ["--grid", "0.2,0.4", "0,0.1", "--max-unanswered", "none,3"]
SMALL = ["--preset", "small", "--train-users", "16", "--eval-users", "24", "--n-boot", "100"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate") / "run"
    policies = [
        "greedy",
        "threshold_plus",
        "best_rule",
        "random",
        "always_show",
        "show_nothing",
        "retire_everything",
    ]
    code = evaluate.main([*SMALL, *GRID, "--policies", *policies, "--out", str(out)])
    assert code == 0
    return out


def test_evaluate_writes_the_run_folder(run, capsys):
    for name in (
        "table.md",
        "table.csv",
        "summary.json",
        "records.parquet",
        "returns.png",
        "lifecycle.png",
        "lifecycle_interest.png",
        "tuned.json",
        "tuning_grid.csv",
        "config.json",
    ):
        assert (run / name).is_file(), name
    records = pd.read_parquet(run / "records.parquet")
    # the references threshold and oracle are added; every policy meets the same 24 users
    labels = [
        "greedy",
        "threshold_plus",
        "best_rule",
        "random",
        "always_show",
        "show_nothing",
        "retire_everything",
    ]
    assert records["policy"].unique().tolist() == [*labels, "threshold", "oracle"]
    assert records.groupby("policy")["seed"].apply(lambda s: tuple(sorted(s))).nunique() == 1
    table = pd.read_csv(run / "table.csv")
    assert len(table) == 9 and {"return_mean", "diff_return_vs_threshold_ci_low", "gap_closed_mean"} <= set(
        table.columns
    )
    md = (run / "table.md").read_text()
    assert "| threshold_plus |" in md and "gap closed" in md and "Lifecycle" in md
    assert "return − threshold+ (paired)" in md and "diff_return_vs_threshold_plus_mean" in table.columns
    assert "| best_rule |" in md and "return − best rule (paired)" in md
    assert "diff_return_vs_best_rule_mean" in table.columns


def test_summary_holds_intervals_differences_and_gap_shares(run):
    summary = json.loads((run / "summary.json").read_text())
    policies = summary["policies"]
    records = pd.read_parquet(run / "records.parquet")
    for label, p in policies.items():
        ret = p["metrics"]["return"]
        assert ret["ci_low"] <= ret["mean"] <= ret["ci_high"]
        assert ret["mean"] == pytest.approx(records.loc[records["policy"] == label, "return"].mean())
        assert set(p["metrics"]) >= {"return", "clicks", "purchases", "slots_used", "churned"}
        assert set(p["lifecycle"]) == {"age", "interest"}
    assert policies["threshold"]["diff_vs_threshold"]["return"]["mean"] == 0
    assert policies["threshold_plus"]["diff_vs_threshold_plus"]["return"]["mean"] == 0
    greedy = records[records["policy"] == "greedy"]["return"].mean()
    plus = records[records["policy"] == "threshold_plus"]["return"].mean()
    assert policies["greedy"]["diff_vs_threshold_plus"]["return"]["mean"] == pytest.approx(greedy - plus)
    assert policies["threshold"]["gap_closed"]["mean"] == 0
    assert policies["oracle"]["gap_closed"]["mean"] == pytest.approx(1.0)
    assert policies["retire_everything"]["metrics"]["slots_used"]["mean"] == 0
    # held-out users are disjoint from the tuning users
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["eval_seeds"]["start"] >= config["tuning_seeds"]["stop"]
    tuned = json.loads((run / "tuned.json").read_text())
    assert set(tuned["tuned"]) == {"threshold", "threshold_plus", "best_rule", "oracle"}
    assert summary["policies"]["best_rule"]["policy"].startswith("BestRulePolicy(")
    assert tuned["train_return"]["best_rule"] >= tuned["train_return"]["threshold_plus"]
    assert summary["tuned"]["tuned"] == tuned["tuned"]


def test_tuned_values_are_reused(run, tmp_path):
    out = tmp_path / "again"
    code = evaluate.main(
        [*SMALL, "--tuned", str(run / "tuned.json"), "--policies", "threshold", "--out", str(out)]
    )
    assert code == 0
    assert not (out / "tuned.json").exists()  # nothing tuned here
    first = pd.read_parquet(run / "records.parquet")
    again = pd.read_parquet(out / "records.parquet")
    for label in ("threshold", "oracle"):
        pd.testing.assert_frame_equal(
            first[first["policy"] == label].reset_index(drop=True),
            again[again["policy"] == label].reset_index(drop=True),
        )


def test_a_tuned_file_from_before_the_best_rule_is_refused_for_it(run, tmp_path):
    old = json.loads((run / "tuned.json").read_text())
    del old["tuned"]["best_rule"]
    path = tmp_path / "old_tuned.json"
    path.write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="no tuned parameters for best_rule"):
        evaluate.main([*SMALL, "--tuned", str(path), "--policies", "best_rule", "--out", str(tmp_path / "x")])
    # the old file still serves the rules it holds
    assert (
        evaluate.main(
            [*SMALL, "--tuned", str(path), "--policies", "threshold_plus", "--out", str(tmp_path / "y")]
        )
        == 0
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policies", "ppo_best"], "unknown policy 'ppo_best'"),
        (["--policies", "runs/missing/model.zip"], "model file runs/missing/model.zip not found"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--eval-users", "0"], "--eval-users must be >= 1"),
        (["--tuned", "missing.json"], "no such file"),
    ],
)
def test_bad_arguments_end_with_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        evaluate.cli(["--preset", "small", *args, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("decaygym-evaluate: error:") and message in err and "\n" not in err


def test_the_module_runs_as_a_command(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.evaluate",
            "--preset",
            "small",
            "--policies",
            "nope",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("decaygym-evaluate: error: unknown policy 'nope'")
