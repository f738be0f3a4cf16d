"""The fidelity report's statistics on hand-made logs, and the one-to-one simulated cohort."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from decay_model.errors import ConfigError
from decay_model.logs import BEHAVIORS
from decay_model.synthetic import SyntheticConfig, generate
from decay_model.task import TaskConfig
from envs.config import get_preset
from envs.fidelity import (
    HORIZONS_H,
    compare,
    fidelity_report,
    sessionize,
    simulate_cohort,
    window_stats,
)

H = 3600.0
VIEW, CLICK, BUY = BEHAVIORS.index("view"), BEHAVIORS.index("click"), BEHAVIORS.index("buy")


def hand_log() -> pd.DataFrame:
    """Three cohort users; times in hours, the window is [0, 100) h."""
    rows = [
        # user 1: visit A (0, 0.25, 0.5), visit B (2), visit C (30)
        (1, 10, VIEW, 0.0),
        (1, 10, VIEW, 0.25),
        (1, 20, BUY, 0.5),
        (1, 10, VIEW, 2.0),
        (1, 20, VIEW, 30.0),
        # user 2: visit D (10, 10.2)
        (2, 10, VIEW, 10.0),
        (2, 10, BUY, 10.2),
        # user 3: only outside the window (before it, and exactly at its end)
        (3, 10, VIEW, -5.0),
        (3, 10, VIEW, 100.0),
        # user 4 is not in the cohort: ignored
        (4, 10, BUY, 1.0),
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "category_id", "behavior", "hours"])
    return frame.assign(timestamp=frame.pop("hours") * H)


def test_window_stats_by_hand() -> None:
    stats = window_stats(hand_log(), 0.0, 100 * H, users=[1, 2, 3], curve_hours=(1, 2, 24, 72))
    np.testing.assert_allclose(np.sort(stats.gaps_h), [2.0, 28.0])  # user 1: starts 0, 2, 30
    assert stats.events_per_user.tolist() == [5, 2, 0]
    assert (stats.n_events, stats.n_purchases, stats.n_visits) == (7, 2, 4)
    assert stats.purchase_rate == pytest.approx(2 / 7)
    # engagements (user, category, visit): 1/10/A (last 0.25, next 2.0: 1.75 h later),
    # 1/10/B, 1/20/A (last 0.5, next 30: 29.5 h later), 1/20/C (last 30), 2/10/D
    assert stats.curve_n.tolist() == [5, 5, 5, 4]  # 72 h: only engagements ending by 28 h
    np.testing.assert_allclose(stats.curve, [0.0, 1 / 5, 1 / 5, 2 / 4])
    assert stats.reengagement(72) == pytest.approx(0.5)


def test_sessionize_splits_after_more_than_the_gap() -> None:
    frame = pd.DataFrame({"user_id": [1, 1, 1, 2], "timestamp": [0, 1800, 3601, 3700]})
    assert sessionize(frame, gap_h=0.5).tolist() == [0, 0, 1, 2]  # exactly 30 min stays one visit
    with pytest.raises(ValueError, match="gap_h"):
        sessionize(frame, gap_h=0)


def test_the_same_events_compare_as_identical() -> None:
    stats = window_stats(hand_log(), 0.0, 100 * H, users=[1, 2, 3], curve_hours=(*HORIZONS_H, 2.0))
    rows = {s.name: s for s in compare(stats, stats)}
    assert set(rows) == {
        "time_between_visits_h",
        "events_per_user",
        "purchase_rate",
        "reengagement_1h",
        "reengagement_24h",
        "reengagement_72h",
    }
    for name in ("time_between_visits_h", "events_per_user", "reengagement_24h", "reengagement_72h"):
        assert rows[name].distance == 0 and rows[name].passed, name
    # re-engagement within 1 h is 0 on both sides: a relative error is undefined, never a pass
    assert math.isnan(rows["reengagement_1h"].distance) and not rows["reengagement_1h"].passed
    assert rows["reengagement_1h"].to_dict()["distance"] is None


def fixed_gap(hours: float) -> dict[str, object]:
    """Config fields that make every return gap exactly ``hours`` long."""
    return {
        "gap_log_mean": math.log(hours - 0.5),
        "gap_log_user_sd": 0.0,
        "gap_residual_quantiles": (0.0, 0.0),
    }


def encoded_three() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [7, 7, 8, 9],
            "category_id": [100, 200, 300, 100],
            "interest": [0.95, 0.9, 0.9, 0.01],
            "lam": [0.01, 0.01, 0.01, 0.5],
            "floor": [0.9, 0.9, 0.9, 0.0],
            "n_events": [5, 3, 2, 1],
        }
    )


def test_simulate_cohort_runs_each_real_user_once() -> None:
    # no churn, no fatigue, no satiation: the same candidates stay clickable at every visit; and a
    # fixed return gap (satisfaction shortening it would run away with so many clicks)
    config = get_preset("small").replace(
        churn_logit=-10.0,
        return_satisfaction=0.0,
        fatigue_per_exposure=0.0,
        purchase_satiation=0.0,
        explore_per_visit=0.0,
        **fixed_gap(2.0),
    )
    start, end = 1_000_000.0, 1_000_000.0 + 48 * H
    events = simulate_cohort(encoded_three(), start, end, config, seed=1)
    assert set(events["behavior"]) <= {VIEW, CLICK, BUY}
    assert events["timestamp"].between(start, end, inclusive="left").all()
    # user i is real user i: only the cohort's categories (no exploration here), keen users browse more
    assert set(events["category_id"]) <= {100, 200, 300}
    counts = events.groupby("user_id").size()
    assert counts.get(7, 0) > 10 and counts.get(8, 0) > 10
    assert counts.get(9, 0) < counts[7]
    again = simulate_cohort(encoded_three(), start, end, config, seed=1)
    pd.testing.assert_frame_equal(events, again)
    other = simulate_cohort(encoded_three(), start, end, config, seed=2)
    assert not events.equals(other)


def test_churned_users_stay_gone() -> None:
    config = get_preset("small").replace(churn_logit=20.0, **fixed_gap(1.0))  # everyone leaves at once
    events = simulate_cohort(encoded_three(), 0.0, 1000 * H, config, seed=0)
    # one visit each, at most: every event of a user shares that visit's time
    assert (events.groupby("user_id")["timestamp"].nunique() <= 1).all()
    assert events.attrs == {"visits": 3, "churned": 3, "capped": 0}


def test_max_visits_caps_and_counts_the_users_still_visiting() -> None:
    config = get_preset("small").replace(churn_logit=-10.0, return_satisfaction=0.0, **fixed_gap(1.0))
    events = simulate_cohort(encoded_three(), 0.0, 1000 * H, config, seed=0, max_visits=2)
    assert events.attrs == {"visits": 6, "churned": 0, "capped": 3}


def test_fidelity_report_on_a_small_synthetic_log(stub_decay) -> None:
    log = generate(SyntheticConfig(n_users=40, n_categories=6), seed=0).log
    task = TaskConfig(train_days=4, valid_days=1, test_days=4)
    report = fidelity_report(log, model=stub_decay(), config=get_preset("small"), seed=0, task_config=task)
    names = [s.name for s in report.statistics]
    assert names[:3] == ["time_between_visits_h", "events_per_user", "purchase_rate"]
    assert report.n_users == report.info["cohort"]["users"] == 40
    assert len(report.real.events_per_user) == len(report.simulated.events_per_user) == 40
    for s in report.statistics:
        assert s.n_real > 0, s.name
        assert math.isfinite(s.real), s.name
    real_rate = report.real.purchase_rate
    ev = log.events
    window = ev[(ev["timestamp"] >= report.window[0]) & (ev["timestamp"] < report.window[1])]
    assert real_rate == pytest.approx((window["behavior"] == BUY).mean())
    out = report.to_dict()
    assert set(out["statistics"]) == set(names)
    assert out["window"]["end"] - out["window"]["start"] == 4 * 86400


def test_refresh_policy_brings_fresh_candidates_and_unknown_policies_fail() -> None:
    config = get_preset("small").replace(churn_logit=-10.0, return_satisfaction=0.0, **fixed_gap(2.0))
    shown = simulate_cohort(encoded_three(), 0.0, 48 * H, config, seed=1)
    fresh = simulate_cohort(encoded_three(), 0.0, 48 * H, config, seed=1, policy="refresh")
    assert fresh.attrs["visits"] == shown.attrs["visits"]  # same return times: only the pages differ
    clicks = [int((f["behavior"] == CLICK).sum()) for f in (shown, fresh)]
    assert clicks[1] > clicks[0]  # fresh items are not worn down by fatigue
    with pytest.raises(ConfigError, match="policy"):
        simulate_cohort(encoded_three(), 0.0, 48 * H, config, policy="nope")
