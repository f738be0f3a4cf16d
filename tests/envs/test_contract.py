"""The env's contract: termination vs truncation, overrides, one info schema, the page, probabilities,
crowding, random streams, hand-computed visits and guards (the Gymnasium docstring's promises)."""

import math

import gymnasium as gym
import numpy as np
import pytest

from decay_model.errors import ConfigError, SimulationError
from envs import ENV_IDS, InterestDecayEnv, rng, state_layout
from envs.config import MAX_APPEAL_SD, PRESETS
from envs.dynamics import SimState, Simulator
from envs.env import HIDDEN_INFO_KEYS, STEP_INFO_KEYS
from envs.vector import InterestDecayVectorEnv


def start(preset="small", n=4, seed=0, **overrides):
    cfg = PRESETS[preset].replace(**overrides) if overrides else PRESETS[preset]
    sim = Simulator(cfg)
    state = SimState.allocate(n, cfg)
    state.key[:] = [rng.key_from_seed(seed + i) for i in range(n)]
    sim.reset_users(state, np.arange(n))
    return sim, state


# -- truncation vs termination, and overrides ------------------------------------------------------


def test_vector_env_ends_episodes_as_gymnasium_sync_vector_env_over_time_limit():
    """terminated = churned; truncated = the horizon's visit, even when the user churned on it too."""
    n, horizon = 8, 3
    kwargs = {"churn_logit": -3.5, "annoyance_per_exposure": 0.6}
    ours = InterestDecayVectorEnv(n, preset="small", max_episode_steps=horizon, **kwargs)
    time_limit = gym.wrappers.TimeLimit
    while not time_limit.__module__.startswith("gymnasium"):  # RL Zoo swaps in its own on import
        time_limit = time_limit.__base__
    theirs = gym.vector.SyncVectorEnv(
        [lambda: time_limit(InterestDecayEnv("small", **kwargs), horizon) for _ in range(n)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    seeds = list(range(100, 100 + n))
    ours.reset(seed=seeds)
    theirs.reset(seed=seeds)
    both = 0
    for a in np.random.default_rng(0).integers(0, 3, (40, n, 8)):
        o1, r1, te1, tr1, _ = ours.step(a)
        o2, r2, te2, tr2, _ = theirs.step(a)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(te1, te2)
        np.testing.assert_array_equal(tr1, tr2)
        both += int((te1 & tr1).sum())
    assert both > 0  # users who churned on the horizon's visit: terminated and truncated alike


@pytest.mark.parametrize("make", ["single", "vector"])
def test_horizon_override_gives_episodes_of_that_length(make):
    if make == "single":
        env = gym.make("decaygym/InterestDecay-small-v1", horizon=5, churn_logit=-60.0)
        env.reset(seed=0)
        lengths = []
        for _ in range(5):
            *_, trunc, _ = env.step(np.zeros(8, np.int64))
            lengths.append(trunc)
        assert lengths == [False] * 4 + [True]
    else:
        venv = gym.make_vec("decaygym/InterestDecay-small-v1", num_envs=3, horizon=5, churn_logit=-60.0)
        venv.reset(seed=0)
        for t in range(5):
            *_, trunc, info = venv.step(np.zeros((3, 8), np.int64))
            assert trunc.all() == (t == 4)
        assert np.all(info["episode"]["l"] == 5)


def test_time_limits_shorten_episodes_and_the_vector_env_refuses_longer_ones():
    with pytest.raises(ConfigError, match="max_episode_steps=50 exceeds the config's horizon=20"):
        gym.make_vec("decaygym/InterestDecay-small-v1", num_envs=2, max_episode_steps=50)
    short = gym.make("decaygym/InterestDecay-small-v1", max_episode_steps=4, churn_logit=-60.0)
    short.reset(seed=0)
    assert [short.step(np.zeros(8, np.int64))[3] for _ in range(4)] == [False] * 3 + [True]


# -- one info schema -----------------------------------------------------------------------------


def test_single_and_vector_env_return_the_same_info_keys_and_hidden_only_when_asked():
    for hidden in (False, True):
        extra = set(HIDDEN_INFO_KEYS) if hidden else set()
        env = InterestDecayEnv("small", hidden_info=hidden)
        venv = InterestDecayVectorEnv(3, preset="small", hidden_info=hidden)
        _, info = env.reset(seed=0)
        _, vinfo = venv.reset(seed=0)
        assert set(info) == set(vinfo) == {"visit"} | extra
        _, _, _, _, info = env.step(np.zeros(8, np.int64))
        _, _, _, _, vinfo = venv.step(np.zeros((3, 8), np.int64))
        assert set(info) == set(STEP_INFO_KEYS) | extra
        assert {k for k in vinfo if not k.startswith(("final", "_", "episode"))} == set(info)
        for key in STEP_INFO_KEYS:
            assert vinfo[key].shape == (3,) and np.asarray(info[key]).shape == ()


def test_after_an_autoreset_the_hidden_info_belongs_to_the_new_user():
    n = 16
    venv = InterestDecayVectorEnv(n, preset="small", hidden_info=True, churn_logit=-1.0)
    _, info = venv.reset(seed=50)
    singles = [InterestDecayEnv("small", hidden_info=True, churn_logit=-1.0) for _ in range(n)]
    for i, env in enumerate(singles):
        _, single_info = env.reset(seed=50 + i)
        np.testing.assert_array_equal(single_info["true_interest"], info["true_interest"][i])
    checked = 0
    for a in np.random.default_rng(1).integers(0, 3, (8, n, 8)):
        _, _, term, trunc, info = venv.step(a)
        for i, env in enumerate(singles):
            *_, single_info = env.step(a[i])
            if term[i] or trunc[i]:  # the vector env's info is the next episode's first, as its observation
                assert info["visit"][i] == 0 and info["final_info"]["visit"][i] == single_info["visit"]
                np.testing.assert_array_equal(
                    info["final_info"]["true_interest"][i], single_info["true_interest"]
                )
                _, single_info = env.reset()
                checked += 1
            for key in HIDDEN_INFO_KEYS:
                np.testing.assert_array_equal(info[key][i], single_info[key])
    assert checked > 0


# -- the page ------------------------------------------------------------------------------------

PER_SLOT = ("present", "flat_uc", "item", "uid")


def permuted(state, perm):
    """A copy of ``state`` whose slots are reordered per user: new slot j holds old slot perm[i, j]."""
    out = state.rows(np.arange(state.num_users))
    rows = np.arange(state.num_users)[:, None]
    for name in PER_SLOT:
        getattr(out, name)[...] = getattr(state, name)[rows, perm]
    out.slots[...] = state.slots[:, rows, perm]
    return out


def by_candidate(state, i):
    """User i's candidates keyed by id: (item, category column, slot fields)."""
    width = state.cat.shape[1]
    return {
        int(state.uid[i, k]): (
            int(state.item[i, k]),
            int(state.flat_uc[i, k] - i * width),
            *state.slots[:, i, k],
        )
        for k in np.flatnonzero(state.present[i])
    }


def test_permuting_the_slots_and_actions_alike_changes_no_outcome():
    n, k = 40, 20
    sim, state = start("default", n=n, seed=3)
    gen = np.random.default_rng(4)
    for _ in range(8):  # a pool with history: exposures, clicks, purchases, fatigue, orphans
        sim.step(state, gen.choice(3, size=(n, k), p=[0.5, 0.4, 0.1]))
    perm = np.stack([gen.permutation(k) for _ in range(n)])
    other = permuted(state, perm)
    for _ in range(6):
        action = gen.choice(3, size=(n, k), p=[0.45, 0.45, 0.1])
        res = sim.step(state, action)
        res_p = sim.step(other, action[np.arange(n)[:, None], perm])
        for field in ("reward", "clicks", "purchases", "slots_used", "churned", "gap_h", "organic_events"):
            np.testing.assert_array_equal(getattr(res, field), getattr(res_p, field), err_msg=field)
        np.testing.assert_array_equal(state.cats, other.cats)
        np.testing.assert_array_equal(state.user, other.user)
        np.testing.assert_array_equal(state.counters, other.counters)
        for i in range(n):
            assert by_candidate(state, i) == by_candidate(other, i)
        # the refill puts the same new candidates into (possibly other) empty slots: re-align the slots
        order = np.argsort(np.where(state.present, state.uid, -1), axis=1)
        order_p = np.argsort(np.where(other.present, other.uid, -1), axis=1)
        perm = np.take_along_axis(order, np.argsort(order_p, axis=1), axis=1)
    assert res.clicks.sum() > 0


def test_the_platform_ranks_the_page_by_its_estimate():
    n = 300
    sim, state = start("small", n=n, seed=5, churn_logit=-60.0, explore_per_visit=0.0)
    gen = np.random.default_rng(5)
    for _ in range(6):  # items with different histories, so their estimates differ within a category
        sim.step(state, gen.choice(2, size=(n, 8)))
    state.present[:] = True  # a full pool of 8, all marked show, for M = 3 positions
    width = state.cat.shape[1]
    obs = np.zeros((n, sim.config.obs_size), np.float32)
    sim.observe(state, obs)
    estimate = obs[:, :8].astype(np.float64)
    cols = state.flat_uc - np.arange(n)[:, None] * width
    before = state.exposures.copy()
    sim.step(state, np.zeros((n, 8), np.int64))
    shown = state.exposures > before
    assert np.all(shown.sum(axis=1) == 3)
    # browsing lifts a whole category's estimate, which keeps the order within a category: there, every
    # displayed item has an estimate at least as high as every item left out
    compared = 0
    for i in range(n):
        for c in np.unique(cols[i]):
            mine = cols[i] == c
            if (mine & shown[i]).any() and (mine & ~shown[i]).any():
                low, high = estimate[i][mine & shown[i]].min(), estimate[i][mine & ~shown[i]].max()
                assert low >= high, (i, c)
                compared += low > high
    assert compared > 100


# -- probabilities, crowding, random streams -------------------------------------------------------


def test_appeal_without_a_finite_mean_is_refused():
    with pytest.raises(ConfigError, match="appeal_sd"):
        PRESETS["small"].replace(appeal_sd=MAX_APPEAL_SD)
    PRESETS["small"].replace(appeal_sd=MAX_APPEAL_SD * 0.99)  # just below: finite, accepted


def orphan_page(n, seed, same_category, **overrides):
    """n users whose three shown candidates are orphans (items of categories the user no longer tracks)."""
    sim, state = start(
        "small", n=n, seed=seed, **{"churn_logit": -60.0, "explore_per_visit": 0.0, **overrides}
    )
    width, per_cat = state.cat.shape[1], sim.config.items_per_category
    state.present[:] = False
    state.present[:, :3] = True
    state.flat_uc[:, :3] = (np.arange(n) * width + width - 1)[:, None]  # the orphan column
    cats = [5, 5, 5] if same_category else [5, 6, 7]
    state.item[:, :3] = np.asarray(cats) * per_cat + np.arange(3)
    state.slots[:, :, :3] = 0.0
    state.slots[state_layout.APPEAL, :, :3] = 4.0
    state.slots[state_layout.BUYP, :, :3] = 0.0
    return sim, state


def test_click_chance_is_one_minus_e_to_the_minus_rate():
    n = 6000
    sim, state = orphan_page(n, 6, same_category=False, orphan_interest=0.25)
    state.present[:, 1:] = False  # one candidate, at position 1: rate x = 0.25 · 4 = 1
    res = sim.step(state, np.zeros((n, 8), np.int64))
    assert res.slots_used.min() == 1
    assert res.clicks.mean() == pytest.approx(1 - np.exp(-1.0), abs=0.02)  # not min(x, 1) = 1
    sim, state = orphan_page(n, 6, same_category=False, orphan_interest=0.25)
    state.slots[state_layout.APPEAL] = 1e6  # however large the rate, the chance stays <= 1
    assert np.all(sim.step(state, np.zeros((n, 8), np.int64)).clicks == 3)


def test_orphans_crowd_only_items_of_their_own_true_category():
    n = 4000
    action = np.zeros((n, 8), np.int64)
    rates = []
    for same in (False, True):
        sim, state = orphan_page(n, 7, same, orphan_interest=0.1)
        res = sim.step(state, action)
        rates.append(res.clicks.mean() / 3)
    # three positions, bias 1, 1/log2(3), 1/2, rate x = 0.1 · 4 · bias (· 0.7² per extra same-category item)
    bias = 1 / np.log2(np.arange(2, 5))
    apart = np.mean(1 - np.exp(-0.4 * bias))
    crowded = np.mean(1 - np.exp(-0.4 * bias * 0.7**2))
    assert rates[0] == pytest.approx(apart, abs=0.015)
    assert rates[1] == pytest.approx(crowded, abs=0.015)


def test_stream_bases_never_coincide_over_16384_users_and_1000_visits():
    users, visits = 16_384, 1_000
    keys = np.array([rng.key_from_seed(s) for s in range(users)], np.uint64)
    bases = [
        rng.stream(keys[:, None], 0, np.arange(visits, dtype=np.uint64)[None, :], purpose).ravel()
        for purpose in (rng.DRAW_VISIT, rng.DRAW_CANDIDATE, rng.DRAW_REFILL)
    ]
    bases += [rng.stream(keys, 0, 0, purpose) for purpose in (rng.DRAW_START, rng.DRAW_POPULATION)]
    every = np.concatenate(bases)
    assert every.size == users * (3 * visits + 2)
    every.sort()
    assert not np.any(every[1:] == every[:-1])


# -- one visit computed by hand ------------------------------------------------------------------


def by_hand(sim, state, action):
    """Clicks, purchases, churn and the gap of one visit of every user, from the formulas of the
    ``envs.dynamics`` docstring and the draws of ``envs.rng``. Every displayed item is an orphan, so
    the user's own browsing (which moves only tracked categories) cannot change the page."""
    cfg, n = sim.config, state.num_users
    width = state.cat.shape[1]
    per_cat = cfg.items_per_category
    out = {"clicks": [], "purchases": [], "churned": [], "gap_h": [], "slots_used": [], "reward": []}
    for i in range(n):
        key, episode, visit = state.key[i], state.episode[i], state.visit[i]
        base_c = rng.stream(key, episode, visit, rng.DRAW_CANDIDATE)[0]
        base_v = rng.stream(key, episode, visit, rng.DRAW_VISIT)[0]

        def u(base, index):
            return float(rng.uniform(base, index)[0])

        slots = [k for k in range(cfg.num_slots) if state.present[i, k] and action[i, k] != 2]
        col = {k: int(state.flat_uc[i, k] - i * width) for k in slots}
        assert all(c == width - 1 for c in col.values())
        alpha = cfg.estimate_prior_clicks
        f = {name: state.slots[j, i] for j, name in enumerate(("appeal", "buyp", "value"))}
        sat, clicks_so_far, expected = state.satiation[i], state.clicks[i], state.expected_clicks[i]
        est = {
            k: float(state.estimate[i, col[k]])
            * (clicks_so_far[k] + alpha)
            / (expected[k] + alpha)
            * (1 - sat[k])
            for k in slots
        }
        uid = state.uid[i]
        show = sorted((k for k in slots if action[i, k] == 0), key=lambda k: (-est[k], uid[k]))
        reduce = [k for k in slots if action[i, k] == 1 and u(base_c, 3 * uid[k]) < cfg.reduce_display_prob]
        page = (show + sorted(reduce, key=lambda k: (-est[k], uid[k])))[: cfg.exposure_slots]
        pos = {k: p + 1 for p, k in enumerate(page)}
        clicks = buys = 0
        value = 0.0
        for k in page:
            same = sum(state.item[i, j] // per_cat == state.item[i, k] // per_cat for j in page)
            x = (
                cfg.crowding ** (same - 1)
                * float(state.interest[i, col[k]])
                * float(f["appeal"][k])
                * (1 / math.log2(1 + pos[k]))
                * math.exp(-float(state.fatigue[i, k]))
                * (1 - float(sat[k]))
            )
            if u(base_c, 3 * uid[k] + 1) < 1 - math.exp(-x):
                clicks += 1
                if u(base_c, 3 * uid[k] + 2) < float(f["buyp"][k]) * (1 - float(sat[k])):
                    buys += 1
                    value += float(f["value"][k])
        satisfaction = (
            state.satisfaction[i] + cfg.satisfaction_per_click * clicks + cfg.satisfaction_per_purchase * buys
        )
        annoyance = state.annoyance[i] + cfg.annoyance_per_exposure * (len(page) - clicks)
        logit = cfg.churn_logit + cfg.churn_annoyance * annoyance - cfg.churn_satisfaction * satisfaction
        churned = u(base_v, 0) < 1 / (1 + math.exp(-logit))
        q = np.asarray(cfg.gap_residual_quantiles)
        resid = np.interp(u(base_v, 1), np.linspace(0, 1, len(q)), q)
        m = cfg.return_gap_min_fraction
        gap = cfg.session_gap_h + math.exp(state.gap_mu[i] + resid) * (
            m + (1 - m) * math.exp(-cfg.return_satisfaction * satisfaction)
        )
        reward = cfg.click_value * clicks + cfg.purchase_value_scale * value - cfg.slot_cost * len(page)
        for name, v in zip(out, (clicks, buys, churned, gap, len(page), reward), strict=True):
            out[name].append(v)
    return {name: np.asarray(v) for name, v in out.items()}


def test_one_visit_equals_the_docstring_formulas_by_hand():
    n = 400
    sim, state = orphan_page(n, 8, same_category=False, orphan_interest=0.3, churn_logit=-2.0)
    gen = np.random.default_rng(9)
    state.present[:, :6] = True  # six orphans: three categories, two items each
    state.item[:, 3:6] = state.item[:, :3] + 1
    state.flat_uc[:, 3:6] = state.flat_uc[:, :1]
    for name, low, high in (
        ("appeal_mult", 0.2, 4.0), ("buy_p", 0.1, 0.9), ("value", 0.5, 2.0), ("fatigue", 0.0, 1.0),
        ("satiation", 0.0, 0.5), ("clicks", 0.0, 2.0), ("expected_clicks", 0.0, 3.0),
    ):  # fmt: skip
        getattr(state, name)[:, :6] = gen.uniform(low, high, (n, 6)).astype(np.float32)
    state.clicks[:, :6] = np.floor(state.clicks[:, :6])
    state.annoyance[:] = gen.uniform(0, 3, n)
    state.satisfaction[:] = gen.uniform(0, 2, n)
    action = gen.choice(3, size=(n, 8), p=[0.5, 0.35, 0.15])
    expected = by_hand(sim, state, action)
    res = sim.step(state, action)
    np.testing.assert_array_equal(res.clicks, expected["clicks"])
    np.testing.assert_array_equal(res.purchases, expected["purchases"])
    np.testing.assert_array_equal(res.slots_used, expected["slots_used"])
    np.testing.assert_array_equal(res.churned, expected["churned"])
    np.testing.assert_allclose(res.gap_h, expected["gap_h"], rtol=1e-6)
    np.testing.assert_allclose(res.reward, expected["reward"], rtol=1e-5, atol=1e-6)
    # the page had room to rank and to cut, and every outcome occurred
    assert res.clicks.sum() > 50 and res.purchases.sum() > 10 and 0 < res.churned.sum() < n
    assert (res.slots_used == sim.config.exposure_slots).any() and (res.slots_used < 3).any()


# -- guards ----------------------------------------------------------------------------------------


class BadModel:
    """A decay 'model' whose encoding of one user holds a NaN interest."""

    def encode(self, log, at):
        pairs = log.events.groupby(["user_id", "category_id"]).size().rename("n_events").reset_index()
        out = pairs.assign(interest=0.3, lam=0.1, floor=0.02)
        out.loc[out["user_id"] == out["user_id"].max(), "interest"] = np.nan
        return out


def test_reencoded_values_are_checked_before_they_enter_the_state():
    from envs.reencode import ReEncoder

    sim, state = start("small", n=3, seed=10, reencode_every=0)
    state_h = SimState.allocate(3, PRESETS["small"].replace(reencode_every=1))
    state_h.__dict__.update({name: getattr(state, name) for name in ("counters", "user", "cat", "cats")})
    state_h.hist_cat[:, :2] = state.cat[:, :2]
    state_h.hist_time[:, :2] = -1.0
    state_h.hist_n[:] = 2
    before = state_h.cats.copy()
    encoder = ReEncoder(BadModel(), sim.population.names)
    with pytest.raises(SimulationError, match=r"re-encoding user 2 .*interest=nan .*in \[0, 1\]"):
        encoder(state_h, np.arange(3))
    np.testing.assert_array_equal(state_h.cats, before)  # nothing written


def test_every_registered_id_is_v1():
    assert all(env_id.endswith("-v1") for env_id in ENV_IDS)
    with pytest.raises(gym.error.DeprecatedEnv):
        gym.make("decaygym/InterestDecay-v0")
