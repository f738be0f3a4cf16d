import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from decay_model.errors import ConfigError
from envs import ENV_IDS, PRESETS, InterestDecayEnv, ResetNeededError
from envs.layout import ITEM_FEATURES, USER_FEATURES


@pytest.mark.parametrize(
    ("env_id", "overrides"),
    [
        *((env_id, {}) for env_id in sorted(ENV_IDS)),
        ("decaygym/InterestDecay-small-v1", {"engagement_budget": 1.0}),
    ],
)
def test_checkers_pass_without_warnings(env_id, overrides):
    env = gym.make(env_id, **overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env, warn=True, skip_render_check=True)
    assert env.unwrapped.config.horizon == overrides.get("horizon", PRESETS[ENV_IDS[env_id]].horizon)


def test_make_registered_ids_and_spaces():
    env = gym.make("decaygym/InterestDecay-v1")
    assert isinstance(env.unwrapped, InterestDecayEnv)
    assert env.action_space == gym.spaces.MultiDiscrete([3] * 20)
    assert env.observation_space.shape == (20 * 9 + 3,)
    assert envs.ENV_IDS["decaygym/InterestDecay-small-v1"] == "small"


def test_docstring_spaces_match_the_real_spaces():
    doc = InterestDecayEnv.__doc__
    cfg = PRESETS["default"]
    env = InterestDecayEnv(preset="default")
    assert "``MultiDiscrete([3] * K)``" in doc
    assert env.action_space == gym.spaces.MultiDiscrete([3] * cfg.num_slots)
    m = re.search(r"``Box\((\S+), (\S+), shape=\(K\*F \+ U,\), (\w+)\)`` with F = (\d+) and U = (\d+)", doc)
    assert m, "observation space sentence missing from the docstring"
    low, high, dtype, f, u = m.groups()
    assert (int(f), int(u)) == (len(ITEM_FEATURES), len(USER_FEATURES))
    assert env.observation_space.shape == (cfg.num_slots * int(f) + int(u),)
    assert env.observation_space.dtype == np.dtype(dtype)
    assert np.all(env.observation_space.low == float(low)) and np.all(
        env.observation_space.high == float(high)
    )
    item_rows = re.findall(r"^\s*\| (\d+)\s+\| (.+?)\|\s*(\S+)\s*\|\s*(\S+)\s*\|", doc, flags=re.M)
    assert [int(r[0]) for r in item_rows] == list(range(len(ITEM_FEATURES)))
    user_rows = re.findall(
        r"^\s*\| (K\*F(?: \+ \d)?)\s+\| (.+?)\|\s*(\S+)\s*\|\s*(\S+)\s*\|", doc, flags=re.M
    )
    assert len(user_rows) == len(USER_FEATURES)
    for row in item_rows + user_rows:
        assert (float(row[2]), float(row[3])) == (float(low), float(high))
    for name, row in zip(ITEM_FEATURES, item_rows, strict=True):
        words = [w for w in name.split("_") if len(w) > 3]
        assert any(w[:5] in row[1].lower() for w in words), (name, row[1])


@pytest.mark.parametrize(
    "action",
    [
        np.full(8, 3),
        np.full(8, -1),
        np.zeros(7, np.int64),
        np.zeros((2, 8), np.int64),
        np.full(8, 0.5),
        ["a"] * 8,
    ],
)
def test_action_outside_space_raises_value_error(action):
    env = gym.make("decaygym/InterestDecay-small-v1")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.unwrapped.step(action)


def test_step_before_reset_and_after_end_asks_for_reset():
    env = InterestDecayEnv(preset="small", churn_logit=20.0)  # leaves after the first visit
    with pytest.raises(ResetNeededError, match="reset"):
        env.step(np.zeros(8, np.int64))
    env.reset(seed=1)
    _, _, terminated, truncated, _ = env.step(np.zeros(8, np.int64))
    assert terminated and not truncated
    with pytest.raises(ResetNeededError, match="reset"):
        env.step(np.zeros(8, np.int64))


def test_the_env_truncates_itself_at_the_horizon():
    env = gym.make("decaygym/InterestDecay-small-v1", churn_logit=-30.0)
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(np.zeros(8, np.int64))
        steps += 1
        assert not terminated
    assert steps == PRESETS["small"].horizon
    with pytest.raises(ResetNeededError):
        env.step(np.zeros(8, np.int64))


def rollout(env, seed, steps=40):
    obs, _ = env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, 3, (steps, env.action_space.shape[0]))
    out = [obs]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append(np.append(obs, [r, term, trunc, info["clicks"], info["purchases"]]))
        if term or trunc:
            out.append(env.reset()[0])
    return np.concatenate(out)


def test_same_seed_same_trajectory_and_seeds_differ():
    a = rollout(gym.make("decaygym/InterestDecay-small-v1"), 5)
    b = rollout(gym.make("decaygym/InterestDecay-small-v1"), 5)
    c = rollout(gym.make("decaygym/InterestDecay-small-v1"), 6)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_info_reports_reward_terms_and_hidden_truth():
    env = InterestDecayEnv(preset="small", hidden_info=True)
    env.reset(seed=3)
    for _ in range(10):
        _, reward, term, _, info = env.step(np.zeros(8, np.int64))
        assert reward == pytest.approx(
            info["click_reward"] + info["purchase_reward"] - info["slot_cost"], abs=1e-5
        )
        assert info["slots_used"] == 3
        assert info["slot_cost"] == pytest.approx(3 * env.config.slot_cost)
        assert info["true_interest"].shape == (8,)
        assert np.all((info["true_interest"] >= 0) & (info["true_interest"] <= 1))
        if term:
            break


def test_overrides_and_bad_overrides():
    env = InterestDecayEnv(preset="small", num_slots=6, exposure_slots=2)
    assert env.action_space.shape == (6,)
    with pytest.raises(ConfigError, match="exposure_slots"):
        InterestDecayEnv(preset="small", exposure_slots=9)


def test_unseeded_reset_continues_the_stream():
    env = InterestDecayEnv(preset="small")
    first, _ = env.reset(seed=9)
    second, _ = env.reset()
    again, _ = env.reset(seed=9)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)
