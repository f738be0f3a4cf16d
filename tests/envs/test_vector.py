import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

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
        env = gym.make(f"decaygym/InterestDecay-{preset}-v1", churn_logit=-3.0)
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


def test_make_vec_uses_the_vector_entry_point():
    venv = gym.make_vec(
        "decaygym/InterestDecay-small-v1", num_envs=8, vectorization_mode="vector_entry_point"
    )
    assert isinstance(venv, InterestDecayVectorEnv)
    assert venv.max_episode_steps == 20
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (8, 75)
