import numpy as np
import pandas as pd
import pytest

from agents import statistics
from agents.statistics import (
    BootstrapResult,
    bootstrap_p_value,
    hierarchical_bootstrap,
    holm,
    holm_bootstrap,
    paired_hierarchical_bootstrap,
    stack_runs,
)

DELTA = 1.0  # the agent's true advantage over the baseline


def synthetic(gen, n_seeds=5, n_users=200, *, seed_sd=0.5, user_sd=2.0, noise_sd=1.0):
    """Agent = user effect + DELTA + a shift per training seed + noise; baseline = user effect + noise.

    User effects and seed shifts have mean 0, so the truth is DELTA for agent - baseline and for
    the agent's mean. The agent's rows are in reverse user order: users are matched by seed.
    """
    users = np.arange(1000, 1000 + n_users)
    effect = gen.normal(0, user_sd, n_users)
    baseline = pd.DataFrame(
        {"policy": "threshold", "seed": users, "return": effect + gen.normal(0, noise_sd, n_users)}
    )
    shifts = gen.normal(0, seed_sd, n_seeds)
    runs = {
        s: pd.DataFrame(
            {
                "policy": f"ppo_s{s}",
                "seed": users[::-1],
                "return": (effect + DELTA + shifts[s] + gen.normal(0, noise_sd, n_users))[::-1],
            }
        )
        for s in range(n_seeds)
    }
    return runs, baseline


def width(result):
    return result.ci_high - result.ci_low


def test_the_estimates_are_the_grand_means():
    runs, baseline = synthetic(np.random.default_rng(0))
    all_values = np.concatenate([r["return"].to_numpy() for r in runs.values()])
    agent = hierarchical_bootstrap(runs, n_boot=200)
    assert agent.mean == pytest.approx(all_values.mean())
    assert (agent.n_seeds, agent.n_users, agent.draws.shape) == (5, 200, (200,))
    diff = paired_hierarchical_bootstrap(runs, baseline, n_boot=200)
    assert diff.mean == pytest.approx(all_values.mean() - baseline["return"].mean())
    assert diff.ci_low < diff.mean < diff.ci_high


@pytest.mark.parametrize("per_chunk", [None, 3])
def test_the_vectorised_draws_are_those_of_a_direct_resample(per_chunk, monkeypatch):
    runs, baseline = synthetic(np.random.default_rng(1), n_seeds=3, n_users=7)
    x = np.stack([r.sort_values("seed")["return"].to_numpy() for r in runs.values()])
    b = baseline.sort_values("seed")["return"].to_numpy()
    n_boot = 50
    if per_chunk:  # the user draws come in chunks of 3 draws, the last one short
        monkeypatch.setattr(statistics, "CHUNK_ENTRIES", 7 * per_chunk)
    sizes = [min(per_chunk or n_boot, n_boot - i) for i in range(0, n_boot, per_chunk or n_boot)]
    user_gen, seed_gen, _ = np.random.default_rng(4).spawn(3)
    users = np.concatenate([user_gen.integers(0, 7, size=(size, 7)) for size in sizes])
    seeds = seed_gen.integers(0, 3, size=(n_boot, 3))
    direct = np.array([x[seeds[i]][:, users[i]].mean() for i in range(n_boot)])
    paired = np.array([(x[seeds[i]][:, users[i]] - b[users[i]]).mean() for i in range(n_boot)])
    np.testing.assert_allclose(hierarchical_bootstrap(runs, n_boot=n_boot, seed=4).draws, direct)
    np.testing.assert_allclose(
        paired_hierarchical_bootstrap(runs, baseline, n_boot=n_boot, seed=4).draws, paired
    )


def test_the_interval_covers_the_truth_and_ignoring_seeds_does_not():
    gen = np.random.default_rng(2)
    runs, baseline = synthetic(gen)
    for result in (
        hierarchical_bootstrap(runs, seed=3),
        paired_hierarchical_bootstrap(runs, baseline, seed=3),
    ):
        assert result.ci_low < DELTA < result.ci_high
    # over many data sets: near the nominal 95% with 10 seeds; resampling users only misses the
    # variance between training seeds and covers far less often
    hits = np.zeros(2)
    reps = 100
    for rep in range(reps):
        runs, baseline = synthetic(gen, n_seeds=10, n_users=100, seed_sd=1.0)
        for j, resample_seeds in enumerate((True, False)):
            r = paired_hierarchical_bootstrap(
                runs, baseline, n_boot=500, seed=rep, resample_seeds=resample_seeds
            )
            hits[j] += r.ci_low <= DELTA <= r.ci_high
    hierarchical, users_only = hits / reps
    assert hierarchical >= 0.85 and users_only <= 0.65


def test_the_hierarchical_interval_is_wider_than_the_users_only_one_when_seeds_differ():
    runs, _ = synthetic(np.random.default_rng(5), seed_sd=0.5)
    hierarchical = hierarchical_bootstrap(runs, seed=1)
    users_only = hierarchical_bootstrap(runs, seed=1, resample_seeds=False)
    assert width(hierarchical) > 1.5 * width(users_only)
    assert hierarchical.mean == users_only.mean
    # identical training seeds: drawing seeds changes nothing, draw for draw
    same = {s: runs[0] for s in range(5)}
    np.testing.assert_allclose(
        hierarchical_bootstrap(same, seed=1).draws,
        hierarchical_bootstrap(same, seed=1, resample_seeds=False).draws,
    )


def test_pairing_narrows_the_interval_when_users_are_correlated():
    runs, baseline = synthetic(np.random.default_rng(6), seed_sd=0.1, user_sd=3.0)
    paired = paired_hierarchical_bootstrap(runs, baseline, seed=2)
    unpaired = paired_hierarchical_bootstrap(runs, baseline, seed=2, paired=False)
    assert paired.mean == unpaired.mean
    assert width(paired) < 0.5 * width(unpaired)
    # users uncorrelated between agent and baseline: pairing gains nothing much
    runs, baseline = synthetic(np.random.default_rng(6), seed_sd=0.1, user_sd=0.0)
    ratio = width(paired_hierarchical_bootstrap(runs, baseline, seed=2)) / width(
        paired_hierarchical_bootstrap(runs, baseline, seed=2, paired=False)
    )
    assert 0.8 < ratio < 1.2


def test_the_same_seed_gives_the_same_numbers():
    runs, baseline = synthetic(np.random.default_rng(7))
    a = paired_hierarchical_bootstrap(runs, baseline, seed=11)
    b = paired_hierarchical_bootstrap(runs, baseline, seed=11)
    np.testing.assert_array_equal(a.draws, b.draws)
    assert a.to_dict() == b.to_dict()
    assert not np.array_equal(a.draws, paired_hierarchical_bootstrap(runs, baseline, seed=12).draws)
    # a Generator is drawn from: the same state gives the same numbers, the next call new ones
    gen = np.random.default_rng(11)
    first = hierarchical_bootstrap(runs, seed=gen)
    np.testing.assert_array_equal(
        first.draws, hierarchical_bootstrap(runs, seed=np.random.default_rng(11)).draws
    )
    assert not np.array_equal(first.draws, hierarchical_bootstrap(runs, seed=gen).draws)
    # a mapping of runs and one frame with a train_seed column are the same input
    frame = stack_runs(runs)
    assert set(frame["train_seed"]) == set(runs)
    np.testing.assert_array_equal(
        hierarchical_bootstrap(frame, seed=3).draws, hierarchical_bootstrap(runs, seed=3).draws
    )


def test_bad_records_raise():
    runs, baseline = synthetic(np.random.default_rng(8), n_seeds=2, n_users=5)
    with pytest.raises(ValueError, match="one record per user"):
        hierarchical_bootstrap({0: runs[0], 1: runs[1].iloc[1:]})
    with pytest.raises(ValueError, match="some twice"):
        hierarchical_bootstrap({0: runs[0], 1: pd.concat([runs[1], runs[1].iloc[:1]])})
    with pytest.raises(ValueError, match="baseline needs one record per user"):
        paired_hierarchical_bootstrap(runs, baseline.iloc[1:])
    with pytest.raises(ValueError, match="'clicks'"):
        hierarchical_bootstrap(runs, metric="clicks")
    with pytest.raises(ValueError, match="'train_seed'"):
        hierarchical_bootstrap(runs[0])
    with pytest.raises(ValueError, match="non-finite"):
        hierarchical_bootstrap({0: runs[0].assign(**{"return": np.nan})})
    with pytest.raises(ValueError, match="confidence"):
        hierarchical_bootstrap(runs, confidence=95)


def test_holm_gives_the_textbook_adjusted_p_values():
    table = holm([0.01, 0.04, 0.03])
    np.testing.assert_allclose(table["p_adjusted"], [0.03, 0.06, 0.06])
    assert table["rejected"].tolist() == [True, False, False]
    assert table["step"].tolist() == [1, 3, 2]
    assert holm([0.01, 0.04, 0.03], alpha=0.07)["rejected"].all()
    np.testing.assert_allclose(
        holm([0.01, 0.02, 0.03, 0.04, 0.05])["p_adjusted"], [0.05, 0.08, 0.09, 0.09, 0.09]
    )
    capped = holm({"ppo": 0.5, "a2c": 0.6})
    assert capped.index.tolist() == ["ppo", "a2c"] and capped["p_adjusted"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="p-values"):
        holm([0.5, 1.5])


def test_the_bootstrap_p_value_counts_the_draws_on_each_side():
    assert bootstrap_p_value(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(2 * 2 / 5)
    assert bootstrap_p_value(np.linspace(1, 2, 999)) == pytest.approx(2 / 1000)  # never 0
    assert bootstrap_p_value(np.linspace(-1, 1, 1000)) == 1.0
    assert bootstrap_p_value(np.linspace(1, 2, 999), null=1.5) == pytest.approx(1.0)


def test_holm_bootstrap_adjusts_bootstrap_p_values_and_widens_the_intervals_in_holm_order():
    gen = np.random.default_rng(9)
    draws = {
        "strong": gen.normal(1.0, 0.2, 2000),
        "moderate": gen.normal(0.45, 0.2, 2000),
        "none": gen.normal(0.0, 0.2, 2000),
    }
    results = {k: BootstrapResult(float(d.mean()), 0.0, 0.0, 0.95, 5, 100, d) for k, d in draws.items()}
    table = holm_bootstrap(results, alpha=0.05)
    assert table.index.tolist() == ["strong", "moderate", "none"]
    p = {k: bootstrap_p_value(d) for k, d in draws.items()}
    np.testing.assert_allclose(table["p_value"], list(p.values()))
    np.testing.assert_allclose(table["p_adjusted"], holm(p)["p_adjusted"])
    assert table["rejected"].tolist() == [True, True, False]
    assert table["step"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(table["level"], [1 - 0.05 / 3, 1 - 0.05 / 2, 0.95])
    for key, row in table.iterrows():
        a = (1 - row["level"]) / 2
        np.testing.assert_allclose([row["ci_low"], row["ci_high"]], np.quantile(draws[key], [a, 1 - a]))
    assert table.loc["strong", "estimate"] == results["strong"].mean
    bonferroni = holm_bootstrap(draws, intervals="bonferroni")  # plain draws work too
    np.testing.assert_allclose(bonferroni["level"], 1 - 0.05 / 3)
    assert bonferroni.loc["none", "ci_high"] - bonferroni.loc["none", "ci_low"] > (
        table.loc["none", "ci_high"] - table.loc["none", "ci_low"]
    )
    np.testing.assert_allclose(bonferroni["estimate"], [d.mean() for d in draws.values()])
