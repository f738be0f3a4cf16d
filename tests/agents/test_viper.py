import json

import numpy as np
import pytest

from agents import seeds
from agents.distillation import ViperSearch
from agents.evaluation import evaluate
from agents.policy import ThresholdPolicy
from agents.simulator import Simulator
from agents.trained import load_hyperparams, load_policy
from agents.training import TrainSettings, train
from agents.viper import MAX_WEIGHT, LabelledRows, expert_labels, rollout_labelled, viper
from decay_model.errors import ConfigError
from envs.config import get_preset
from scripts import explain

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("viper") / "ppo"
    settings = TrainSettings(
        algo="ppo", preset="small", seed=0, timesteps=2048, n_envs=32, eval_users=8, eval_freq=0,
        checkpoint_freq=2048, device="cpu", hyperparams=load_hyperparams("ppo", "small").raw,
        hyperparams_source="agents/hyperparams/ppo.yml",
    )  # fmt: skip
    train(settings, run)
    return run


def small_sim():
    return Simulator.of_preset("small")


def test_the_agent_driving_itself_agrees_fully_and_scores_what_evaluate_scores(agent_dir):
    agent = load_policy(agent_dir, "small")
    users = list(range(500, 530))
    rows = LabelledRows()
    agreement, mean_return = rollout_labelled(None, agent, get_preset("small"), users, rows, batch=16)
    assert agreement == 1.0
    assert mean_return == pytest.approx(
        evaluate(load_policy(agent_dir, "small"), preset="small", seeds=users)["return"].mean()
    )
    weights = rows.weight()
    assert len(weights) == len(rows.decisions().actions) > 0
    assert (weights >= 0).all() and (weights <= MAX_WEIGHT).all()


def test_viper_searches_every_depth_and_iteration_and_keeps_the_best(agent_dir):
    fit, select = seeds.train_users(0, 20), seeds.search_users(0, 20)
    result = viper(
        lambda: load_policy(agent_dir, "small"), small_sim(), fit, select,
        depths=(2, 3), iterations=1, min_samples_leaf=5, seed=0, batch=64,
    )  # fmt: skip
    assert [(s.depth, s.iteration) for s in result.steps] == [(2, 0), (2, 1), (3, 0), (3, 1)]
    assert result.steps[1].rows > result.steps[0].rows  # DAgger adds the tree's own states
    chosen = result.chosen
    assert chosen.selection_return == max(s.selection_return for s in result.steps)
    assert result.depth == chosen.depth and result.tree.get_depth() <= chosen.depth
    assert len(result.rows.actions) == chosen.rows
    assert json.loads(json.dumps(result.to_dict()))["chosen"] == vars(chosen)


def test_viper_refuses_a_rule():
    with pytest.raises(ConfigError, match="trained feed-forward"):
        expert_labels(ThresholdPolicy(0.3, 0.1), np.zeros((1, get_preset("small").obs_size), np.float32))


def test_explain_by_viper_writes_its_search(agent_dir, tmp_path, capsys):
    out = tmp_path / "explain"
    code = explain.main(
        ["--policy", str(agent_dir / "model.zip"), "--preset", "small", "--viper", "1",
         "--max-depth", "2", "3", "--train-users", "20", "--check-users", "20", "--min-samples-leaf", "5",
         "--n-boot", "50", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "explain.json").read_text())
    assert len(summary["viper"]["steps"]) == 4 and summary["max_depth"] == summary["viper"]["chosen"]["depth"]
    assert "<- chosen" in capsys.readouterr().out
    assert ViperSearch((2, 3), 1, seeds.search_users(0, 20)).steps == 4
