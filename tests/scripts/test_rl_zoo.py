"""RL Zoo trains and tunes our agents from our registration and hyperparameter files (tiny budgets)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.trained import load_policy
from envs.vector import InterestDecayVectorEnv

# RL Zoo runs in subprocesses: importing rl_zoo3 here would replace Gymnasium's TimeLimit for the
# whole test session (rl_zoo3.gym_patches), so its presence is checked without importing it
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("rl_zoo3") is None,
    reason="rl_zoo3 is not installed (it is in the dev extra: pip install -e '.[dev]')",
)

REPO = Path(__file__).resolve().parents[2]
ENV = "decaygym/InterestDecay-small-v1"


def zoo(algo, conf, log, *extra):
    command = [
        sys.executable, "-m", "rl_zoo3.train", "--algo", algo, "--env", ENV, "--gym-packages", "envs",
        "--conf-file", f"agents/hyperparams/{conf}.yml", "-f", str(log), "--seed", "0",
        "--num-threads", "1", "--verbose", "0", *extra,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def trained_zip(log, algo):
    (model,) = (log / algo).glob("decaygym-InterestDecay-small-v1_*/decaygym-InterestDecay-small-v1.zip")
    return model


def test_rl_zoo_trains_the_per_item_policy_from_our_yaml(tmp_path):
    zoo(
        "ppo", "ppo", tmp_path, "-n", "256", "--eval-freq", "-1", "--save-freq", "-1",
        "-params", "n_envs:4", "n_steps:32", "batch_size:64", "n_epochs:1",
    )  # fmt: skip
    model = trained_zip(tmp_path, "ppo")
    assert "PerItemActorCriticPolicy" in (model.parent / ENV.replace("/", "-") / "config.yml").read_text()
    policy = load_policy(model, "small")  # a bare RL Zoo zip is a Policy too
    obs, _ = InterestDecayVectorEnv(3, preset="small").reset(seed=0)
    actions, _ = policy.predict(obs)
    assert policy.algo == "ppo" and actions.shape == (3, 8) and np.isin(actions, [0, 1, 2]).all()


def test_rl_zoo_optuna_search_tunes_our_agent(tmp_path):
    # A2C: its sampler keeps a trial at most 2048 steps; PPO's search is the slow test below
    zoo(
        "a2c", "a2c", tmp_path, "-optimize", "--n-trials", "2", "--n-jobs", "1", "--sampler", "random",
        "--pruner", "none", "-n", "128", "--n-evaluations", "1", "--eval-episodes", "2", "--no-optim-plots",
        "-params", "n_envs:1",
    )  # fmt: skip
    (report,) = (tmp_path / "a2c").glob("report_decaygym-InterestDecay-small-v1_2-trials-*.csv")
    trials = pd.read_csv(report)
    assert len(trials) == 2 and (trials["state"] == "COMPLETE").all()
    assert trials["value"].notna().all() and "params_net_arch" in trials


@pytest.mark.slow
def test_rl_zoo_optuna_search_of_ppo(tmp_path):
    zoo(
        "ppo", "ppo", tmp_path, "-optimize", "--n-trials", "2", "--n-jobs", "1", "--sampler", "random",
        "--pruner", "none", "-n", "256", "--n-evaluations", "1", "--eval-episodes", "2", "--no-optim-plots",
        "-params", "n_envs:1",
    )  # fmt: skip
    (report,) = (tmp_path / "ppo").glob("report_*.csv")
    assert (pd.read_csv(report)["state"] == "COMPLETE").all()


@pytest.mark.slow
@pytest.mark.parametrize(("algo", "conf"), [("dqn", "dqn"), ("ppo_lstm", "recurrent_ppo")])
def test_rl_zoo_trains_dqn_one_at_a_time_and_recurrent_ppo(tmp_path, algo, conf):
    extra = ["-params", "n_envs:2", "learning_starts:64"] if algo == "dqn" else [
        "-params", "n_envs:2", "n_steps:32", "batch_size:32", "n_epochs:1"
    ]  # fmt: skip
    zoo(algo, conf, tmp_path, "-n", "256", "--eval-freq", "-1", "--save-freq", "-1", *extra)
    policy = load_policy(trained_zip(tmp_path, algo), "small")
    obs, _ = InterestDecayVectorEnv(3, preset="small").reset(seed=0)
    assert policy.predict(obs, episode_start=np.ones(3, bool))[0].shape == (3, 8)
