import json

import pytest

from agents.trained import load_hyperparams, load_policy
from agents.training import TrainSettings, train
from decay_model.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_ppo(**changes):
    values = {
        "algo": "ppo",
        "preset": "small",
        "seed": 0,
        "timesteps": 1024,
        "n_envs": 32,
        "eval_users": 16,
        "eval_freq": 0,
        "checkpoint_freq": 1024,
        "device": "auto",
        "hyperparams": load_hyperparams("ppo", "small").raw,
        "hyperparams_source": "agents/hyperparams/ppo.yml",
    }
    return TrainSettings(**{**values, **changes})


def test_train_runs_from_python_without_the_command(tmp_path):
    run = tmp_path / "run"
    result = train(small_ppo(), run)
    assert result.run_dir == run and result.num_timesteps == 1024 and result.summary["resumed_at"] == []
    assert json.loads((run / "summary.json").read_text()) == result.summary
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["num_timesteps"] == 1024
    assert not (run / "config.json").exists()  # provenance is the caller's
    assert load_policy(run, "small").algo == "ppo"


def test_settings_and_resume_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="--n-envs must be >= 1"):
        small_ppo(n_envs=0)
    with pytest.raises(ConfigError, match="no checkpoint yet"):
        train(small_ppo(), tmp_path, resume=True)


def test_training_pins_its_torch_threads_and_restores_the_callers(monkeypatch, tmp_path):
    import torch as th

    import agents.training as training

    seen = []
    monkeypatch.setattr(training, "_train", lambda *args: seen.append(th.get_num_threads()))
    before = th.get_num_threads()
    train(small_ppo(torch_threads=2), tmp_path / "run")
    assert seen == [2] and th.get_num_threads() == before
    with pytest.raises(ConfigError, match="--torch-threads must be >= 1"):
        small_ppo(torch_threads=0)
