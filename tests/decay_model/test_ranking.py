from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from decay_model import ConfigError, EvalTask, TaskConfig, from_frame
from decay_model.ranking import next_category, ranking_metrics
from decay_model.synthetic import SyntheticConfig, generate

DAY = 86400
START = 1_500_000_000


def _task() -> EvalTask:
    """Two users over 3 days; one cutoff in each period, with hand-checkable next events."""
    rows = [
        # user 1: categories 10, 11, 12 before the test cutoff; next event (in the test horizon) in 11.
        (1, 10, START + 100),
        (1, 11, START + 200),
        (1, 12, START + 300),
        (1, 11, START + 2 * DAY + 3600),
        (1, 10, START + 2 * DAY + 7200),
        # user 2: categories 20, 21; next event in a new category 22: not counted.
        (2, 20, START + 100),
        (2, 21, START + 200),
        (2, 22, START + 2 * DAY + 3600),
        (2, 20, START + 2 * DAY + 7200),
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "category_id", "timestamp"])
    frame["item_id"] = frame["category_id"] * 100
    frame["behavior"] = "view"
    log = from_frame(frame)
    config = TaskConfig(
        horizon_hours=12, step_hours=12, train_days=1, valid_days=0.5, test_days=0.5, warmup_days=0
    )
    return EvalTask(log, config)


def test_targets_are_first_event_in_horizon() -> None:
    task = _task()
    ex = task.examples("test")
    group, target = next_category(task, "test")
    by_user = dict(zip(ex["user_id"], target[group], strict=True))
    assert by_user[1] == 11
    assert by_user[2] == 22


def test_hand_computed_ranks() -> None:
    task = _task()
    ex = task.examples("test")
    assert len(ex) == 5  # user 1: 10, 11, 12; user 2: 20, 21
    # target 11 ranked 2nd for user 1; user 2's target is a new category and does not count.
    scores = {10: 0.9, 11: 0.5, 12: 0.1, 20: 0.3, 21: 0.2}
    p = ex["category_id"].map(scores).to_numpy()
    out = ranking_metrics(task, "test", p)
    assert out["n_rank"] == 1
    assert out["hr@10"] == 1.0
    assert out["ndcg@10"] == pytest.approx(1 / math.log2(3))
    # k = 1: a miss.
    assert ranking_metrics(task, "test", p, k=1)["hr@1"] == 0.0


def test_ties_get_the_mid_rank() -> None:
    task = _task()
    ex = task.examples("test")
    out = ranking_metrics(task, "test", np.full(len(ex), 0.5), k=1)
    # Three tied candidates: mid-rank 2, so no hit at 1; NDCG@10 uses rank 2.
    assert out["hr@1"] == 0.0
    assert ranking_metrics(task, "test", np.full(len(ex), 0.5))["ndcg@10"] == pytest.approx(1 / math.log2(3))


def test_wrong_length_raises() -> None:
    with pytest.raises(ConfigError, match="one probability per example"):
        ranking_metrics(_task(), "test", np.zeros(2))


def test_perfect_scores_beat_reversed_on_synthetic() -> None:
    task = EvalTask(generate(SyntheticConfig(n_users=60, n_categories=12), seed=1).log)
    ex = task.examples("test")
    group, target = next_category(task, "test")
    oracle = (ex["category_id"].to_numpy() == target[group]).astype(float)
    best = ranking_metrics(task, "test", oracle)
    worst = ranking_metrics(task, "test", -oracle + 1)
    assert best["n_rank"] == worst["n_rank"] > 0
    assert best["hr@10"] == 1.0 and best["ndcg@10"] == 1.0
    assert worst["ndcg@10"] < best["ndcg@10"]
