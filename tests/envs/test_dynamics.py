import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs import kernels, rng
from envs.config import PRESETS
from envs.dynamics import SimState, Simulator


def start(preset="small", n=4, seed=0, **overrides):
    cfg = PRESETS[preset].replace(**overrides) if overrides else PRESETS[preset]
    sim = Simulator(cfg)
    state = SimState.allocate(n, cfg)
    state.key[:] = [rng.key_from_seed(seed + i) for i in range(n)]
    sim.reset_users(state, np.arange(n))
    return sim, state


def check_state(sim, state, obs):
    assert np.all(np.isfinite(obs)) and obs.min() >= 0 and obs.max() <= 1
    for arr in (state.interest, state.floor, state.estimate, sim.predicted_interest(state)):
        assert np.all(np.isfinite(arr)) and arr.min() >= 0 and arr.max() <= 1
    assert np.all(state.lam[:, :-1] > 0)  # the last column is the orphans' (constant interest)
    assert np.all(state.slots >= 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    preset=st.sampled_from(["small", "default", "large"]),
    n=st.integers(1, 6),
    probs=st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)).filter(lambda p: sum(p) > 0),
    budget=st.sampled_from([0.0, 0.5, 4.0]),  # budget mode off, and on (4 = every tracked category of small)
)
def test_random_actions_keep_everything_in_range(seed, preset, n, probs, budget):
    sim, state = start(preset, n, seed, engagement_budget=budget)
    k = sim.config.num_slots
    obs = np.zeros((n, sim.config.obs_size), np.float32)
    sim.observe(state, obs)
    check_state(sim, state, obs)
    p = np.asarray(probs) / sum(probs)
    actions = np.random.default_rng(seed).choice(3, size=(30, n, k), p=p)
    for a in actions:
        res = sim.step(state, a)
        sim.observe(state, obs)
        check_state(sim, state, obs)
        assert np.all(res.slots_used <= sim.config.exposure_slots)
        assert np.all(res.purchases <= res.clicks) and np.all(res.clicks <= res.slots_used)
        assert np.all(res.gap_h > 0)
        np.testing.assert_allclose(
            res.reward, res.click_reward + res.purchase_reward - res.slot_cost, atol=1e-5
        )


def test_user_trajectory_does_not_depend_on_the_batch():
    n = kernels.PARALLEL_FROM["step"] + 16  # the batch runs the parallel kernel, one user the serial one
    sim, big = start("default", n=n, seed=100)
    _, one = start("default", n=1, seed=103)
    actions = np.random.default_rng(0).integers(0, 3, (30, n, 20))
    for a in actions:
        rb = sim.step(big, a)
        r1 = sim.step(one, a[3:4])
        assert rb.reward[3] == r1.reward[0] and rb.churned[3] == r1.churned[0]
        np.testing.assert_array_equal(big.slots[:, 3], one.slots[:, 0])
        for name in ("interest", "clock_h", "annoyance", "satisfaction", "last_engaged_h", "present", "item"):
            np.testing.assert_array_equal(getattr(big, name)[3], getattr(one, name)[0], err_msg=name)


def test_a_pickled_simulator_carries_no_work_arrays_and_steps_the_same():
    import pickle

    sim, state = start("default", n=3, seed=7)
    actions = np.random.default_rng(1).integers(0, 3, (6, 3, 20))
    sim.step(state, actions[0])
    assert sim._work is not None
    stale = pickle.loads(pickle.dumps(sim))
    assert stale._work is None  # scratch is rebuilt, so a checkpoint survives a change of its layout
    state2 = pickle.loads(pickle.dumps(state))
    for a in actions[1:]:
        r, r2 = sim.step(state, a), stale.step(state2, a)
        np.testing.assert_array_equal(r.reward, r2.reward)
    np.testing.assert_array_equal(state.slots, state2.slots)


def test_interest_decays_toward_the_floor_without_engagement():
    # browsing still happens, but without its lift and without new categories
    sim, state = start("small", n=50, seed=1, churn_logit=-30.0, engagement_lift=0.0, explore_per_visit=0.0)
    retire = np.full((50, 8), 2)
    gap_to_floor = np.abs(state.interest - state.floor)
    for _ in range(5):
        res = sim.step(state, retire)
        assert np.all(res.clicks == 0) and np.all(res.slots_used == 0)
    assert np.all(np.abs(state.interest - state.floor) <= gap_to_floor + 1e-6)
    assert np.abs(state.interest - state.floor).mean() < gap_to_floor.mean()


def test_exposure_positions_and_empty_slots():
    sim, state = start("small", n=1, seed=2)
    k, m, r = 8, sim.config.exposure_slots, sim.config.fresh_per_visit
    res = sim.step(state, np.zeros((1, k), np.int64))
    assert res.slots_used[0] == m  # more show-marked items than positions
    res = sim.step(state, np.full((1, k), 2))  # retire everything: nothing is shown
    assert res.slots_used[0] == 0 and res.reward[0] == 0
    assert state.present.sum() == r  # retrieval refills at most R slots a visit
    res = sim.step(state, np.zeros((1, k), np.int64))
    assert res.slots_used[0] == min(m, r)  # empty slots show nothing


def test_retired_slot_gets_a_cold_candidate():
    sim, state = start("small", n=1, seed=4, fresh_per_visit=8)
    action = np.zeros((1, 8), np.int64)
    for _ in range(5):
        sim.step(state, action)
    action[0, 0] = 2
    sim.step(state, action)
    assert state.present[0, 0]
    assert state.exposures[0, 0] == 0 and state.clicks[0, 0] == 0
    assert state.expected_clicks[0, 0] == 0
    # cold: the item's estimate is its category's estimate (relative click-through 1 before any exposure)
    uc = state.flat_uc[0, 0]
    assert sim.predicted_interest(state)[0, 0] == pytest.approx(min(1.0, state.estimate.ravel()[uc]))


def test_position_bias_table():
    sim, _ = start("default", n=1)
    bias = sim.bias_table
    assert bias[0] == 0 and bias[1] == pytest.approx(1.0) and bias[2] == pytest.approx(1 / np.log2(3))
    assert np.all(bias[sim.config.exposure_slots + 1 :] == 0)


def test_reduce_shows_less_than_show():
    sim, state = start("default", n=300, seed=5, churn_logit=-30.0)
    shown = sim.step(state, np.ones((300, 20), np.int64)).slots_used.mean()
    assert 0 < shown < sim.config.exposure_slots
    assert sim.step(state, np.zeros((300, 20), np.int64)).slots_used.mean() == sim.config.exposure_slots


def test_clicks_lift_and_purchases_satiate():
    sim, state = start("default", n=2000, seed=6, churn_logit=-30.0)
    clicked = np.zeros(0)
    for _ in range(3):
        res = sim.step(state, np.zeros((2000, 20), np.int64))
        clicked = np.append(clicked, res.clicks)
    assert clicked.sum() > 0
    assert state.purchases.sum() > 0
    bought = state.purchases > 0
    assert state.satiation[bought].min() > 0


def test_annoyance_drives_churn():
    _, calm = start("default", n=3000, seed=7)
    sim, _ = start("default", n=1, seed=7)
    loud = sim.config.replace(annoyance_per_exposure=2.0)
    sim_loud = Simulator(loud)
    state_loud = SimState.allocate(3000, loud)
    state_loud.key[:] = calm.key
    sim_loud.reset_users(state_loud, np.arange(3000))
    show = np.zeros((3000, 20), np.int64)
    calm_churn = sim.step(calm, show).churned.mean()
    loud_churn = sim_loud.step(state_loud, show).churned.mean()
    assert loud_churn > calm_churn + 0.1


def test_no_global_random_state_in_envs():
    import re
    from pathlib import Path

    import envs

    allowed = {"Generator", "PCG64", "SeedSequence", "default_rng"}
    for path in Path(envs.__file__).parent.glob("*.py"):
        for name in re.findall(r"np\.random\.(\w+)", path.read_text()):
            assert name in allowed, f"{path.name} uses np.random.{name}"
        assert "import random" not in path.read_text() and "torch.manual_seed" not in path.read_text()


def test_a_very_satisfied_user_keeps_a_minimum_gap_between_visits() -> None:
    # Satisfaction from clicks grows without bound here; the mean gap must stay
    # >= session_gap_h + return_gap_min_fraction × the user's usual gap (here e^{2.3} ≈ 10 h).
    import warnings

    import gymnasium as gym

    import envs  # noqa: F401

    env = gym.make(
        "decaygym/InterestDecay-small-v1",
        click_scale=5.0,
        satisfaction_per_click=50.0,
        return_satisfaction=5.0,
        gap_log_mean=2.3,
        gap_log_user_sd=0.0,
        return_gap_min_fraction=0.5,
        churn_logit=-30.0,
    )
    gaps = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in the churn or gap arithmetic
        for seed in range(20):
            env.reset(seed=seed)
            for _ in range(20):
                _, _, terminated, truncated, info = env.step(np.zeros(env.action_space.shape, dtype=np.int64))
                gaps.append(info["gap_h"])
                if terminated or truncated:
                    break
    assert np.median(gaps) > 0.5 + 0.5 * 10.0 * 0.8


def test_compiled_random_words_equal_the_numpy_hash():
    """The kernels' scalar hash and envs.rng's array hash are the same function."""
    gen = np.random.default_rng(0)
    key = gen.integers(0, 2**64, 50, dtype=np.uint64)
    episode, visit = gen.integers(0, 2**24, 50, dtype=np.uint64), gen.integers(0, 2**32, 50, dtype=np.uint64)
    index = np.array([0, 1, 41, 69, 3 * 10**6 + 2])
    for purpose in (rng.DRAW_VISIT, rng.DRAW_CANDIDATE, rng.DRAW_REFILL, rng.DRAW_START):
        base = rng.stream(key, episode, visit, purpose)
        words = rng.words(base[:, None], index[None, :])
        units = rng.to_unit(words)
        for i in range(0, 50, 7):
            b = np.uint64(kernels._stream(key[i], episode[i], visit[i], np.uint64(purpose)))
            assert b == base[i]
            for j, idx in enumerate(index):
                assert kernels._word(b, idx) == words[i, j]
                assert kernels._unit(words[i, j]) == units[i, j]


def test_envs_stepped_from_two_threads_at_once_give_the_same_numbers():
    """Numba's parallel loops must not run twice at once: a busy pool means a serial loop, same result."""
    import threading

    n = kernels.PARALLEL_FROM["step"] + 8
    actions = np.random.default_rng(1).integers(0, 3, (20, n, 20))

    def run(out):
        sim, state = start("default", n=n, seed=7)
        for a in actions:
            sim.step(state, a)
        out.append(state.slots.copy())

    alone = []
    run(alone)
    results = []
    threads = [threading.Thread(target=run, args=(results,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    for r in results:
        np.testing.assert_array_equal(r, alone[0])


def engaged_per_visit(scale: float, budget: float, n: int = 2000, visits: int = 3) -> tuple[float, float]:
    """Mean tracked categories a visit engages with tracked interests reset to ``scale`` × U(0.1, 1)
    before each visit, and how much more often the upper half of those interests is engaged."""
    sim, state = start("default", n=n, seed=5, engagement_budget=budget, engagement_budget_user_sd=0.0)
    w = sim.config.max_user_categories
    action = np.zeros((n, sim.config.num_slots), np.int64)
    shape = np.random.default_rng(0).uniform(0.1, 1.0, (n, w)).astype(np.float32)
    upper = shape > 0.55
    counts, ratios = [], []
    for _ in range(visits):
        state.interest[:, :w] = scale * shape
        engaged = sim.step(state, action, browsing=True).browsing.engaged_events > 0
        counts.append(engaged.sum(axis=1).mean())
        ratios.append(engaged[upper].mean() / engaged[~upper].mean())
    return float(np.mean(counts)), float(np.mean(ratios))


def test_budget_mode_engages_the_budget_however_hot_the_interests():
    (cold, _), (hot, _) = engaged_per_visit(0.1, 0.0), engaged_per_visit(0.9, 0.0)
    assert hot > 3 * cold  # off: every tracked category on its own chance
    for budget in (0.8, 2.5):
        (cold, cold_ratio), (hot, hot_ratio) = engaged_per_visit(0.1, budget), engaged_per_visit(0.9, budget)
        # on: the chances sum to the budget; a visit with nothing engaged and nothing new (about 1 in 10
        # here) still engages its nearest miss, which adds a little
        assert abs(hot - cold) < 0.1, (budget, cold, hot)
        assert budget - 0.1 < cold < budget + 0.2, (budget, cold)
        assert cold_ratio > 2 and hot_ratio > 1.5  # interest still decides which categories


def test_budget_mode_reads_each_users_own_budget():
    sim, state = start("default", n=2000, seed=6, engagement_budget=1.0, engagement_budget_user_sd=0.0)
    assert np.all(state.budget == 1.0)  # new users take the config's B
    state.budget[1000:] = 3.0
    res = sim.step(state, np.zeros((2000, sim.config.num_slots), np.int64), browsing=True)
    engaged = (res.browsing.engaged_events > 0).sum(axis=1)
    assert 0.9 < engaged[:1000].mean() < 1.2 and 2.8 < engaged[1000:].mean() < 3.2
