import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from agents.sb3_vec_env import InterestDecaySB3VecEnv
from envs.vector import InterestDecayVectorEnv


def vector_rollout(n, seed, actions, **kwargs):
    venv = InterestDecayVectorEnv(n, **kwargs)
    obs, _ = venv.reset(seed=seed)
    seen, rewards, dones = [obs], [], []
    for a in actions:
        obs, reward, terminated, truncated, info = venv.step(a)
        last = obs.copy()
        if "final_obs" in info:
            for i in info["_final_obs"].nonzero()[0]:
                last[i] = info["final_obs"][i]
        seen.append(last)
        rewards.append(reward)
        dones.append(terminated | truncated)
    return np.stack(seen), np.stack(rewards), np.stack(dones)


@pytest.mark.parametrize("preset", ["small", "default"])
def test_user_i_equals_single_env_with_seed_plus_i(preset):
    n, seed, steps = 4, 21, 45
    k = 8 if preset == "small" else 20
    actions = np.random.default_rng(1).integers(0, 3, (steps, n, k))
    obs, rewards, dones = vector_rollout(n, seed, actions, preset=preset, churn_logit=-3.0)
    assert dones.sum() > 0  # the comparison crosses episode ends (autoreset)
    for i in range(n):
        env = gym.make(f"decaygym/InterestDecay-{preset}-v0", churn_logit=-3.0)
        o, _ = env.reset(seed=seed + i)
        np.testing.assert_array_equal(o, obs[0, i])
        for t in range(steps):
            o, r, term, trunc, _ = env.step(actions[t, i])
            np.testing.assert_array_equal(o, obs[t + 1, i])
            assert np.float32(r) == np.float32(rewards[t, i])
            assert (term or trunc) == dones[t, i]
            if term or trunc:
                env.reset()


def test_run_to_run_identical():
    actions = np.random.default_rng(2).integers(0, 3, (30, 16, 8))
    a = vector_rollout(16, 3, actions, preset="small")
    b = vector_rollout(16, 3, actions, preset="small")
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_spaces_autoreset_and_infos():
    venv = InterestDecayVectorEnv(6, preset="small", hidden_info=True, churn_logit=-1.0)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert venv.observation_space.shape == (6, 8 * 9 + 3)
    assert venv.action_space.shape == (6, 8)
    obs, _ = venv.reset(seed=0)
    assert venv.observation_space.contains(obs)
    ended = False
    for _ in range(10):
        obs, reward, term, trunc, info = venv.step(venv.action_space.sample())
        assert venv.observation_space.contains(obs)
        assert reward.shape == term.shape == trunc.shape == (6,)
        assert info["true_interest"].shape == (6, 8)
        np.testing.assert_allclose(
            reward, info["click_reward"] + info["purchase_reward"] - info["slot_cost"], atol=1e-5
        )
        if "final_obs" in info:
            ended = True
            done = term | trunc
            np.testing.assert_array_equal(info["_final_obs"], done)
            assert np.all(info["episode"]["l"][done] >= 1)
            assert np.all(obs[done, -3] == 0)  # the new episode starts at visit 0
    assert ended


def test_bad_actions_and_seeds():
    venv = InterestDecayVectorEnv(3, preset="small")
    with pytest.raises(gym.error.ResetNeeded):
        venv.step(np.zeros((3, 8), np.int64))
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        venv.step(np.full((3, 8), 3))
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros((2, 8), np.int64))
    with pytest.raises(ValueError, match="seeds"):
        venv.reset(seed=[1, 2])
    with pytest.raises(ValueError, match="num_envs"):
        InterestDecayVectorEnv(0)


def test_truncation_at_max_episode_steps():
    venv = InterestDecayVectorEnv(3, preset="small", max_episode_steps=5, churn_logit=-30.0)
    venv.reset(seed=0)
    for _t in range(5):
        _, _, term, trunc, info = venv.step(np.zeros((3, 8), np.int64))
    assert trunc.all() and not term.any()
    assert np.all(info["episode"]["l"] == 5)


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


def test_make_vec_uses_the_vector_entry_point():
    venv = gym.make_vec(
        "decaygym/InterestDecay-small-v0", num_envs=8, vectorization_mode="vector_entry_point"
    )
    assert isinstance(venv, InterestDecayVectorEnv)
    assert venv.max_episode_steps == 20
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (8, 75)
