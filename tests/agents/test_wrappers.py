import gymnasium as gym
import numpy as np
import pytest
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3 import DQN
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

import envs  # noqa: F401  (registers the env ids)
from agents.sb3_vec_env import InterestDecaySB3VecEnv
from agents.wrappers import (
    DECISION_OBS_SIZE,
    DECISION_SPACE,
    ActionMasks,
    OneAtATime,
    OneAtATimeVecEnv,
    action_masks,
    decision_observation,
    one_at_a_time_predict,
)
from decay_model.errors import ConfigError
from envs.layout import EMPTY_BLOCK, NUM_ITEM_FEATURES
from envs.vector import InterestDecayVectorEnv

K = 8  # the small preset


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def empty_of(obs):
    return obs[..., EMPTY_BLOCK * K : (EMPTY_BLOCK + 1) * K] > 0.5


def retire_some(n, visit):
    """Retire slots 0-3 on even visits, else show: pools with empty slots, and rewards."""
    return np.full((n, K), 2 if visit % 2 == 0 else 0, np.int64) * (np.arange(K) < 4)


def test_masks_allow_only_show_on_empty_slots():
    venv = InterestDecayVectorEnv(16, preset="small")
    obs, _ = venv.reset(seed=3)
    obs, *_ = venv.step(np.full((16, K), 2))  # retire everything: only R = 2 fresh arrive
    empty = empty_of(obs)
    assert empty.sum(axis=1).min() >= K - 2
    masks = action_masks(obs)
    assert masks.shape == (16, 3 * K) and masks.dtype == bool
    per_slot = masks.reshape(16, K, 3)
    assert per_slot[:, :, 0].all()
    np.testing.assert_array_equal(per_slot[:, :, 1], ~empty)
    np.testing.assert_array_equal(per_slot[:, :, 2], ~empty)
    np.testing.assert_array_equal(action_masks(obs[0]), masks[0])


def test_adapter_gives_maskable_ppo_one_mask_row_per_user():
    venv = InterestDecaySB3VecEnv(6, preset="small")
    venv.seed(1)
    obs = venv.reset()
    for wrapped in (venv, VecNormalize(VecMonitor(venv), norm_obs=True)):
        assert is_masking_supported(wrapped)
        np.testing.assert_array_equal(get_action_masks(wrapped), action_masks(obs))
    obs, *_ = venv.step(np.full((6, K), 2))
    np.testing.assert_array_equal(get_action_masks(venv), action_masks(obs))
    rows = venv.env_method("action_masks", indices=[4, 1])
    np.testing.assert_array_equal(np.stack(rows), action_masks(obs)[[4, 1]])
    assert venv.get_attr("max_episode_steps") == [20] * 6  # other attributes still come from the env


def test_action_masks_wrapper_on_one_env():
    env = ActionMasks(gym.make("decaygym/InterestDecay-small-v1"))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(env.action_masks(), action_masks(obs))
    obs, *_ = env.step(np.full(K, 2))
    np.testing.assert_array_equal(env.get_wrapper_attr("action_masks")(), action_masks(obs))


class CountSteps(gym.Wrapper):
    def __init__(self, env):
        super().__init__(env)
        self.steps, self.rewards = 0, []

    def step(self, action):
        self.steps += 1
        out = self.env.step(action)
        self.rewards.append(out[1])
        return out


def test_one_at_a_time_steps_the_env_once_per_k_decisions_and_keeps_its_return():
    inner = CountSteps(gym.make("decaygym/InterestDecay-small-v1"))
    env = OneAtATime(inner)
    assert env.observation_space == DECISION_SPACE and env.action_space == gym.spaces.Discrete(3)
    gen = np.random.default_rng(0)
    obs, _ = env.reset(seed=11)
    decisions, rewards, visits = [], [], []
    done = False
    while not done:
        assert env.observation_space.contains(obs)
        a = int(gen.integers(3))
        decisions.append(a)
        obs, reward, terminated, truncated, _ = env.step(a)
        rewards.append(reward)
        done = terminated or truncated
        if len(decisions) % K == 0:
            visits.append(decisions[-K:])
        else:
            assert reward == 0.0 and not done  # only the K-th decision of a visit is rewarded
    assert len(decisions) == K * inner.steps
    assert sum(rewards) == pytest.approx(sum(inner.rewards))
    # the same visits on the plain env give the same return
    plain = gym.make("decaygym/InterestDecay-small-v1")
    plain.reset(seed=11)
    total = sum(plain.step(np.array(v))[1] for v in visits)
    assert total == pytest.approx(sum(rewards))


def test_one_at_a_time_rejects_other_envs():
    with pytest.raises(ConfigError, match="InterestDecayEnv observation"):
        OneAtATime(gym.make("CartPole-v1"))


def test_decision_observation_reads_the_candidate_and_the_visit_so_far():
    venv = InterestDecayVectorEnv(4, preset="small")
    obs, _ = venv.reset(seed=0)
    obs, *_ = venv.step(retire_some(4, 0))
    decided = np.full((4, K), -1)
    decided[:, :3] = [0, 1, 2]
    d = decision_observation(obs, 3, decided)
    assert d.shape == (4, DECISION_OBS_SIZE) and d.dtype == np.float32
    assert np.all((d >= 0) & (d <= 1))
    items = obs[:, : K * NUM_ITEM_FEATURES].reshape(4, NUM_ITEM_FEATURES, K)
    np.testing.assert_array_equal(d[:, :NUM_ITEM_FEATURES], items[:, :, 3])
    np.testing.assert_array_equal(d[:, 9:12], obs[:, -3:])
    np.testing.assert_allclose(d[:, 30], 3 / (K - 1))
    full = ~empty_of(obs)[:, :3]
    np.testing.assert_allclose(d[:, 32:35], full / K)  # one decision of each kind, counted if non-empty


def test_vec_one_at_a_time_equals_the_vector_env():
    n = 5
    dec = OneAtATimeVecEnv(n, preset="small")
    dec.seed(7)
    obs = dec.reset()
    ref = InterestDecayVectorEnv(n, preset="small")
    ref.reset(seed=7)
    gen = np.random.default_rng(2)
    episodes = 0
    for _visit in range(25):
        actions = gen.integers(0, 3, size=(n, K))
        for j in range(K):
            assert obs.shape == (n, DECISION_OBS_SIZE)
            obs, reward, dones, infos = dec.step(actions[:, j])
            if j < K - 1:
                assert not reward.any() and not dones.any()
        _, ref_reward, term, trunc, info = ref.step(actions)
        np.testing.assert_allclose(reward, ref_reward.astype(np.float32))
        np.testing.assert_array_equal(dones, term | trunc)
        for i in dones.nonzero()[0]:
            episodes += 1
            assert infos[i]["episode"]["r"] == pytest.approx(info["episode"]["r"][i])
            assert infos[i]["episode"]["l"] == K * info["episode"]["l"][i]
            assert infos[i]["terminal_observation"].shape == (DECISION_OBS_SIZE,)
            assert infos[i]["TimeLimit.truncated"] == bool(trunc[i] and not term[i])
    assert episodes >= n  # the horizon is 20 visits


def test_one_at_a_time_predict_decides_slot_by_slot():
    venv = InterestDecayVectorEnv(3, preset="small")
    obs, _ = venv.reset(seed=0)
    obs, *_ = venv.step(retire_some(3, 0))
    seen = []

    def predict_one(decision, deterministic):
        seen.append(decision.copy())
        return np.where(decision[:, 31] > 0.5, 2, 0)  # retire the lower-ranked half

    actions = one_at_a_time_predict(predict_one, obs)
    assert actions.shape == (3, K) and len(seen) == K
    assert np.all(actions[empty_of(obs)] == 0)
    for j, d in enumerate(seen):
        np.testing.assert_allclose(d[:, 30], j / (K - 1))


def test_dqn_trains_one_candidate_at_a_time():
    venv = OneAtATimeVecEnv(16, preset="small")
    venv.seed(0)
    model = DQN(
        "MlpPolicy",
        venv,
        learning_starts=64,
        buffer_size=2000,
        batch_size=32,
        train_freq=1,
        target_update_interval=100,
        policy_kwargs={"net_arch": [16]},
        seed=0,
        device="cpu",
    )
    model.learn(512)
    assert model.num_timesteps >= 512
    raw = InterestDecayVectorEnv(4, preset="small")
    obs, _ = raw.reset(seed=1)
    actions = one_at_a_time_predict(lambda d, det: model.predict(d, deterministic=det)[0], obs)
    assert actions.shape == (4, K) and set(np.unique(actions)) <= {0, 1, 2}
