import json
from dataclasses import replace
from pathlib import Path

import pytest

from agents import seeds
from agents.benchmark import (
    BASELINE_POLICIES,
    LEVELS,
    BenchmarkRun,
    Commands,
    explained_run,
    level_hyperparams,
    missing_seeds,
    stage_evaluate,
    stage_train,
    stage_tune,
)
from agents.engines import LocalEngine
from agents.simulator import Simulator
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
        "simulator": Simulator.of_preset("small"),
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


def test_a_failed_training_run_is_reported_and_the_others_still_train(tmp_path):
    calls = []

    def train(argv):
        calls.append(argv[1])
        if "a2c_seed5" in argv[1]:
            raise RuntimeError("out of patience")
        return 0

    commands = replace(recording_commands([]), train=train)
    engine = LocalEngine()
    run = bench(tmp_path)
    runs = stage_train(run, commands, engine)
    assert [Path(c).name for c in calls] == ["ppo_seed5", "a2c_seed5"]
    assert [r.name for r in runs["ppo"]] == ["ppo_seed5"] and "a2c" not in runs
    assert missing_seeds(run, runs) == {"ppo": [], "a2c": [5]}
    (failure,) = engine.failures
    assert failure == {
        "stage": "train",
        "unit": "a2c_seed5",
        "agent": "a2c",
        "seed": 5,
        "error": "RuntimeError: out of patience",
    }
    with pytest.raises(ConfigError, match="a2c_seed5 failed: RuntimeError: out of patience"):
        explained_run(run, runs, engine.failures)


def test_a_levels_own_hyperparameters_apply_where_its_file_has_the_presets_entry(tmp_path, monkeypatch):
    import agents.benchmark

    folder = tmp_path / "hyperparams" / "tuned_level"
    folder.mkdir(parents=True)
    (folder / "ppo.yml").write_text("decaygym/InterestDecay-small-v1:\n  n_envs: 8\n")
    monkeypatch.setattr(agents.benchmark, "files", lambda package: tmp_path)
    level = replace(LEVELS["smoke"], hyperparams="tuned_level")
    assert level_hyperparams(level, "ppo", Simulator.of_preset("small")) == folder / "ppo.yml"
    assert level_hyperparams(level, "ppo", Simulator.of_preset("default")) is None  # no entry for it
    assert level_hyperparams(level, "a2c", Simulator.of_preset("small")) is None  # no file
    folder_sim = replace(Simulator.of_preset("default"), sim="fitted_sim")
    (folder / "ppo.yml").write_text("decaygym/InterestDecay-v1:\n  n_envs: 8\n")
    assert level_hyperparams(level, "ppo", Simulator.of_preset("default")) == folder / "ppo.yml"
    assert level_hyperparams(level, "ppo", folder_sim) is None  # dynamics of its own
    assert level_hyperparams(LEVELS["smoke"], "ppo", Simulator.of_preset("small")) is None


def test_an_evaluation_is_reused_only_on_the_same_users_and_policies(tmp_path):
    run = bench(tmp_path)
    out = tmp_path / "evaluate"
    out.mkdir()

    def evaluated(n_users):
        policies = {name: {"spec": name} for name in BASELINE_POLICIES}
        policies["tree"] = {"spec": "tree.json"}
        users = seeds.eval_users(5, n_users).to_dict()
        (out / "summary.json").write_text(json.dumps({"policies": policies, "eval_seeds": users}))

    calls = []
    evaluated(LEVELS["smoke"].eval_users)
    stage_evaluate(run, recording_commands(calls), {}, Path("tree.json"), tmp_path / "tuned.json")
    assert calls == []
    evaluated(40)  # an earlier run of the level on fewer users
    stage_evaluate(run, recording_commands(calls), {}, Path("tree.json"), tmp_path / "tuned.json")
    assert [name for name, _ in calls] == ["evaluate"]
