import numpy as np
import pandas as pd
import pytest

from agents.evaluation import (
    METRICS,
    bootstrap_ci,
    evaluate,
    lifecycle_table,
    paired_difference,
    summarize,
)
from agents.policy import AlwaysShow, RandomPolicy, RetireEverything, ThresholdPolicy
from envs.config import get_preset

SEEDS = list(range(100, 124))


@pytest.fixture(scope="module")
def threshold_records():
    return evaluate(ThresholdPolicy(0.3, 0.1), preset="small", seeds=SEEDS, num_users=10)


def test_two_evaluations_give_identical_records(threshold_records):
    again = evaluate(ThresholdPolicy(0.3, 0.1), preset="small", seeds=SEEDS, num_users=10)
    pd.testing.assert_frame_equal(threshold_records, again)
    r1 = evaluate(RandomPolicy(3), preset="small", seeds=SEEDS)
    r2 = evaluate(RandomPolicy(3), preset="small", seeds=SEEDS)
    pd.testing.assert_frame_equal(r1, r2)


def test_batching_does_not_change_a_stateless_policy(threshold_records):
    whole = evaluate(ThresholdPolicy(0.3, 0.1), preset="small", seeds=SEEDS)
    pd.testing.assert_frame_equal(threshold_records, whole)


def test_records_hold_one_episode_per_user(threshold_records):
    r = threshold_records
    horizon = get_preset("small").horizon
    assert r["seed"].tolist() == SEEDS
    assert set(METRICS) <= set(r.columns)
    assert ((r["length"] >= 1) & (r["length"] <= horizon)).all()
    # an episode ends early only by churn
    assert (r.loc[r["length"] < horizon, "churned"] == 1).all()
    shares = r[["share_show", "share_reduce", "share_retire"]].sum(axis=1)
    assert np.allclose(shares, 1.0)
    age_cols = [c for c in r.columns if c.startswith("n_age_")]
    int_cols = [c for c in r.columns if c.startswith("n_interest_")]
    assert (r[age_cols].sum(axis=1) == r["decisions"]).all()
    assert (r[int_cols].sum(axis=1) == r["decisions"]).all()
    table = lifecycle_table(r, "age")
    assert table["decisions"].sum() == r["decisions"].sum()


def test_return_matches_a_single_env_episode():
    import gymnasium as gym

    import envs  # noqa: F401  (registers the ids)

    rec = evaluate(AlwaysShow(), preset="small", seeds=[5, 6])
    env = gym.make("decaygym/InterestDecay-small-v0")
    for seed, expected in zip([5, 6], rec["return"], strict=True):
        obs, _ = env.reset(seed=seed)
        total, done, steps = 0.0, False, 0
        while not done:
            action, _ = AlwaysShow().predict(obs)
            obs, reward, term, trunc, _ = env.step(action)
            total += reward
            steps += 1
            done = term or trunc
        assert total == pytest.approx(expected, abs=1e-9)


def test_retire_everything_displays_nothing():
    r = evaluate(RetireEverything(), preset="small", seeds=SEEDS[:8])
    assert (r["slots_used"] == 0).all() and (r["return"] == 0).all()
    assert (r["share_retire"] == 1).all()


def test_paired_difference_with_itself_is_exactly_zero(threshold_records):
    diff = paired_difference(threshold_records, threshold_records.sample(frac=1.0, random_state=0))
    assert (diff[["mean", "ci_low", "ci_high"]].to_numpy() == 0).all()
    assert (diff["n"] == len(SEEDS)).all()


def test_paired_difference_needs_the_same_users(threshold_records):
    with pytest.raises(ValueError, match="same users"):
        paired_difference(threshold_records, threshold_records.iloc[:-1])


def test_bootstrap_ci_contains_the_mean_and_is_seeded(threshold_records):
    s = summarize(threshold_records, seed=1)
    assert (s["ci_low"] <= s["mean"]).all() and (s["mean"] <= s["ci_high"]).all()
    assert s.loc["return", "mean"] == pytest.approx(threshold_records["return"].mean())
    pd.testing.assert_frame_equal(s, summarize(threshold_records, seed=1))
    values = np.arange(50.0)
    mean, low, high = bootstrap_ci(values, seed=0)
    assert low < mean < high and mean == pytest.approx(24.5)


def test_evaluate_rejects_bad_seeds():
    with pytest.raises(ValueError, match="distinct"):
        evaluate(AlwaysShow(), preset="small", seeds=[1, 1])
    with pytest.raises(ValueError, match="at least one"):
        evaluate(AlwaysShow(), preset="small", seeds=[])


def test_config_overrides_reach_the_env():
    r = evaluate(AlwaysShow(), preset="small", seeds=SEEDS[:6], horizon=4)
    assert (r["length"] <= 4).all() and (r["length"] == 4).any()
