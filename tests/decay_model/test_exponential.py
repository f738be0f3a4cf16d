from __future__ import annotations

import numpy as np
import pytest

from decay_model import ConfigError, EvalTask, ExponentialDecay, GlobalDecay, Popularity, fit_curve, load_log
from decay_model.metrics import evaluate
from decay_model.synthetic import SyntheticConfig, generate

# The worked example users know: interest 0.8, 0.6, 0.4, 0.2, 0.1 at t = 1..5.
T = np.arange(1.0, 6.0)
Y = np.array([0.8, 0.6, 0.4, 0.2, 0.1])


def test_fit_curve_without_amplitude_matches_grid_search() -> None:
    fit = fit_curve(T, Y)
    lams = np.linspace(0.01, 2.0, 200_001)
    sse = ((Y[None] - np.exp(-lams[:, None] * T[None])) ** 2).sum(axis=1)
    assert fit.amplitude == 1.0
    assert fit.lam == pytest.approx(lams[sse.argmin()], abs=2e-5)
    assert fit.lam == pytest.approx(0.32706, abs=1e-4)
    assert fit.rmse == pytest.approx(np.sqrt(sse.min() / len(T)), rel=1e-6)
    np.testing.assert_allclose(fit.residuals, Y - np.exp(-fit.lam * T))
    assert fit.half_life == pytest.approx(np.log(2) / fit.lam)


def test_fit_curve_with_amplitude_matches_profile_likelihood() -> None:
    fit = fit_curve(T, Y, amplitude=True)
    # For a fixed λ the best amplitude is Σ y e^{-λt} / Σ e^{-2λt}; profile it over λ.
    lams = np.linspace(0.01, 2.0, 200_001)
    basis = np.exp(-lams[:, None] * T[None])
    amps = (basis * Y[None]).sum(axis=1) / (basis**2).sum(axis=1)
    sse = ((Y[None] - amps[:, None] * basis) ** 2).sum(axis=1)
    best = sse.argmin()
    assert fit.lam == pytest.approx(lams[best], abs=2e-5)
    assert fit.amplitude == pytest.approx(amps[best], abs=1e-4)
    assert fit.lam == pytest.approx(0.4210, abs=1e-3)
    assert fit.amplitude == pytest.approx(1.2686, abs=1e-3)
    # A free amplitude can only fit at least as well.
    assert fit.rmse < fit_curve(T, Y).rmse


@pytest.mark.parametrize(
    ("t", "y"),
    [(np.arange(3.0), np.ones(4)), (np.array([1.0, np.nan]), np.ones(2)), (np.array([]), np.array([]))],
)
def test_fit_curve_rejects_bad_input(t: np.ndarray, y: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="fit_curve"):
        fit_curve(t, y)


# Recovery: logs drawn from known per-category rates (4,000 (user, category)
# pairs per category). The generator's pair- and user-level heterogeneity is
# switched off: with it the model is misspecified (unobserved differences
# between pairs look like slower decay) and no bound would be honest.
RECOVERY = SyntheticConfig(
    n_users=8000,
    n_categories=4,
    categories_per_user=2,
    lambda_range=(0.05, 0.3),
    popularity_exponent=0.0,
    user_rate_sd=0.0,
    pair_rate_sd=0.0,
)


@pytest.mark.parametrize(
    "seed", [0, 1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)]
)
def test_recovers_per_category_decay_rates_within_10_percent(seed: int) -> None:
    synthetic = generate(RECOVERY, seed=seed)
    model = ExponentialDecay().fit(EvalTask(synthetic.log))
    fitted = model.category_rates()
    rel = {c: fitted[c] / true - 1 for c, true in synthetic.true_lambda.items()}
    assert max(abs(r) for r in rel.values()) < 0.10, rel


def test_exponential_beats_trivial_baselines_on_synthetic_test_period() -> None:
    synthetic = generate(SyntheticConfig(), seed=0)
    task = EvalTask(synthetic.log)
    scores = {
        m.name: evaluate(task.labels("test"), m.fit(task).predict(task, "test"))
        for m in (Popularity(), GlobalDecay(), ExponentialDecay())
    }
    assert (
        scores["exponential"]["log_loss"]
        < scores["global_decay"]["log_loss"]
        < scores["popularity"]["log_loss"]
    )
    assert scores["exponential"]["auc"] > scores["popularity"]["auc"]


def test_fit_is_deterministic_and_predictions_are_probabilities() -> None:
    task = EvalTask(generate(SyntheticConfig(n_users=150, n_categories=8), seed=3).log)
    a = ExponentialDecay().fit(task).predict(task, "valid")
    b = ExponentialDecay().fit(task).predict(task, "valid")
    np.testing.assert_array_equal(a, b)
    assert np.all((a > 0) & (a < 1))


def test_unseen_ids_fall_back_to_the_population_rate() -> None:
    task = EvalTask(generate(SyntheticConfig(n_users=150, n_categories=8), seed=3).log)
    model = ExponentialDecay().fit(task)
    unseen = model.log_rates(np.array([-1]), np.array([-1]))
    assert unseen[0] == pytest.approx(model.log_lambda0)
    rates = model.category_rates()
    assert all(np.isfinite(v) and v > 0 for v in rates.values())


def test_exponential_beats_both_baselines_on_real_taobao_test_period(taobao_path) -> None:
    task = EvalTask(load_log(taobao_path, "taobao"))
    scores = {
        m.name: evaluate(task.labels("test"), m.fit(task).predict(task, "test"))
        for m in (Popularity(), GlobalDecay(), ExponentialDecay())
    }
    for baseline in ("popularity", "global_decay"):
        assert scores["exponential"]["log_loss"] < scores[baseline]["log_loss"], scores
        assert scores["exponential"]["auc"] > scores[baseline]["auc"], scores
