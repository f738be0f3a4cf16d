"""envs.position_bias: exact counts on OBD-like files, the tests by their definitions, the real OBD files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import envs.position_bias as pb
from decay_model.errors import DataValidationError

COUNTS = {1: (1000, 20), 2: (1000, 10), 3: (500, 5)}


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval from its closed form (no continuity correction)."""
    z = stats.norm.ppf(0.5 + level / 2)
    centre = (k + z**2 / 2) / (n + z**2)
    half = z / (n + z**2) * math.sqrt(k * (n - k) / n + z**2 / 4)
    return centre - half, centre + half


def test_exact_counts_intervals_and_scaled_prior(write_obd, tmp_path: Path) -> None:
    path = write_obd(tmp_path / "random" / "all" / "all.csv", COUNTS)
    table, summaries = pb.analyse([path])
    assert list(summaries) == ["random"]
    assert table["position"].tolist() == [1, 2, 3]
    assert table["impressions"].tolist() == [1000, 1000, 500]
    assert table["clicks"].tolist() == [20, 10, 5]
    assert table["ctr"].tolist() == [0.02, 0.01, 0.01]
    for row in table.itertuples():
        lo, hi = wilson(row.clicks, row.impressions)
        assert row.ctr_low == pytest.approx(lo, rel=1e-9)
        assert row.ctr_high == pytest.approx(hi, rel=1e-9)
    # s = 35 clicks / (1000·1 + 1000/log2(3) + 500/2): the prior predicts the 35 observed clicks.
    scale = 35 / (1000 + 1000 / math.log2(3) + 500 / 2)
    s = summaries["random"]
    assert s["prior_scale"] == pytest.approx(scale, rel=1e-12)
    assert table["prior_ctr"].tolist() == pytest.approx([scale, scale / math.log2(3), scale / 2], rel=1e-12)
    assert float((table["impressions"] * table["prior_ctr"]).sum()) == pytest.approx(35)
    inside = (table["ctr_low"] <= table["prior_ctr"]) & (table["prior_ctr"] <= table["ctr_high"])
    assert table["prior_inside"].tolist() == inside.tolist()
    assert s["rows"] == 2500 and s["clicks"] == 35 and s["pooled_ctr"] == pytest.approx(0.014)
    # uniform logging: IPS needs no correction, its CTR is the raw CTR
    assert s["uniform_logging"] is True
    assert table["ips_ctr"].tolist() == pytest.approx(table["ctr"].tolist(), rel=1e-12)
    # the likelihood ratio from its definition (binomial, no coefficients)
    n, k = table["impressions"].to_numpy(), table["clicks"].to_numpy()

    def loglik(q: np.ndarray) -> float:
        return float(np.sum(k * np.log(q) + (n - k) * np.log1p(-q)))

    expected = loglik(table["prior_ctr"].to_numpy()) - loglik(np.full(3, 0.014))
    assert s["log_lr_prior_vs_flat"] == pytest.approx(expected, rel=1e-9)
    chi2 = stats.chi2_contingency(np.vstack([k, n - k]), correction=False)
    assert s["tests"]["chi2_p"] == pytest.approx(chi2.pvalue, rel=1e-12)


def test_clopper_pearson_matches_the_beta_quantiles(write_obd, tmp_path: Path) -> None:
    path = write_obd(tmp_path / "random" / "all" / "all.csv", COUNTS)
    table, _ = pb.analyse([path], level=0.9, method="clopper-pearson")
    for row in table.itertuples():
        k, n = row.clicks, row.impressions
        assert row.ctr_low == pytest.approx(stats.beta.ppf(0.05, k, n - k + 1), rel=1e-9)
        assert row.ctr_high == pytest.approx(stats.beta.ppf(0.95, k + 1, n - k), rel=1e-9)


def test_exact_test_on_two_positions_is_fishers() -> None:
    clicks, impressions = np.array([9, 2]), np.array([400, 350])
    expected = stats.fisher_exact([[9, 391], [2, 348]]).pvalue
    assert pb.exact_homogeneity_p(clicks, impressions) == pytest.approx(expected, rel=1e-9)


def test_gamma_finds_the_prior_and_the_flat_curve() -> None:
    impressions = np.array([20_000, 20_000, 20_000])
    w = pb.prior_relative(np.array([1, 2, 3]))
    prior_like = np.round(300 * w).astype(int)  # 300, 189, 150: CTR ∝ 1/log2(1 + p)
    gamma = pb.gamma_profile(prior_like, impressions, w, 0.95)
    assert gamma["mle"] == pytest.approx(1.0, abs=0.02)
    assert gamma["low"] > 0.0 and gamma["high"] > 1.0  # enough clicks to reject a flat CTR
    flat = np.array([200, 200, 200])
    gamma = pb.gamma_profile(flat, impressions, w, 0.95)
    assert gamma["mle"] == pytest.approx(0.0, abs=0.01)
    assert pb.verdict(gamma, 0.1, uniform=True).startswith("the prior is outside the γ interval")


def test_impressions_for_power_gives_80_percent_power() -> None:
    ctr = np.array([0.10, 0.08, 0.07])
    n = round(pb.impressions_for_power(ctr))
    rng = np.random.default_rng(0)
    k = rng.binomial(n, ctr, size=(4000, 3))
    table = np.stack([k, n - k], axis=1)  # reps × 2 × 3
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=2, keepdims=True) / (3 * n)
    chi2 = ((table - expected) ** 2 / expected).sum(axis=(1, 2))
    power = float(np.mean(chi2 > stats.chi2.ppf(0.95, 2)))
    assert power == pytest.approx(0.8, abs=0.03)


@pytest.mark.parametrize(
    ("drop", "column"),
    [("propensity_score", "propensity_score"), ("click", "click"), ("position", "position")],
)
def test_missing_column_is_one_named_error(write_obd, tmp_path: Path, drop: str, column: str) -> None:
    path = write_obd(tmp_path / "bts" / "all" / "all.csv", COUNTS, drop=drop)
    with pytest.raises(DataValidationError, match=rf"all\.csv: missing column '{column}'"):
        pb.read_obd(path)


def test_bad_values_name_column_and_line(write_obd, tmp_path: Path) -> None:
    path = write_obd(tmp_path / "random" / "all" / "all.csv", {1: (3, 1)})
    frame = pd.read_csv(path, index_col=0)
    frame.loc[1, "click"] = 2
    frame.to_csv(path)
    with pytest.raises(DataValidationError, match=r"column 'click' must be 0 or 1, got 2 on line 3"):
        pb.read_obd(path)
    with pytest.raises(DataValidationError, match="file not found"):
        pb.read_obd(tmp_path / "nope.csv")


def test_real_obd_samples(obd_path: Path) -> None:
    files = [obd_path / "random" / "all" / "all.csv", obd_path / "bts" / "all" / "all.csv"]
    table, summaries = pb.analyse(files)
    assert list(summaries) == ["random", "bts"]
    for label, s in summaries.items():
        part = table[table["policy"] == label]
        assert part["position"].tolist() == [1, 2, 3]
        assert int(part["impressions"].sum()) == 10_000 == s["rows"]
        assert ((part["ctr_low"] <= part["ctr"]) & (part["ctr"] <= part["ctr_high"])).all()
        assert s["tests"]["exact_p"] is not None
    # SOURCE.md: 38 clicks under uniform-random logging (propensity 1/80), 42 under bts
    assert summaries["random"]["clicks"] == 38 and summaries["bts"]["clicks"] == 42
    assert summaries["random"]["uniform_logging"] and not summaries["bts"]["uniform_logging"]
