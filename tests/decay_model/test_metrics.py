"""Tests of the task metrics against hand-computed values and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from decay_model.metrics import (
    METRIC_NAMES,
    auc,
    brier,
    calibration_table,
    ece,
    evaluate,
    log_loss,
)

Y = np.array([1.0, 0.0, 1.0, 0.0])
P = np.array([0.8, 0.3, 0.6, 0.5])


def brute_force_auc(y: np.ndarray, p: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half."""
    pos, neg = p[y == 1], p[y == 0]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def test_log_loss_by_hand() -> None:
    # -(ln 0.8 + ln 0.7 + ln 0.6 + ln 0.5) / 4
    # = (0.22314 + 0.35667 + 0.51083 + 0.69315) / 4 = 0.44595
    expected = -(math.log(0.8) + math.log(0.7) + math.log(0.6) + math.log(0.5)) / 4
    assert log_loss(Y, P) == pytest.approx(expected, rel=1e-12)
    assert log_loss(Y, P) == pytest.approx(0.445948, abs=1e-6)


def test_log_loss_clips_certain_mistakes() -> None:
    # p = 0 for a positive and p = 1 for a negative: each costs -ln(1e-7) = 16.118, not inf.
    value = log_loss(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert value == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert log_loss(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == pytest.approx(0.0, abs=1e-6)


def test_brier_by_hand() -> None:
    # (0.2² + 0.3² + 0.4² + 0.5²) / 4 = (0.04 + 0.09 + 0.16 + 0.25) / 4 = 0.135
    assert brier(Y, P) == pytest.approx(0.135, rel=1e-12)


def test_ece_by_hand() -> None:
    # Two bins [0, 0.5) and [0.5, 1]:
    #   bin 0: p = 0.3 (y = 0): n 1, |0.3 - 0| = 0.3
    #   bin 1: p = 0.8, 0.6, 0.5 (y = 1, 1, 0): mean 1.9/3, observed 2/3, |diff| = 1/30
    # ECE = (1 · 0.3 + 3 · 1/30) / 4 = 0.4 / 4 = 0.1
    assert ece(Y, P, bins=2) == pytest.approx(0.1, rel=1e-12)
    # Perfectly calibrated: every prediction 0.5, half the labels positive.
    assert ece(np.array([0.0, 1.0, 0.0, 1.0]), np.full(4, 0.5)) == pytest.approx(0.0, abs=1e-12)
    # Always wrong with certainty: ECE = 1.
    assert ece(np.array([0.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(1.0)


def test_calibration_table_bins() -> None:
    # Four bins [0, .25), [.25, .5), [.5, .75), [.75, 1]; left edges belong to their bin,
    # 1.0 to the last one; the empty bin [.25, .5) is left out.
    p = np.array([0.0, 0.1, 0.5, 0.74, 1.0, 0.8])
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    table = calibration_table(y, p, bins=4)
    assert [(r["lo"], r["hi"], r["n"]) for r in table] == [
        (0.0, 0.25, 2),
        (0.5, 0.75, 2),
        (0.75, 1.0, 2),
    ]
    assert [r["mean_pred"] for r in table] == pytest.approx([0.05, 0.62, 0.9])
    assert [r["observed"] for r in table] == pytest.approx([0.5, 0.5, 1.0])
    assert sum(r["n"] for r in table) == len(p)

    # The edge 0.25 itself opens the second bin.
    second = calibration_table(np.array([1.0]), np.array([0.25]), bins=4)
    assert [(r["lo"], r["hi"], r["n"]) for r in second] == [(0.25, 0.5, 1)]

    # Default 15 bins: every non-empty bin is reported, counts add up.
    rng = np.random.default_rng(0)
    p = rng.uniform(size=500)
    table = calibration_table((rng.uniform(size=500) < p).astype(float), p)
    assert len(table) == 15
    assert sum(r["n"] for r in table) == 500
    for r in table:
        assert r["lo"] <= r["mean_pred"] <= r["hi"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=120) < 0.3).astype(float)
    p = np.round(np.clip(0.3 * y + rng.uniform(size=120) * 0.7, 0, 1), 1)  # many ties
    assert auc(y, p) == pytest.approx(brute_force_auc(y, p), abs=1e-12)


def test_auc_extremes() -> None:
    assert auc(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert auc(np.array([1.0, 1.0, 0.0, 0.0]), np.array([0.1, 0.2, 0.3, 0.4])) == 0.0
    assert auc(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == 0.5


@pytest.mark.parametrize("label", [0.0, 1.0])
def test_auc_is_nan_with_a_single_class(label: float) -> None:
    assert math.isnan(auc(np.full(5, label), np.linspace(0.1, 0.9, 5)))


def test_evaluate_collects_every_metric() -> None:
    result = evaluate(Y.tolist(), P.tolist())
    assert tuple(result) == METRIC_NAMES
    assert result["log_loss"] == pytest.approx(log_loss(Y, P))
    assert result["brier"] == pytest.approx(0.135)
    assert result["auc"] == pytest.approx(brute_force_auc(Y, P))  # 4 of 4 pairs right = 1.0
    assert result["ece"] == pytest.approx(ece(Y, P))
    assert result["n"] == 4 and isinstance(result["n"], int)
    assert result["base_rate"] == pytest.approx(0.5)
    single = evaluate(np.ones(3), np.full(3, 0.9))
    assert math.isnan(single["auc"])
    assert single["base_rate"] == 1.0


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        (np.zeros(3), np.zeros(4), "shape"),
        (np.zeros((2, 2)), np.zeros(4), "shape"),
        (np.zeros(0), np.zeros(0), "zero examples"),
        (np.zeros(3), np.array([0.1, 1.2, 0.5]), r"\[0, 1\]"),
        (np.zeros(3), np.array([0.1, -0.01, 0.5]), r"\[0, 1\]"),
        (np.zeros(3), np.array([0.1, np.nan, 0.5]), "finite"),
        (np.zeros(3), np.array([0.1, np.inf, 0.5]), "finite"),
    ],
)
def test_evaluate_rejects_bad_input(y: np.ndarray, p: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate(y, p)
