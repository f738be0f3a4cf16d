import numpy as np
import pandas as pd
import pytest

from decay_model.activity import fit_activity
from decay_model.errors import DataValidationError
from decay_model.logs import load_log
from decay_model.task import TaskConfig, make_split
from envs.config import TAOBAO_REPEAT_PER_VISIT, TAOBAO_REPEAT_USER_SD, TAOBAO_VIEW_TO_BUY, SimConfig

H = 3600.0


def visits_log(gaps_h: dict[int, list[float]], events_per_visit: int = 3) -> pd.DataFrame:
    rows = []
    for user, gaps in gaps_h.items():
        t = 0.0
        for g in [0.0, *gaps]:
            t += g * H
            for j in range(events_per_visit):
                rows.append((user, 1, 10 + j % 2, 0, t + 60.0 * j))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "behavior", "timestamp"])


def test_gaps_and_browsing_depth_are_recovered():
    rng = np.random.default_rng(0)
    mus = {u: m for u, m in zip(range(60), rng.normal(2.0, 0.5, 60), strict=True)}
    gaps = {u: list(0.5 + np.exp(mu + rng.normal(0, 0.3, 30))) for u, mu in mus.items()}
    fit = fit_activity(visits_log(gaps), 0.0, 1e9)
    s = fit.summary
    assert s.gap_log_mean == pytest.approx(2.0, abs=0.2)
    assert s.gap_log_user_sd == pytest.approx(0.5, abs=0.15)
    assert s.gap_log_sd == pytest.approx(0.3, abs=0.05)
    per_user = fit.per_user.set_index("user_id")["gap_log_mu"]
    assert np.corrcoef(per_user.loc[list(mus)], list(mus.values()))[0, 1] > 0.95
    # 3 events a visit over 2 categories: one category gets 2 events, the other 1
    assert fit.per_user["events_mean"].to_numpy() == pytest.approx(1.5)
    assert s.categories_per_visit == pytest.approx(2.0)
    # after the 48 h burn-in both categories are old ones: 2 repeats a visit, 0 new
    assert fit.per_user["repeat_per_visit"].to_numpy() == pytest.approx(2.0)
    assert s.repeat_per_visit == pytest.approx(2.0) and s.explore_per_visit == 0.0
    assert s.purchase_rate == 0.0
    q = np.asarray(s.gap_residual_quantiles)
    assert np.all(np.diff(q) >= 0) and q[len(q) // 2] == pytest.approx(0.0, abs=0.05)


def test_repeat_categories_per_visit_count_only_categories_seen_before():
    rows = [  # (user, category, hour): visits at 0 h, 50 h and 60 h; the burn-in is 48 h
        (1, 10, 0.0),
        (1, 10, 50.0),
        (1, 20, 50.1),
        (1, 20, 60.0),
        (1, 30, 60.1),
        (2, 10, 0.0),
        (2, 10, 1.0),  # user 2 has no visit after the burn-in: no r_u
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "category_id", "hours"])
    events = frame.assign(item_id=1, behavior=0, timestamp=frame.pop("hours") * H)
    fit = fit_activity(events, 0.0, 1e9)
    r = fit.per_user.set_index("user_id")["repeat_per_visit"]
    assert r[1] == pytest.approx(1.0)  # 50 h: 10 again (20 new); 60 h: 20 again (30 new)
    assert np.isnan(r[2])
    assert fit.summary.repeat_per_visit == pytest.approx(1.0)
    assert fit.summary.explore_per_visit == pytest.approx(1.0)


def test_view_to_buy_counts_purchases_after_a_view_of_the_same_item():
    rows = [  # user, item, category, behaviour code (0 view, 1 click, 4 buy), time
        (1, 10, 5, 0, 0.0), (1, 10, 5, 4, 60.0),  # viewed, then bought: converts
        (1, 11, 5, 1, 0.0),  # clicked, never bought
        (2, 10, 5, 4, 0.0), (2, 10, 5, 0, 60.0),  # bought before the view only: no conversion
        (2, 12, 6, 0, 3 * H), (2, 12, 6, 0, 4 * H), (2, 12, 6, 4, 5 * H),  # two views, one purchase
    ]  # fmt: skip
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "behavior", "timestamp"])
    assert fit_activity(events, 0.0, 1e9).summary.view_to_buy == pytest.approx(2 / 4)


def test_a_window_without_returning_users_is_an_error():
    with pytest.raises(DataValidationError, match="no user has two visits"):
        fit_activity(visits_log({1: [], 2: []}), 0.0, 1e9)
    with pytest.raises(DataValidationError, match="must be after"):
        fit_activity(visits_log({1: [1.0]}), 5.0, 5.0)


def test_simulator_defaults_are_the_taobao_fit(taobao_path):
    """The activity fields of SimConfig are this fit on the Taobao training period (rounded)."""
    log = load_log(taobao_path, source="taobao")
    split = make_split(log, TaskConfig(train_days=4, valid_days=1, test_days=4))
    s = fit_activity(log.events, split.train_start, split.test_start).summary
    cfg = SimConfig()
    assert cfg.gap_log_mean == pytest.approx(s.gap_log_mean, abs=1e-3)
    assert cfg.gap_log_user_sd == pytest.approx(s.gap_log_user_sd, abs=1e-3)
    assert cfg.events_log_mean == pytest.approx(s.events_log_mean, abs=1e-3)
    assert cfg.events_log_user_sd == pytest.approx(s.events_log_user_sd, abs=1e-3)
    assert cfg.explore_per_visit == pytest.approx(s.explore_per_visit, abs=1e-3)
    assert TAOBAO_REPEAT_PER_VISIT == pytest.approx(s.repeat_per_visit, abs=1e-3)
    assert TAOBAO_REPEAT_USER_SD == pytest.approx(s.repeat_user_sd, abs=1e-3)
    assert cfg.organic_purchase_rate == pytest.approx(s.purchase_rate, abs=1e-4)
    assert TAOBAO_VIEW_TO_BUY == pytest.approx(s.view_to_buy, abs=1e-4)
    # the page's P(purchase | click), averaged over clicked items (E[quality | click] = (a + 1)/(a + b + 1))
    mean_clicked_quality = (cfg.quality_a + 1) / (cfg.quality_a + cfg.quality_b + 1)
    assert cfg.purchase_rate * mean_clicked_quality == pytest.approx(s.view_to_buy, abs=1e-4)
    np.testing.assert_allclose(cfg.gap_residual_quantiles, s.gap_residual_quantiles, atol=1e-3)
