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
    env = gym.make("decaygym/InterestDecay-small-v1")
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


# -- hidden info, lifecycle intervals, gap share, comparisons -----------------------------------

from agents.evaluation import (  # noqa: E402
    REPORT_METRICS,
    align_users,
    compare_policies,
    gap_closed,
    lifecycle_ci,
)
from agents.policy import OraclePolicy, ThresholdPlusPolicy  # noqa: E402


def test_evaluate_hands_the_oracle_the_hidden_truth_of_each_visit():
    import gymnasium as gym

    import envs  # noqa: F401  (registers the ids)

    seeds = [11, 12, 13]
    rec = evaluate(OraclePolicy(0.3, 0.1), preset="small", seeds=seeds)
    env = gym.make("decaygym/InterestDecay-small-v1", hidden_info=True)
    oracle = OraclePolicy(0.3, 0.1)
    for seed, expected in zip(seeds, rec["return"], strict=True):
        obs, info = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            oracle.set_hidden(info)
            action, _ = oracle.predict(obs)
            obs, reward, term, trunc, info = env.step(action)
            total += reward
            done = term or trunc
        assert total == pytest.approx(expected, abs=1e-9)
    # a policy that reads no hidden state never gets it (and would fail if it needed it)
    evaluate(ThresholdPlusPolicy(0.3, 0.1, 3), preset="small", seeds=seeds)


def test_lifecycle_ci_matches_the_pooled_shares(threshold_records):
    for kind in ("age", "interest"):
        ci = lifecycle_ci(threshold_records, kind, n_boot=200, seed=0)
        pooled = lifecycle_table(threshold_records, kind)
        for _, row in ci.iterrows():
            expected = pooled.loc[row["bucket"], row["action"]]
            if row["decisions"]:
                assert row["share"] == pytest.approx(expected)
                assert row["ci_low"] - 1e-12 <= row["share"] <= row["ci_high"] + 1e-12
            assert row["decisions"] == pooled.loc[row["bucket"], "decisions"]
        shares = ci[ci["decisions"] > 0].groupby("bucket")["share"].sum()
        assert np.allclose(shares, 1.0)
    with pytest.raises(ValueError, match="kind"):
        lifecycle_ci(threshold_records, "size")


def _frame(returns, seeds=None):
    seeds = list(range(len(returns))) if seeds is None else seeds
    return pd.DataFrame({"seed": seeds, "return": np.asarray(returns, float)})


def test_gap_closed_is_the_share_of_the_mean_gap_with_a_paired_interval():
    rng = np.random.default_rng(0)
    base = rng.normal(size=200)
    t, o = _frame(base), _frame(base + 2.0)
    half = _frame(base + 1.0 + 0.1 * rng.normal(size=200))
    assert gap_closed(t, t, o, n_boot=200)["mean"] == 0 and gap_closed(o, t, o, n_boot=200)["mean"] == 1
    g = gap_closed(half, t, o, n_boot=500)
    assert g["mean"] == pytest.approx((half["return"].mean() - base.mean()) / 2.0)
    assert g["ci_low"] < g["mean"] < g["ci_high"] and g["ci_high"] - g["ci_low"] < 0.1  # paired: narrow
    assert g["gap"] == pytest.approx(2.0) and g["n"] == 200
    # users matched by seed, whatever the row order
    shuffled = half.sample(frac=1.0, random_state=1)
    assert gap_closed(shuffled, t, o, n_boot=500) == g
    with pytest.raises(ValueError, match="same users"):
        gap_closed(half.iloc[:-1], t, o)
    nan = gap_closed(half, t, t, n_boot=50)  # no gap: the share is undefined, not an error
    assert np.isnan(nan["mean"])


def test_align_users_sorts_by_seed_and_rejects_other_users():
    a, b = _frame([1.0, 2.0], [5, 3]), _frame([3.0, 4.0], [3, 5])
    a2, b2 = align_users(a, b)
    assert a2["seed"].tolist() == [3, 5] and a2["return"].tolist() == [2.0, 1.0]
    assert b2["return"].tolist() == [3.0, 4.0]
    with pytest.raises(ValueError, match="same users"):
        align_users(a, _frame([1.0, 2.0], [3, 4]))


def test_compare_policies_reports_everything_per_policy(threshold_records):
    oracle = evaluate(OraclePolicy(0.3, 0.1), preset="small", seeds=SEEDS)
    always = evaluate(AlwaysShow(), preset="small", seeds=SEEDS)
    records = {"threshold": threshold_records, "oracle": oracle, "always": always}
    report = compare_policies(records, threshold="threshold", oracle="oracle", n_boot=100)
    assert set(report) == set(records)
    for label, r in report.items():
        assert set(r["metrics"]) == set(REPORT_METRICS)
        assert r["metrics"]["return"]["mean"] == pytest.approx(records[label]["return"].mean())
        assert {row["bucket"] for row in r["lifecycle"]["age"]} >= {"lt6h"}
    assert report["threshold"]["diff_vs_threshold"]["return"]["mean"] == 0
    assert report["threshold"]["gap_closed"]["mean"] == 0
    assert report["oracle"]["gap_closed"]["mean"] == pytest.approx(1.0)
    d = report["always"]["diff_vs_threshold"]["return"]["mean"]
    assert d == pytest.approx(always["return"].mean() - threshold_records["return"].mean())
    assert compare_policies(records, threshold="threshold", n_boot=50)["always"]["gap_closed"] is None
    with pytest.raises(ValueError, match="no records"):
        compare_policies(records, threshold="nope")
