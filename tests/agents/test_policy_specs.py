from pathlib import Path

import pytest

from agents.policy import GreedyPolicy
from agents.policy_specs import check_specs, is_custom, make_policy, policy_label, spec_key, tunable_specs
from decay_model.errors import ConfigError
from envs.config import get_preset


def test_baselines_keep_their_names_and_paths_are_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert spec_key("greedy") == "greedy" and not is_custom("greedy")
    assert spec_key("runs/x/model.zip") == str(Path("runs/x/model.zip").resolve())
    assert spec_key('m.rules:Rule{"b":1,"a":2}') == 'm.rules:Rule{"a": 2, "b": 1}'
    assert is_custom("m.rules:Rule")


def test_labels_are_short_unique_and_never_a_baseline_name():
    assert policy_label("threshold", set()) == "threshold"
    assert policy_label("runs/ppo/model.zip", set()) == "ppo"
    assert policy_label("runs/ppo/model.zip", {"ppo"}) == "ppo#2"
    # a model in a folder named like a baseline does not take the baseline's label
    assert policy_label("runs/threshold/model.zip", set()) == "threshold#2"
    assert policy_label('m.rules:Rule{"a": 1}', set()) == "Rule(a=1)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ppo_best", "unknown policy 'ppo_best'"),
        ("runs/missing/model.zip", "model file runs/missing/model.zip not found"),
        ("model.zip", "model file model.zip not found"),
        ("not a:spec", "expected module.path:Name"),
    ],
)
def test_a_bad_spec_is_named(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        check_specs(["threshold", spec])


def test_baselines_are_built_and_have_no_tuning_grid_of_their_own():
    config = get_preset("small")
    check_specs(["greedy", "random"], config)
    assert isinstance(make_policy("greedy", "small", config, None, 0), GreedyPolicy)
    assert tunable_specs(["greedy", "threshold"]) == []
