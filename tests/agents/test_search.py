import json

import optuna
import pandas as pd
import pytest
import yaml

from agents import seeds
from agents.search import SearchSettings, search
from agents.trained import load_hyperparams
from decay_model.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(**changes):
    values = {
        "algo": "ppo",
        "preset": "small",
        "base": load_hyperparams("ppo", "small").raw,
        "trials": 2,
        "timesteps": 1024,
        "valid_users": 8,
        "search_users": 8,
        "evaluations": 2,
    }
    return SearchSettings(**{**values, **changes})


def test_a_tiny_search_writes_its_trials_and_a_best_entry_decaygym_train_reads(tmp_path):
    out = tmp_path / "search"
    study = search(tiny(), out, command="decaygym-search --preset small --trials 2")
    assert len(study.trials) == 2
    table = pd.read_csv(out / "trials.csv")
    assert list(table["trial"]) == [0, 1] and set(table["state"]) <= {"complete", "pruned"}
    assert {"learning_rate", "n_steps", "batch_size", "ent_coef", "gamma", "width", "encoder"} <= set(table)
    summary = json.loads((out / "summary.json").read_text())
    best = summary["best"]
    assert best["score"] == max(t.value for t in study.trials if t.value is not None)
    text = (out / "best.yml").read_text()
    assert text.startswith("# Found by: decaygym-search --preset small --trials 2")
    entry = yaml.safe_load(text)["decaygym/InterestDecay-small-v1"]
    assert entry["learning_rate"] == best["params"]["learning_rate"]
    assert entry["batch_size"] <= entry["n_steps"] * entry["n_envs"]
    params = load_hyperparams("ppo", "small", out / "best.yml")  # decaygym-train accepts it
    assert params.policy_kwargs["encoder"] == best["params"]["encoder"]
    assert (out / "trials" / "1" / "summary.json").is_file()


def test_a_rerun_keeps_finished_trials_and_only_runs_the_missing_ones(tmp_path):
    out = tmp_path / "search"
    first = search(tiny(trials=1), out)
    kept = first.trials[0]
    again = search(tiny(trials=2), out)  # trials is the target; other settings must match
    assert [t.number for t in again.trials] == [0, 1]
    assert again.trials[0].params == kept.params and again.trials[0].value == kept.value
    assert again.trials[1].params != kept.params  # the sampler went on, it did not start over


def test_search_settings_errors_name_the_option(tmp_path):
    with pytest.raises(ConfigError, match="--trials must be >= 1"):
        tiny(trials=0)
    with pytest.raises(ConfigError, match="no search space"):
        tiny(algo="dqn")
    with pytest.raises(ConfigError, match="--torch-threads must be >= 1, got 0"):
        tiny(torch_threads=0)
    search(tiny(trials=1), tmp_path / "s")
    with pytest.raises(ConfigError, match="other settings \\(timesteps: stored 1024, given 2048\\)"):
        search(tiny(trials=1, timesteps=2048), tmp_path / "s")


def test_search_users_are_validation_users_other_than_the_eval_callbacks():
    valid, scoring = seeds.valid_users(3, 256), seeds.search_users(3, 256)
    assert not set(valid.seeds()) & set(scoring.seeds())
    assert seeds.VALID_BASE <= scoring.start < seeds.EVAL_BASE


class _PruneAll(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_a_pruned_trial_is_recorded_as_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(optuna.pruners, "MedianPruner", lambda **_: _PruneAll())
    study = search(tiny(trials=1), tmp_path / "search")
    assert [t.state.name for t in study.trials] == ["PRUNED"]
    assert pd.read_csv(tmp_path / "search" / "trials.csv")["state"].tolist() == ["pruned"]


def test_a_failure_that_repeats_ends_the_search_and_decaygyms_own_errors_end_it_at_once(
    tmp_path, monkeypatch
):
    import agents.search

    def diverge(*args, **kwargs):
        raise RuntimeError("loss is NaN")

    monkeypatch.setattr(agents.search, "train", diverge)
    with pytest.raises(RuntimeError, match=r"3 trials in a row failed .*loss is NaN"):
        search(tiny(trials=5), tmp_path / "nan")
    assert [
        t.state.name
        for t in optuna.load_study(
            study_name="decaygym", storage=f"sqlite:///{tmp_path / 'nan' / 'study.db'}"
        ).trials
    ] == ["FAIL"] * 3

    def missing(*args, **kwargs):
        raise ConfigError("--sim runs/sim: no such folder")

    monkeypatch.setattr(agents.search, "train", missing)
    with pytest.raises(ConfigError, match="no such folder"):
        search(tiny(trials=5), tmp_path / "missing")
