"""Fuzzing at scale: hypothesis-drawn configs, random actions, many episodes; nothing may break.

The slow test steps 10,000 episodes (``--runslow``); the default run steps a smaller share of
the same search, so CI exercises it on every change.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs.config import MAX_APPEAL_SD, MAX_EXPLORE, SimConfig
from envs.vector import InterestDecayVectorEnv


@st.composite
def configs(draw) -> SimConfig:
    """Valid configs from tiny to default size, with every rate pushed toward its edges."""
    k = draw(st.integers(2, 24))
    w = draw(st.integers(1, 12))
    unit = st.floats(0.0, 1.0)
    return SimConfig(
        num_slots=k,
        exposure_slots=draw(st.integers(1, k - 1)),
        fresh_per_visit=draw(st.integers(1, k)),
        max_user_categories=w,
        items_per_category=draw(st.integers(1, 50)),
        catalogue_seed=draw(st.integers(0, 2**31 - 1)),
        quality_a=draw(st.floats(0.05, 10.0)),
        quality_b=draw(st.floats(0.05, 10.0)),
        value_log_sd=draw(st.floats(0.0, 3.0)),
        appeal_sd=draw(st.floats(0.0, MAX_APPEAL_SD * 0.999)),
        click_scale=draw(st.floats(0.0, 50.0)),
        purchase_rate=draw(unit),
        reduce_display_prob=draw(unit),
        crowding=draw(unit),
        click_lift=draw(unit),
        purchase_satiation=draw(unit),
        fatigue_per_exposure=draw(st.floats(0.0, 5.0)),
        annoyance_per_exposure=draw(st.floats(0.0, 2.0)),
        satisfaction_per_click=draw(st.floats(0.0, 10.0)),
        churn_logit=draw(st.floats(-30.0, 5.0)),
        return_satisfaction=draw(st.floats(0.0, 5.0)),
        return_gap_min_fraction=draw(unit),
        gap_log_mean=draw(st.floats(-3.0, 6.0)),
        gap_log_user_sd=draw(st.floats(0.0, 2.0)),
        events_log_mean=draw(st.floats(-3.0, 2.0)),
        explore_per_visit=draw(st.floats(0.0, float(MAX_EXPLORE))),
        organic_purchase_rate=draw(unit),
        engagement_scale=draw(st.floats(0.0, 5.0)),
        engagement_gap_power=draw(st.floats(0.0, 1.5)),
        engagement_lift=draw(unit),
        engagement_budget=draw(st.one_of(st.just(0.0), st.floats(0.01, float(w)))),
        engagement_budget_user_sd=draw(st.floats(0.0, 2.0)),
        orphan_interest=draw(unit),
        initial_interest_sd=draw(st.floats(0.0, 3.0)),
        estimate_prior_clicks=draw(st.floats(0.01, 20.0)),
        horizon=draw(st.integers(1, 30)),
    )


def fuzz(examples: int, episodes_per_example: int) -> int:
    """Run the search; returns the episodes stepped (every one must end without a fault)."""
    total = []

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(config=configs(), num_users=st.integers(1, 64), seed=st.integers(0, 2**31 - 1))
    def check(config: SimConfig, num_users: int, seed: int) -> None:
        venv = InterestDecayVectorEnv(num_users, config=config, hidden_info=True)
        obs, _ = venv.reset(seed=seed)
        gen = np.random.default_rng(seed)
        k = config.num_slots
        ended = 0
        with np.errstate(all="raise"):  # no overflow, no invalid value, no division by zero anywhere
            while ended < episodes_per_example:
                p = gen.dirichlet(np.ones(3))
                obs, reward, terminated, truncated, info = venv.step(gen.choice(3, size=(num_users, k), p=p))
                assert venv.observation_space.contains(obs), "observation outside its space"
                assert np.all(np.isfinite(reward))
                for key in ("gap_h", "true_interest", "true_appeal"):
                    assert np.all(np.isfinite(info[key])), key
                assert np.all(info["gap_h"] >= config.session_gap_h)
                assert np.all(info["slots_used"] <= config.exposure_slots)
                assert np.all((venv.state.interest >= 0) & (venv.state.interest <= 1))
                ended += int((terminated | truncated).sum())
        total.append(ended)

    check()
    return sum(total)


def test_fuzz_a_few_hundred_episodes():
    assert fuzz(examples=20, episodes_per_example=25) >= 500


@pytest.mark.slow
def test_fuzz_ten_thousand_episodes():
    assert fuzz(examples=50, episodes_per_example=200) >= 10_000
