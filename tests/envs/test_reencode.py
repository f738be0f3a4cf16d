"""Dynamic adjustment: users re-encoded from their simulated events by the neural decay model."""

import numpy as np
import pytest

from decay_model.logs import from_frame
from envs import state_layout
from envs.config import PRESETS
from envs.population import PRETRAINED
from envs.reencode import NOW
from envs.vector import InterestDecayVectorEnv

pytestmark = pytest.mark.skipif(
    not (PRETRAINED / "params.pt").is_file(), reason="the shipped neural artifact is not in this checkout"
)


def run(n=6, visits=7, every=3, seed=0):
    env = InterestDecayVectorEnv(n, config=PRESETS["default"].replace(reencode_every=every, horizon=50))
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).choice(3, size=(visits, n, 20), p=[0.6, 0.35, 0.05])
    before = []
    for a in actions:
        before.append(env.state.cats.copy())
        obs, *_ = env.step(a)
        assert np.all(np.isfinite(obs)) and obs.min() >= 0 and obs.max() <= 1
    return env, before


def test_events_are_recorded_oldest_first_with_their_categories():
    env, _ = run(n=3, visits=2, every=5)  # no re-encoding yet: the ring only fills
    state = env.state
    frame = env.sim.reencoder.frame(state, np.arange(3))
    assert len(frame) == int(np.minimum(state.hist_n, state.hist_cat.shape[1]).sum()) > 0
    for _user, events in frame.groupby("user_id"):
        assert events["timestamp"].is_monotonic_increasing and events["timestamp"].is_unique
        assert events["timestamp"].max() <= 1_700_000_000  # every event lies before the user's "now"
    assert set(frame["behavior"]) <= {state_layout.VIEW, state_layout.CLICK, state_layout.BUY}
    known = set(env.sim.reencoder.ids.tolist())
    assert set(frame["category_id"]) <= known


def test_reencoding_replaces_the_decay_of_categories_in_the_recent_events():
    env, before = run(n=6, visits=7, every=3)
    state = env.state
    # visits 3 and 6 re-encoded: the categories engaged since carry the model's numbers
    changed = state.cats[state_layout.LAM] != before[-1][state_layout.LAM]
    assert changed[:, :-1].any()
    assert np.all(state.lam[:, :-1] > 0) and np.all(np.isfinite(state.lam))
    assert np.all((state.floor >= 0) & (state.floor <= 1))
    # same seed, same numbers (the model runs on the CPU here)
    again, _ = run(n=6, visits=7, every=3)
    np.testing.assert_array_equal(again.state.cats, state.cats)
    # the numbers are the model's encoding of those events
    re = env.sim.reencoder
    enc = re.model.encode(from_frame(re.frame(state, np.arange(6))), at=NOW + 1)
    assert re(state, np.arange(6)) > 0
    ids = re.ids[state.cat[:, :-1]]
    for row in enc.itertuples():
        cols = np.flatnonzero(ids[row.user_id] == row.category_id)
        if cols.size:
            assert state.lam[row.user_id, cols[0]] == pytest.approx(row.lam, rel=1e-6)
            assert state.interest[row.user_id, cols[0]] == pytest.approx(row.interest, rel=1e-6)


def test_without_reencoding_nothing_is_recorded():
    env = InterestDecayVectorEnv(2, preset="small")
    env.reset(seed=0)
    env.step(np.zeros((2, PRESETS["small"].num_slots), np.int64))
    assert env.state.hist_cat.shape == (2, 0) and env.sim.reencoder is None


def test_checkers_pass_with_reencoding():
    import warnings

    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("decaygym/InterestDecay-small-v1", reencode_every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env, warn=True, skip_render_check=True)
    env.reset(seed=0)
    for _ in range(5):  # two re-encodings of the single user
        obs, *_ = env.step(np.zeros(env.action_space.shape, np.int64))
        assert env.observation_space.contains(obs)
