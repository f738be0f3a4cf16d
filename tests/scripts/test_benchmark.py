import json

import pytest

from decay_model.errors import ConfigError
from scripts import benchmark


def test_smoke_benchmark_writes_the_report_and_reuses_finished_stages(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["--level", "smoke", "--preset", "small", "--out", str(out)]
    assert benchmark.main(argv) == 0
    files = ("table.md", "table.csv", "summary.json", "learning_curves.png", "returns.png", "lifecycle.png")
    for name in files:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    policies = summary["policies"]
    for name in (
        "threshold",
        "threshold_plus",
        "best_rule",
        "oracle",
        "greedy",
        "random",
        "always_show",
        "ppo_seed0",
    ):
        assert name in policies, name
        ret = policies[name]["metrics"]["return"]
        assert ret["ci_low"] <= ret["mean"] <= ret["ci_high"]
    assert "diff_vs_threshold" in policies["ppo_seed0"]
    agent = summary["agents"]["ppo"]
    assert len(agent["seeds"]) == 1 and agent["seeds"][0]["vs_threshold_plus"]["n"] == 100
    assert agent["seeds"][0]["vs_best_rule"]["n"] == 100
    assert "Agents across training seeds" in (out / "table.md").read_text()
    # over training seeds and users: the agent's mean, and its difference to each rule with Holm's p-values
    hier = agent["hierarchical"]
    assert hier["return"]["mean"] == pytest.approx(policies["ppo_seed0"]["metrics"]["return"]["mean"])
    assert set(hier["vs"]) == {"threshold", "threshold_plus", "best_rule"}
    for v in hier["vs"].values():
        assert v["ci_low"] <= v["mean"] <= v["ci_high"] and v["p_value"] <= v["p_adjusted"] <= 1
    assert "Agents over training seeds and users" in (out / "table.md").read_text()
    assert "tree_ppo_seed0" in policies
    assert "ppo_seed0 does, as a tree" in (out / "table.md").read_text()
    # a second run finds every stage done and only rewrites the report
    stamp = (out / "train" / "ppo_seed0" / "model.zip").stat().st_mtime_ns
    assert benchmark.main(argv) == 0
    assert (out / "train" / "ppo_seed0" / "model.zip").stat().st_mtime_ns == stamp
    # one more agent on the same folder: PPO is reused, the new one trained, and everything re-evaluated
    assert benchmark.main([*argv, "--algos", "ppo", "a2c"]) == 0
    assert (out / "train" / "ppo_seed0" / "model.zip").stat().st_mtime_ns == stamp
    summary = json.loads((out / "summary.json").read_text())
    assert {"ppo_seed0", "a2c_seed0"} <= set(summary["policies"]) and set(summary["agents"]) == {"ppo", "a2c"}


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--level", "huge"], "unknown --level"),
        (["--algos", "sac"], "unknown --algos"),
        (["--preset", "nope"], "preset"),
        (["--timesteps", "-5"], "--timesteps must be >= 1"),
    ],
)
def test_bad_arguments_name_the_option(argv, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        benchmark.main([*argv, "--out", str(tmp_path / "x")])


def test_finished_only_reports_the_runs_that_finished(tmp_path):
    out = tmp_path / "bench"
    argv = ["--level", "smoke", "--preset", "small", "--out", str(out), "--train-seeds", "1"]
    assert benchmark.main(argv) == 0
    # a second seed was asked for but never trained: --finished-only reports seed 0 and names seed 1
    assert benchmark.main([*argv[:-1], "2", "--finished-only"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["missing_training_seeds"] == {"ppo": [1]}
    assert [s["run"] for s in summary["agents"]["ppo"]["seeds"]] == ["ppo_seed0"]
    assert not (out / "train" / "ppo_seed1").exists()
    with pytest.raises(ConfigError, match="no finished training run"):
        benchmark.main(
            ["--level", "smoke", "--preset", "small", "--out", str(tmp_path / "empty"), "--finished-only"]
        )
