"""Tests of the synthetic log generator: determinism, ground truth, schema, config checks."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import pytest

import decay_model.synthetic as synthetic
from decay_model.errors import ConfigError
from decay_model.logs import BEHAVIORS
from decay_model.synthetic import (
    DEFAULT_START,
    SyntheticConfig,
    SyntheticLog,
    generate,
    load_log_or_synthetic,
)

SMALL = SyntheticConfig(n_users=30, n_categories=6)


def test_same_seed_same_log() -> None:
    a, b = generate(SMALL, seed=4), generate(SMALL, seed=4)
    assert a.log.fingerprint() == b.log.fingerprint()
    pd.testing.assert_frame_equal(a.log.events, b.log.events)
    assert a.true_lambda == b.true_lambda


def test_different_seed_different_log() -> None:
    a, b = generate(SMALL, seed=4), generate(SMALL, seed=5)
    assert a.log.fingerprint() != b.log.fingerprint()
    assert a.true_lambda != b.true_lambda


@pytest.mark.parametrize("lambda_range", [(0.03, 0.4), (0.1, 0.2), (0.25, 0.25)])
def test_true_lambda_within_range(lambda_range: tuple[float, float]) -> None:
    config = SyntheticConfig(n_users=10, n_categories=8, lambda_range=lambda_range)
    synthetic = generate(config, seed=1)
    lo, hi = lambda_range
    assert set(synthetic.true_lambda) == {1000 + c for c in range(8)}
    for lam in synthetic.true_lambda.values():
        assert lo * (1 - 1e-12) <= lam <= hi * (1 + 1e-12)
    if lo < hi:
        assert len(set(synthetic.true_lambda.values())) == 8
    # Every category in the log has a true rate.
    assert set(synthetic.log.events["category_id"].unique()) <= set(synthetic.true_lambda)


def test_events_follow_the_config() -> None:
    synthetic = generate(SMALL, seed=2)
    assert isinstance(synthetic, SyntheticLog)
    ev = synthetic.log.events
    assert synthetic.log.n_events > 100
    assert ev["user_id"].between(1, SMALL.n_users).all()
    assert ev["timestamp"].min() >= DEFAULT_START
    assert ev["timestamp"].max() < DEFAULT_START + SMALL.days * 86400
    # Behaviour codes are drawn from behavior_probs: click has probability 0 by default.
    codes = set(ev["behavior"].unique().tolist())
    assert codes <= {i for i, p in enumerate(SMALL.behavior_probs) if p > 0}
    assert BEHAVIORS.index("view") in codes
    # Items belong to their category's block of ids.
    assert (ev["item_id"] // 10_000 == ev["category_id"]).all()
    card = synthetic.card()
    assert card["seed"] == 2
    assert card["config"]["n_users"] == SMALL.n_users


def test_start_and_days_shift_and_bound_the_log() -> None:
    config = SyntheticConfig(n_users=10, n_categories=3, days=2.0, start=1_600_000_000)
    ev = generate(config, seed=0).log.events
    assert ev["timestamp"].min() >= 1_600_000_000
    assert ev["timestamp"].max() < 1_600_000_000 + 2 * 86400


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"branching": 1.0}, "branching"),
        ({"branching": 1.5}, "branching"),
        ({"branching": -0.1}, "branching"),
        ({"behavior_probs": (0.8, 0.0, 0.08, 0.04, 0.04)}, "behavior_probs must sum to 1"),
        ({"behavior_probs": (0.5, 0.5)}, "5 entries"),
        ({"lambda_range": (0.0, 0.4)}, "lambda_range"),
        ({"lambda_range": (0.5, 0.1)}, "lambda_range"),
        ({"n_users": 0}, "n_users"),
        ({"n_categories": 0}, "n_categories"),
    ],
)
def test_invalid_config_raises_config_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SyntheticConfig(**kwargs)  # type: ignore[arg-type]


def test_probabilities_within_rounding_of_one_are_accepted() -> None:
    probs = (0.6, 0.1, 0.1, 0.1, 0.1)
    assert sum(probs) != 1.0  # 0.9999999999999999 in floating point
    config = SyntheticConfig(n_users=5, n_categories=2, behavior_probs=probs)
    assert generate(config, seed=0).log.n_events > 0


def test_load_log_or_synthetic_describes_what_it_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        synthetic, "SyntheticConfig", functools.partial(SyntheticConfig, n_users=30, n_categories=6)
    )
    log, info, label = load_log_or_synthetic(None, seed=4)
    assert label == "synthetic" and info == {"logs": "synthetic", **generate(SMALL, seed=4).card()}
    assert log.fingerprint() == generate(SMALL, seed=4).log.fingerprint()
    events = tmp_path / "events.csv"
    events.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433224214164,992329,addtocart,248676,\n"
    )
    categories = tmp_path / "categories.csv"
    categories.write_text("itemid,categoryid\n355908,1\n248676,2\n")
    read, info, label = load_log_or_synthetic(str(events), item_categories=categories)
    assert label == "events" and info == {"logs": str(events), "source": "retailrocket"}
    assert read.events["category_id"].tolist() == [1, 2]
