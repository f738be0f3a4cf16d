import numpy as np
import pytest

from agents.policy import (
    AlwaysShow,
    Policy,
    RandomPolicy,
    RetireEverything,
    ShowNothing,
    ThresholdPolicy,
)
from decay_model.errors import ConfigError
from envs.vector import InterestDecayVectorEnv

K = 5
OBS_DIM = K * 9 + 3


def make_obs(interest, empty=None):
    """A batch of observations with block 0 = interest and block 6 = empty flags."""
    interest = np.atleast_2d(np.asarray(interest, np.float32))
    obs = np.zeros((interest.shape[0], OBS_DIM), np.float32)
    obs[:, :K] = interest
    if empty is not None:
        obs[:, 6 * K : 7 * K] = np.atleast_2d(empty)
    return obs


def test_threshold_decisions_at_and_around_the_boundaries():
    policy = ThresholdPolicy(show_above=0.5, retire_below=0.1)
    obs = make_obs([0.5, 0.4999, 0.1, 0.0999, 0.9])
    actions, state = policy.predict(obs)
    assert actions.tolist() == [[0, 1, 1, 2, 0]]
    assert actions.dtype == np.int64
    assert state is None


def test_equal_thresholds_never_reduce_and_zero_retire_never_retires():
    obs = make_obs([0.3, 0.2999, 0.0, 1.0, 0.31])
    assert ThresholdPolicy(0.3, 0.3).predict(obs)[0].tolist() == [[0, 2, 2, 0, 0]]
    assert ThresholdPolicy(0.3, 0.0).predict(obs)[0].tolist() == [[0, 1, 1, 0, 0]]


def test_empty_slots_get_action_zero():
    empty = [0, 1, 0, 1, 0]
    obs = make_obs([0.0, 0.0, 0.0, 0.0, 0.0], empty)
    assert ThresholdPolicy(0.5, 0.1).predict(obs)[0].tolist() == [[2, 0, 2, 0, 2]]
    assert ShowNothing().predict(obs)[0].tolist() == [[1, 0, 1, 0, 1]]
    assert RetireEverything().predict(obs)[0].tolist() == [[2, 0, 2, 0, 2]]
    assert (RandomPolicy(0).predict(obs)[0][:, [1, 3]] == 0).all()


@pytest.mark.parametrize(
    "policy", [ThresholdPolicy(0.3, 0.1), AlwaysShow(), ShowNothing(), RetireEverything(), RandomPolicy(1)]
)
def test_batch_and_single_shapes(policy):
    assert isinstance(policy, Policy)
    batch = make_obs(np.linspace(0, 1, 4 * K).reshape(4, K))
    actions, _ = policy.predict(batch)
    assert actions.shape == (4, K) and actions.dtype == np.int64
    assert set(np.unique(actions)) <= {0, 1, 2}
    single, _ = policy.predict(batch[2])
    assert single.shape == (K,) and single.dtype == np.int64
    if not isinstance(policy, RandomPolicy):
        assert single.tolist() == actions[2].tolist()


def test_policies_act_on_real_env_observations():
    venv = InterestDecayVectorEnv(3, preset="small")
    obs, _ = venv.reset(seed=0)
    for policy in (
        ThresholdPolicy(0.3, 0.1),
        AlwaysShow(),
        ShowNothing(),
        RetireEverything(),
        RandomPolicy(0),
    ):
        actions, _ = policy.predict(obs)
        assert venv.action_space.contains(actions)
        venv.step(actions)


def test_state_is_passed_through():
    state = (np.zeros(2),)
    _, out = ThresholdPolicy(0.3, 0.1).predict(make_obs([0.1] * K), state=state)
    assert out is state


@pytest.mark.parametrize(
    ("show_above", "retire_below"), [(0.1, 0.2), (0.0, 0.01), (float("nan"), 0.1), (0.5, float("inf"))]
)
def test_bad_thresholds_raise_config_error_naming_the_fields(show_above, retire_below):
    with pytest.raises(ConfigError) as err:
        ThresholdPolicy(show_above, retire_below)
    message = str(err.value)
    assert "show_above" in message or "retire_below" in message
    if np.isfinite(show_above) and np.isfinite(retire_below):
        assert "show_above" in message and "retire_below" in message


def test_bad_observation_shape_raises():
    with pytest.raises(ValueError, match="observation length"):
        AlwaysShow().predict(np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match="shape"):
        AlwaysShow().predict(np.zeros((2, 2, OBS_DIM), np.float32))


def test_random_policy_is_reproducible_and_uses_its_own_generator():
    obs = make_obs(np.zeros((6, K)))
    a1, _ = RandomPolicy(7).predict(obs)
    np.random.seed(123)  # noqa: NPY002  (the global generator must not matter)
    a2, _ = RandomPolicy(7).predict(obs)
    assert np.array_equal(a1, a2)
    with pytest.raises(ConfigError):
        RandomPolicy(0, probs=(0.5, 0.5, 0.5))
