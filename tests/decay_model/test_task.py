"""Tests of the evaluation task: time split, examples, labels, history and leakage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from decay_model.errors import ConfigError, DataValidationError
from decay_model.logs import BEHAVIORS, BehaviourLog, from_frame
from decay_model.synthetic import DEFAULT_START, SyntheticConfig, generate
from decay_model.task import DAY, HOUR, PERIODS, EvalTask, TaskConfig, make_split

CODE = {name: code for code, name in enumerate(BEHAVIORS)}
# An exact hour (2017-11-24 16:00 UTC), so hand-made logs have hour-aligned periods.
BASE = DEFAULT_START
assert BASE % HOUR == 0

# Short periods for the hand-made log, all exact in binary floating point:
# horizon 2 h, cutoffs every hour, train 6 h, valid 3 h, test 3 h, warm-up 1.5 h.
HAND_CONFIG = TaskConfig(
    horizon_hours=2.0,
    step_hours=1.0,
    train_days=0.25,
    valid_days=0.125,
    test_days=0.125,
    warmup_days=0.0625,
)

# (user, category, hours after BASE, behaviour)
HAND_EVENTS: list[tuple[int, int, float, str]] = [
    (1, 10, 0.5, "view"),
    (1, 10, 3.0, "cart"),  # exactly at the 3 h cutoff: a label there, history only after it
    (1, 10, 6.0, "buy"),  # exactly at valid_start (= the 6 h cutoff)
    (1, 20, 1.0, "view"),
    (2, 10, 2.5, "view"),
    (2, 10, 4.5, "buy"),
    (2, 20, 1.75, "view"),
    (2, 20, 5.0, "fav"),  # exactly at 3 h + horizon: outside the 3 h window, inside the 4 h one
    (2, 20, 11.5, "view"),  # the last event: the log ends at BASE + 12 h
]


def frame_of(events: list[tuple[int, int, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [u for u, _, _, _ in events],
            "item_id": [100 * c + i for i, (_, c, _, _) in enumerate(events)],
            "category_id": [c for _, c, _, _ in events],
            "behavior": [b for _, _, _, b in events],
            "timestamp": [BASE + round(h * HOUR) for _, _, h, _ in events],
        }
    )


def hand_log() -> BehaviourLog:
    return from_frame(frame_of(HAND_EVENTS), name="hand")


def small_log(seed: int = 3, n_users: int = 60, n_categories: int = 5) -> BehaviourLog:
    return generate(SyntheticConfig(n_users=n_users, n_categories=n_categories), seed=seed).log


def semantic(ex: pd.DataFrame) -> pd.DataFrame:
    """Examples without the internal pair index (which shifts when pairs are added or removed)."""
    return ex.drop(columns="pair").reset_index(drop=True)


def assert_same_period(a: EvalTask, b: EvalTask, period: str) -> None:
    pd.testing.assert_frame_equal(semantic(a.examples(period)), semantic(b.examples(period)))
    np.testing.assert_array_equal(a.labels(period), b.labels(period))
    ha, hb = a.history(period), b.history(period)
    np.testing.assert_array_equal(ha.example, hb.example)
    np.testing.assert_array_equal(ha.age_hours, hb.age_hours)
    np.testing.assert_array_equal(ha.behavior, hb.behavior)


def with_events(log: BehaviourLog, events: pd.DataFrame) -> BehaviourLog:
    return from_frame(events[["user_id", "item_id", "category_id", "behavior", "timestamp"]], name="edited")


def brute_force_examples(log: BehaviourLog, cutoffs: np.ndarray, horizon_s: int) -> pd.DataFrame:
    """Examples straight from the definition, one pair and one cutoff at a time."""
    ev = log.events
    rows = []
    for t in cutoffs:
        for (user, cat), group in ev.groupby(["user_id", "category_id"], sort=True):
            ts = group["timestamp"].to_numpy()
            n_before = int((ts < t).sum())
            if n_before == 0:
                continue
            label = int(((ts >= t) & (ts < t + horizon_s)).any())
            rows.append((int(user), int(cat), int(t), n_before, label))
    return pd.DataFrame(rows, columns=["user_id", "category_id", "cutoff", "n_before", "label"])


# --------------------------------------------------------------------------------------------
# Split boundaries
# --------------------------------------------------------------------------------------------

CONFIGS = [
    TaskConfig(),
    TaskConfig(horizon_hours=12, step_hours=4, train_days=4, valid_days=1.5, test_days=1, warmup_days=0.5),
    TaskConfig(horizon_hours=48, step_hours=24, train_days=5, valid_days=2, test_days=2, warmup_days=0),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "short", "long-horizon"])
def test_split_boundaries(config: TaskConfig) -> None:
    log = small_log()
    split = make_split(log, config)
    h = round(config.horizon_hours * HOUR)
    step = round(config.step_hours * HOUR)

    # Anchored at the end of the log rounded up to the hour; the last event lies inside.
    assert split.end % HOUR == 0
    assert split.end - HOUR <= log.t_max < split.end
    assert split.end - split.test_start == round(config.test_days * DAY)
    assert split.test_start - split.valid_start == round(config.valid_days * DAY)
    assert split.valid_start - split.train_start == round(config.train_days * DAY)
    assert split.bounds("train") == (split.train_start, split.valid_start)
    assert split.bounds("valid") == (split.valid_start, split.test_start)
    assert split.bounds("test") == (split.test_start, split.end)

    for period in PERIODS:
        start, stop = split.bounds(period)
        cut = split.cutoffs[period]
        assert len(cut) >= 1
        assert cut.dtype == np.int64
        assert np.all(cut >= start) and np.all(cut < stop)
        assert np.all(cut + h <= stop), period
        np.testing.assert_array_equal(np.diff(cut), step)
        # The last cutoff's window ends exactly at the period's end; no room for one more before.
        assert cut[-1] + h == stop
        first_allowed = start + (round(config.warmup_days * DAY) if period == "train" else 0)
        assert cut[0] >= first_allowed
        assert cut[0] - step < first_allowed

    assert split.cutoffs["train"][0] >= split.train_start + config.warmup_days * DAY


def test_end_is_rounded_up_even_when_the_last_event_is_on_the_hour() -> None:
    # The last event at exactly BASE + 12 h must still fall inside the test period.
    events = [*HAND_EVENTS[:-1], (2, 20, 12.0, "view")]
    split = make_split(from_frame(frame_of(events)), HAND_CONFIG)
    assert split.end == BASE + 13 * HOUR

    split = make_split(hand_log(), HAND_CONFIG)  # last event at 11.5 h
    assert split.end == BASE + 12 * HOUR


def test_task_describe_matches_examples() -> None:
    task = EvalTask(small_log())
    table = task.describe()
    assert list(table["period"]) == list(PERIODS)
    for row in table.itertuples():
        ex = task.examples(row.period)
        assert row.examples == len(ex) > 0
        assert row.cutoffs == len(task.split.cutoffs[row.period])
        assert row.base_rate == pytest.approx(ex["label"].mean())
        assert row.start == pd.Timestamp(task.split.bounds(row.period)[0], unit="s", tz="UTC")


# --------------------------------------------------------------------------------------------
# Labels and examples
# --------------------------------------------------------------------------------------------


def test_labels_by_hand() -> None:
    # Periods: end = ceil(11.5 h) = 12 h; test [9, 12), valid [6, 9), train [0, 6) (hours after BASE).
    # Cutoffs step back from period end - horizon (2 h) by 1 h:
    #   train: 4, 3, 2 (1 < warm-up 1.5);  valid: 7, 6;  test: 10, 9.
    # Pairs and event times (h): (1,10): 0.5, 3, 6   (1,20): 1   (2,10): 2.5, 4.5
    #                            (2,20): 1.75, 5, 11.5
    # An example needs >= 1 event strictly before T; label = any event in [T, T + 2).
    #   T=2: (1,10) n=1 [2,4) has 3 -> 1; (1,20) n=1 -> 0; (2,10) 2.5 not before -> no example;
    #        (2,20) n=1, 5 not in [2,4) -> 0
    #   T=3: (1,10) n=1 (3 is not before 3), 3 in [3,5) -> 1; (1,20) -> 0;
    #        (2,10) n=1, 4.5 in [3,5) -> 1; (2,20) n=1, 5 not in [3,5) -> 0
    #   T=4: (1,10) n=2, 6 not in [4,6) -> 0; (1,20) -> 0; (2,10) n=1, 4.5 -> 1;
    #        (2,20) n=1, 5 in [4,6) -> 1
    #   T=6: (1,10) n=2, 6 in [6,8) -> 1; (1,20) -> 0; (2,10) n=2 -> 0; (2,20) n=2 -> 0
    #   T=7: (1,10) n=3 -> 0; (1,20) -> 0; (2,10) n=2 -> 0; (2,20) n=2 -> 0
    #   T=9: all 0 (11.5 not in [9,11)); n = 3, 1, 2, 2
    #   T=10: (2,20) 11.5 in [10,12) -> 1, the rest 0
    task = EvalTask(hand_log(), HAND_CONFIG)
    split = task.split
    assert (split.train_start, split.valid_start, split.test_start, split.end) == (
        BASE,
        BASE + 6 * HOUR,
        BASE + 9 * HOUR,
        BASE + 12 * HOUR,
    )
    hours = {p: ((split.cutoffs[p] - BASE) / HOUR).tolist() for p in PERIODS}
    assert hours == {"train": [2.0, 3.0, 4.0], "valid": [6.0, 7.0], "test": [9.0, 10.0]}

    expected = {
        "train": [
            (2, 1, 10, 1, 1), (2, 1, 20, 1, 0), (2, 2, 20, 1, 0),
            (3, 1, 10, 1, 1), (3, 1, 20, 1, 0), (3, 2, 10, 1, 1), (3, 2, 20, 1, 0),
            (4, 1, 10, 2, 0), (4, 1, 20, 1, 0), (4, 2, 10, 1, 1), (4, 2, 20, 1, 1),
        ],
        "valid": [
            (6, 1, 10, 2, 1), (6, 1, 20, 1, 0), (6, 2, 10, 2, 0), (6, 2, 20, 2, 0),
            (7, 1, 10, 3, 0), (7, 1, 20, 1, 0), (7, 2, 10, 2, 0), (7, 2, 20, 2, 0),
        ],
        "test": [
            (9, 1, 10, 3, 0), (9, 1, 20, 1, 0), (9, 2, 10, 2, 0), (9, 2, 20, 2, 0),
            (10, 1, 10, 3, 0), (10, 1, 20, 1, 0), (10, 2, 10, 2, 0), (10, 2, 20, 2, 1),
        ],
    }  # fmt: skip
    for period, rows in expected.items():
        ex = task.examples(period)
        got = [
            ((r.cutoff - BASE) // HOUR, r.user_id, r.category_id, r.n_before, r.label)
            for r in ex.itertuples()
        ]
        assert got == rows, period
        np.testing.assert_array_equal(task.labels(period), [r[-1] for r in rows])
        assert task.labels(period).dtype == np.float64

    # History of train T=4, user 1, category 10: events at 3 h (cart) and 0.5 h (view),
    # most recent first: ages 1.0 and 3.5 hours.
    hist = task.history("train")
    i = 7  # the (4, 1, 10) row above
    mask = hist.example == i
    np.testing.assert_array_equal(hist.age_hours[mask], [1.0, 3.5])
    np.testing.assert_array_equal(hist.behavior[mask], [CODE["cart"], CODE["view"]])
    mask1 = task.history("train", max_events=1).example == i
    np.testing.assert_array_equal(task.history("train", max_events=1).age_hours[mask1], [1.0])


def test_examples_match_the_definition_on_a_synthetic_log() -> None:
    log = small_log(seed=5, n_users=25, n_categories=4)
    task = EvalTask(log)
    h = round(task.config.horizon_hours * HOUR)
    for period in PERIODS:
        ex = task.examples(period)
        oracle = brute_force_examples(log, task.split.cutoffs[period], h)
        got = ex[["user_id", "category_id", "cutoff", "n_before", "label"]].astype(np.int64)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), oracle.astype(np.int64))
        assert 0 < ex["label"].mean() < 1
        # The pair index points at the example's own (user, category).
        np.testing.assert_array_equal(task.pair_user[ex["pair"]], ex["user_id"])
        np.testing.assert_array_equal(task.pair_category[ex["pair"]], ex["category_id"])


def test_unknown_period_is_a_config_error() -> None:
    task = EvalTask(hand_log(), HAND_CONFIG)
    with pytest.raises(ConfigError, match="period must be one of"):
        task.examples("holdout")


# --------------------------------------------------------------------------------------------
# No leakage
# --------------------------------------------------------------------------------------------


def test_no_leakage_when_test_events_are_removed() -> None:
    log = small_log()
    task = EvalTask(log)
    split = task.split
    ev = log.events
    kept = ev[ev["timestamp"] < split.test_start]
    # The periods are anchored at the log's end, so keep that end in place with one sentinel
    # event of a brand-new user and category at the original last time.
    sentinel = pd.DataFrame(
        {
            "user_id": [int(ev["user_id"].max()) + 1],
            "item_id": [1],
            "category_id": [int(ev["category_id"].max()) + 1],
            "behavior": [0],
            "timestamp": [log.t_max],
        }
    )
    truncated = with_events(log, pd.concat([kept, sentinel], ignore_index=True))
    assert truncated.n_events == len(kept) + 1 < log.n_events

    other = EvalTask(truncated)
    assert other.split.end == split.end
    for period in PERIODS:
        np.testing.assert_array_equal(other.split.cutoffs[period], split.cutoffs[period])
    assert_same_period(task, other, "train")
    assert_same_period(task, other, "valid")
    # The change was material: the test period's labels did differ.
    assert task.labels("test").sum() > 0
    assert other.labels("test").sum() == 0


def test_no_leakage_when_later_events_move_in_time() -> None:
    log = small_log()
    task = EvalTask(log)
    split = task.split
    rng = np.random.default_rng(11)

    def moved(start: int) -> BehaviourLog:
        ev = log.events.copy()
        late = (ev["timestamp"] >= start) & (ev["timestamp"] < log.t_max)  # the last stays put
        ev.loc[late, "timestamp"] = rng.integers(start, log.t_max, int(late.sum()))
        ev.loc[late, "behavior"] = rng.permutation(ev.loc[late, "behavior"].to_numpy())
        return with_events(log, ev)

    after_valid = EvalTask(moved(split.valid_start))
    assert after_valid.split.end == split.end
    assert_same_period(task, after_valid, "train")
    assert not np.array_equal(task.labels("valid"), after_valid.labels("valid"))

    after_test = EvalTask(moved(split.test_start))
    assert after_test.split.end == split.end
    assert_same_period(task, after_test, "train")
    assert_same_period(task, after_test, "valid")
    assert not np.array_equal(task.labels("test"), after_test.labels("test"))


@pytest.mark.parametrize("period", PERIODS)
def test_history_is_strictly_before_the_cutoff(period: str) -> None:
    # Several events sit exactly on cutoffs: they must count as labels, never as history.
    log = small_log()
    task = EvalTask(log)
    ev = log.events.copy()
    cut = task.split.cutoffs[period]
    rows = ev.index[::7].drop(ev["timestamp"].idxmax(), errors="ignore")  # keep the log's end
    ev.loc[rows, "timestamp"] = np.resize(cut, len(rows))
    end = task.split.end
    task = EvalTask(with_events(log, ev), task.config)
    assert task.split.end == end
    on_cutoff = task.log.events["timestamp"].isin(cut)
    assert on_cutoff.sum() > 10
    hist = task.history(period)
    assert len(hist.age_hours) > 0
    assert np.all(hist.age_hours > 0)
    ex = task.examples(period)
    np.testing.assert_array_equal(np.bincount(hist.example, minlength=len(ex)), ex["n_before"])


# --------------------------------------------------------------------------------------------
# history()
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_events", [None, 1, 3])
def test_history_keeps_the_most_recent_events(max_events: int | None) -> None:
    log = small_log(seed=7, n_users=20, n_categories=3)
    task = EvalTask(log)
    ev = log.events
    times = {
        key: np.sort(group["timestamp"].to_numpy()) for key, group in ev.groupby(["user_id", "category_id"])
    }
    behaviours = {
        key: group.sort_values("timestamp", kind="stable")["behavior"].to_numpy()
        for key, group in ev.groupby(["user_id", "category_id"])
    }
    ex = task.examples("train")
    hist = task.history("train", max_events=max_events)
    starts = np.searchsorted(hist.example, np.arange(len(ex) + 1))
    assert hist.age_hours.dtype == np.float64
    for i, row in enumerate(ex.itertuples()):
        key = (row.user_id, row.category_id)
        before = times[key][times[key] < row.cutoff][::-1]  # most recent first
        beh = behaviours[key][times[key] < row.cutoff][::-1]
        if max_events is not None:
            before, beh = before[:max_events], beh[:max_events]
        got = slice(starts[i], starts[i + 1])
        np.testing.assert_array_equal(hist.age_hours[got], (row.cutoff - before) / 3600)
        np.testing.assert_array_equal(hist.behavior[got], beh)
    if max_events is not None:
        assert np.bincount(hist.example).max() <= max_events
        assert (ex["n_before"] > max_events).any()  # the cap did bite somewhere


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_too_short_log_names_its_span() -> None:
    events = [(1, 10, 0.0, "view"), (1, 10, 72.0, "view"), (2, 10, 30.0, "buy")]
    log = from_frame(frame_of(events), name="short")
    with pytest.raises(DataValidationError, match=r"short: the log spans 3\.0 days, too short") as info:
        EvalTask(log)
    assert "\n" not in str(info.value)
    # The same log is fine with periods that fit.
    task = EvalTask(log, TaskConfig(train_days=1.5, valid_days=1, test_days=1, warmup_days=0.25))
    assert len(task.examples("train")) > 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("horizon_hours", 0.0),
        ("horizon_hours", -1.0),
        ("horizon_hours", math.nan),
        ("horizon_hours", math.inf),
        ("step_hours", 0.0),
        ("train_days", -5.0),
        ("valid_days", math.nan),
        ("test_days", 0.0),
        ("warmup_days", -0.5),
        ("warmup_days", 5.0),  # == train_days
        ("valid_days", 0.5),  # 12 h: shorter than the 24 h horizon
        ("test_days", 0.99),
        ("train_days", 1.5),  # with the default 1 warm-up day: 12 h of cutoffs < 24 h horizon
        ("step_hours", 1e-4),  # under one second
        ("horizon_hours", "24"),
    ],
)
def test_invalid_task_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"TaskConfig\.{field}"):
        TaskConfig(**{field: value})  # type: ignore[arg-type]


def test_config_round_trips_through_to_dict() -> None:
    config = CONFIGS[1]
    assert TaskConfig(**config.to_dict()) == config


def test_a_period_exactly_one_horizon_long_holds_one_cutoff() -> None:
    # 0.285 days and 6.84 hours are the same 24,624 s, though 0.285 * 86400 is
    # 24623.999999999996 in floating point: truncating it would leave the period no cutoff.
    config = TaskConfig(horizon_hours=6.84, valid_days=0.285)
    task = EvalTask(small_log(), config)
    split = task.split
    assert split.test_start - split.valid_start == 24_624
    np.testing.assert_array_equal(split.cutoffs["valid"], [split.valid_start])
    assert len(task.examples("valid")) > 0
