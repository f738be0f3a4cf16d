import numpy as np
import pandas as pd
import pytest

from decay_model.population import summarize_population
from envs.config import PRESETS, SimConfig
from envs.population import Catalogue, Population, default_summary


def keys(n, start=0):
    return np.arange(start, start + n, dtype=np.uint64), np.zeros(n, np.uint64)


def check_users(users, cfg, num_categories):
    assert users["cat"].shape == (len(users["lam"]), cfg.max_user_categories)
    assert np.all((users["cat"] >= 0) & (users["cat"] < num_categories))
    assert np.all(users["lam"] > 0) and np.all(np.isfinite(users["lam"]))
    for col in ("floor", "interest"):
        assert np.all((users[col] >= 0) & (users[col] <= 1))
    assert np.all(users["weight"].sum(axis=1) > 0)


def test_default_population_draws_valid_users():
    cfg = PRESETS["default"]
    pop = Population.from_config(cfg)
    users = pop.draw(cfg, *keys(500))
    check_users(users, cfg, pop.num_categories)
    # distinct categories per user (the population has more than a user tracks)
    for row_cat in users["cat"]:
        assert len(set(row_cat)) == len(row_cat)
    # popular categories are drawn more often
    counts = np.bincount(users["cat"].ravel(), minlength=pop.num_categories)
    assert counts[np.argmax(pop.share)] > counts[np.argmin(pop.share)]
    # activity: return-time means and browsing depth spread around the config's
    assert abs(users["gap_mu"].mean() - cfg.gap_log_mean) < 0.15
    assert np.all(users["events_extra"] > 0)


def test_draw_depends_only_on_key_and_episode():
    cfg = PRESETS["small"]
    pop = Population.from_config(cfg)
    big = pop.draw(cfg, *keys(10))
    one = pop.draw(cfg, np.array([7], np.uint64), np.array([0], np.uint64))
    for name in big:
        np.testing.assert_array_equal(big[name][7], one[name][0])
    other_episode = pop.draw(cfg, np.array([7], np.uint64), np.array([1], np.uint64))
    assert not np.array_equal(other_episode["lam"], one["lam"])


def test_log_lambda_matches_summary():
    cfg = SimConfig(max_user_categories=1)
    summary = {
        "categories": {
            "a": {
                "share": 1.0,
                "log_lam_mean": -2.0,
                "log_lam_sd": 0.5,
                "logit_floor_mean": -3.0,
                "logit_floor_sd": 0.2,
                "interest_mean": 0.3,
            }
        }
    }
    pop = Population.from_summary(summary)
    users = pop.draw(cfg, *keys(4000))
    log_lam = np.log(users["lam"][:, 0])
    assert abs(log_lam.mean() + 2.0) < 0.05
    assert abs(log_lam.std() - 0.5) < 0.05


def encoded_frame():
    rng = np.random.default_rng(0)
    rows = []
    for user in range(30):
        for cat in rng.choice([11, 12, 13, 14], size=rng.integers(1, 4), replace=False):
            rows.append(
                (
                    user,
                    int(cat),
                    rng.uniform(0.05, 0.6),
                    rng.uniform(0.01, 0.3),
                    rng.uniform(0.01, 0.1),
                    int(rng.integers(1, 20)),
                )
            )
    return pd.DataFrame(rows, columns=["user_id", "category_id", "interest", "lam", "floor", "n_events"])


def test_bootstrap_real_users():
    frame = encoded_frame()
    cfg = PRESETS["small"]
    pop = Population.from_encoded(frame, cfg.max_user_categories)
    users = pop.draw(cfg, *keys(200))
    check_users(users, cfg, pop.num_categories)
    real_lams = set(np.round(frame["lam"].to_numpy(), 5))
    drawn = users["lam"][users["weight"] > 0]
    assert set(np.round(drawn.astype(np.float64), 5)) <= real_lams


def test_bootstrap_users_bring_their_own_activity_and_budget():
    frame = encoded_frame()
    users = np.unique(frame["user_id"])
    activity = pd.DataFrame(
        {
            "user_id": users,
            "gap_log_mu": np.linspace(1.0, 2.0, len(users)),
            "events_mean": 2.5,
            "repeat_per_visit": [np.nan, *np.linspace(0.5, 3.0, len(users) - 1)],  # the first has none
        }
    )
    cfg = PRESETS["small"].replace(engagement_budget=1.25, engagement_budget_user_sd=0.0)
    pop = Population.from_encoded(frame, cfg.max_user_categories, activity=activity)
    drawn = pop.pick_real(cfg, np.arange(len(users)), keys(len(users))[0])
    np.testing.assert_allclose(drawn["gap_mu"], activity["gap_log_mu"], rtol=1e-6)
    np.testing.assert_allclose(drawn["events_extra"], 1.5)
    assert drawn["budget"][0] == 1.25  # no r_u of their own: the config's B
    np.testing.assert_allclose(drawn["budget"][1:], activity["repeat_per_visit"][1:], rtol=1e-6)
    new = Population.from_config(cfg).draw(cfg, *keys(10))
    assert np.all(new["budget"] == 1.25)  # new users all take B


def test_new_users_budgets_spread_around_b_without_moving_other_draws():
    cfg = PRESETS["default"].replace(engagement_budget=1.0, engagement_budget_user_sd=0.0)
    spread = cfg.replace(engagement_budget_user_sd=0.6)
    pop = Population.from_config(cfg)
    same, wide = pop.draw(cfg, *keys(20000)), pop.draw(spread, *keys(20000))
    assert np.all(same["budget"] == 1.0)
    assert wide["budget"].mean() == pytest.approx(1.0, abs=0.02)  # log-normal with mean B
    assert wide["budget"].std() == pytest.approx(0.6, abs=0.03) and wide["budget"].min() > 0
    for name in ("cat", "lam", "floor", "interest", "gap_mu", "events_extra"):  # their own draws
        np.testing.assert_array_equal(same[name], wide[name], err_msg=name)


def test_summary_of_encoded_users_and_artifact(tmp_path, fake_artifact):
    summary = summarize_population(encoded_frame())
    fake_artifact(tmp_path / "art", summary)
    cfg = SimConfig(artifact=str(tmp_path / "art"))
    pop = Population.from_config(cfg)
    assert set(pop.names) == {"11", "12", "13", "14"}
    check_users(pop.draw(cfg, *keys(50)), cfg, pop.num_categories)


def test_summary_without_categories_raises():
    from decay_model.errors import ConfigError

    with pytest.raises(ConfigError, match="no categories"):
        Population.from_summary({"categories": {}})


def test_catalogue_is_fixed_by_its_seed():
    cfg = PRESETS["small"]
    a, b = Catalogue.build(cfg, 3), Catalogue.build(cfg, 3)
    np.testing.assert_array_equal(a.quality, b.quality)
    assert a.quality.shape == (3 * cfg.items_per_category,)
    assert np.all((a.quality > 0) & (a.quality < 1)) and np.all(a.value > 0)
    c = Catalogue.build(cfg.replace(catalogue_seed=1), 3)
    assert not np.array_equal(a.quality, c.quality)


def test_default_summary_is_documented_format():
    summary = default_summary()
    assert len(summary["categories"]) == 12
    assert abs(sum(c["share"] for c in summary["categories"].values()) - 1) < 1e-9
