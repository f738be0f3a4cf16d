import gymnasium as gym
import numpy as np
import pytest

from agents.sb3_vec_env import InterestDecaySB3VecEnv
from envs.vector import InterestDecayVectorEnv


def test_sb3_adapter_api():
    from stable_baselines3.common.vec_env import VecEnv

    venv = InterestDecaySB3VecEnv(5, preset="small", churn_logit=-1.0)
    assert isinstance(venv, VecEnv)
    venv.seed(7)
    obs = venv.reset()
    assert obs.shape == (5, 75)
    ref, _ = InterestDecayVectorEnv(5, preset="small", churn_logit=-1.0).reset(seed=7)
    np.testing.assert_array_equal(obs, ref)
    saw_done = False
    for _ in range(10):
        obs, reward, dones, infos = venv.step(np.zeros((5, 8), np.int64))
        assert len(infos) == 5 and reward.dtype == np.float32
        for i in dones.nonzero()[0]:
            saw_done = True
            assert infos[i]["terminal_observation"].shape == (75,)
            assert "TimeLimit.truncated" in infos[i] and "episode" in infos[i]
    assert saw_done
    assert venv.get_attr("max_episode_steps") == [20] * 5
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 5
    venv.set_attr("hidden_info", True)
    assert venv.venv.hidden_info is True
    assert venv.env_method("close_extras") == [None] * 5
    venv.close()


@pytest.mark.parametrize(("churn_logit", "bootstrap"), [(60.0, False), (-60.0, True)])
def test_a_user_who_churns_on_the_last_visit_is_not_bootstrapped(churn_logit, bootstrap):
    """SB3 bootstraps the value where ``TimeLimit.truncated``: only for users cut off by the horizon."""
    venv = InterestDecaySB3VecEnv(4, preset="small", horizon=1, churn_logit=churn_logit)
    venv.seed(0)
    venv.reset()
    _, _, dones, infos = venv.step(np.zeros((4, 8), np.int64))
    assert dones.all()  # the horizon's only visit: truncated, and with churn_logit 60 terminated too
    assert [info["TimeLimit.truncated"] for info in infos] == [bootstrap] * 4


def train_ppo(num_users, total):
    from stable_baselines3 import PPO

    venv = InterestDecaySB3VecEnv(num_users, preset="small")
    venv.seed(0)
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=8,
        batch_size=512,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [32]},
    )
    model.learn(total_timesteps=total)
    return model, venv


def test_sb3_ppo_trains_on_the_adapter():
    model, venv = train_ppo(256, 4096)
    assert model.num_timesteps >= 4096
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (256, 8)


@pytest.mark.slow
def test_sb3_ppo_trains_on_thousands_of_users():
    model, _ = train_ppo(2048, 200_000)
    assert model.num_timesteps >= 200_000
