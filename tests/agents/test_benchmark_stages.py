import json
from dataclasses import replace

import pytest

from agents.benchmark import (
    LEVELS,
    BenchmarkRun,
    Commands,
    explained_run,
    missing_seeds,
    stage_train,
    stage_tune,
)
from decay_model.errors import ConfigError


def recording_commands(calls):
    def command(name):
        def run(argv):
            calls.append((name, list(argv)))
            return 0

        return run

    return Commands(
        evaluate=command("evaluate"),
        train=command("train"),
        explain=command("explain"),
        tunable_specs=lambda specs: [],
        spec_key=str,
    )


def bench(tmp_path, **changes):
    values = {
        "run_dir": tmp_path,
        "level": LEVELS["smoke"],
        "seed": 5,
        "simulator_argv": ("--preset", "small"),
        "algos": ("ppo", "a2c"),
    }
    return BenchmarkRun(**{**values, **changes})


def finished(run, best):
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"best_validation_mean_reward": best}))


def test_training_keeps_finished_runs_resumes_interrupted_ones_and_starts_the_rest(tmp_path):
    finished(tmp_path / "train" / "ppo_seed5", 1.0)
    (tmp_path / "train" / "a2c_seed5" / "checkpoints").mkdir(parents=True)
    (tmp_path / "train" / "a2c_seed5" / "checkpoints" / "latest.json").write_text("{}")
    calls = []
    runs = stage_train(bench(tmp_path), recording_commands(calls))
    assert [r.name for r in runs["ppo"]] == ["ppo_seed5"] and [r.name for r in runs["a2c"]] == ["a2c_seed5"]
    assert calls == [("train", ["--out", str(tmp_path / "train" / "a2c_seed5"), "--resume"])]
    calls.clear()
    runs = stage_train(bench(tmp_path, algos=("dqn",)), recording_commands(calls))
    ((name, argv),) = calls
    assert name == "train" and argv[argv.index("--seed") + 1] == "5" and argv[-2:] == ["--n-envs", "32"]


def test_finished_only_reports_what_finished_and_names_the_missing_seeds(tmp_path):
    finished(tmp_path / "train" / "ppo_seed5", 1.0)
    finished(tmp_path / "train" / "ppo_seed6", 2.0)
    level = replace(LEVELS["smoke"], train_seeds=3)
    run = bench(tmp_path, level=level, algos=("ppo",), finished_only=True)
    calls = []
    runs = stage_train(run, recording_commands(calls))
    assert calls == [] and missing_seeds(run, runs) == {"ppo": [7]}
    assert explained_run(run, runs).name == "ppo_seed6"
    with pytest.raises(ConfigError, match="no finished training run"):
        explained_run(bench(tmp_path, algos=("ppo", "a2c")), runs)


def test_tuning_is_reused_only_when_it_holds_the_best_rule(tmp_path):
    (tmp_path / "tuning").mkdir()
    (tmp_path / "tuning" / "tuned.json").write_text(json.dumps({"tuned": {"best_rule": {}}}))
    (tmp_path / "tuned.json").write_text(json.dumps({"tuned": {"threshold": {}}}))
    calls = []
    assert stage_tune(bench(tmp_path), recording_commands(calls)) == tmp_path / "tuned.json"
    assert [name for name, _ in calls] == ["evaluate"]
    assert json.loads((tmp_path / "tuned.json").read_text()) == {"tuned": {"best_rule": {}}}
    calls.clear()
    stage_tune(bench(tmp_path), recording_commands(calls))
    assert calls == []
