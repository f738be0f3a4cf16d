"""The evaluation task every decay model is measured on.

The log is cut by time (never by a random split of events) into train,
validation and test periods that end where the log ends. At each cutoff T
inside a period, for every user u and every category c that u engaged with
before T, the question is: does u engage with c again within ``horizon`` after
T? Features may use only events before T; labels only events in [T, T + h),
and a period's labels never reach past the end of that period, so no example
of one period sees the next one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from decay_model.errors import ConfigError, DataValidationError
from decay_model.logs.schema import BehaviourLog

HOUR = 3600
DAY = 86400
PERIODS = ("train", "valid", "test")


@dataclass(frozen=True)
class TaskConfig:
    """How the log is cut and what is predicted.

    Attributes:
        horizon_hours: the prediction window h after each cutoff.
        step_hours: spacing of cutoffs inside a period.
        train_days: length of the training period (events before it are still history).
        valid_days: length of the validation period, used for model selection only.
        test_days: length of the test period, read once for the report.
        warmup_days: no training cutoff in the first days of the training period,
            so that every training example has some history behind it.
    """

    horizon_hours: float = 24.0
    step_hours: float = 6.0
    train_days: float = 5.0
    valid_days: float = 2.0
    test_days: float = 2.0
    warmup_days: float = 1.0

    def __post_init__(self) -> None:
        for name in ("horizon_hours", "step_hours", "train_days", "valid_days", "test_days"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"TaskConfig.{name} must be a positive number, got {value!r}")
        if not (math.isfinite(self.warmup_days) and 0 <= self.warmup_days < self.train_days):
            raise ConfigError(
                f"TaskConfig.warmup_days must be in [0, train_days={self.train_days}), "
                f"got {self.warmup_days!r}"
            )
        if self.seconds("step_hours") < 1:
            raise ConfigError(f"TaskConfig.step_hours must be at least one second, got {self.step_hours!r}")
        horizon = self.seconds("horizon_hours")
        room = {
            "train_days": self.seconds("train_days") - self.seconds("warmup_days"),
            "valid_days": self.seconds("valid_days"),
            "test_days": self.seconds("test_days"),
        }
        for name, seconds in room.items():
            if seconds < horizon:
                raise ConfigError(
                    f"TaskConfig.{name}={getattr(self, name)} leaves less than the horizon "
                    f"({self.horizon_hours} h) for cutoffs: the period would hold no example"
                )

    def seconds(self, name: str) -> int:
        """A duration field in whole seconds, the unit every boundary is computed in."""
        value = getattr(self, name)
        return round(value * (HOUR if name.endswith("_hours") else DAY))

    def to_dict(self) -> dict[str, float]:
        """Plain dict for cards and configs."""
        return asdict(self)


@dataclass(frozen=True)
class TimeSplit:
    """Period boundaries (epoch seconds) and the cutoffs inside each period."""

    train_start: int
    valid_start: int
    test_start: int
    end: int
    cutoffs: dict[str, np.ndarray] = field(repr=False)

    def bounds(self, period: str) -> tuple[int, int]:
        """[start, end) of a period."""
        starts = {"train": self.train_start, "valid": self.valid_start, "test": self.test_start}
        ends = {"train": self.valid_start, "valid": self.test_start, "test": self.end}
        return starts[period], ends[period]


def make_split(log: BehaviourLog, config: TaskConfig) -> TimeSplit:
    """Anchor the periods at the end of the log (rounded up to the hour) and place cutoffs."""
    return split_between(log.t_min, log.t_max, config, log.report.path)


def split_between(t_min: int, t_max: int, config: TaskConfig, name: str) -> TimeSplit:
    """The split of a log whose events span [t_min, t_max]; ``name`` is the log in messages.

    Only the two ends matter, so a log read in pieces (decay_model.streaming) gets its split
    from one pass over the timestamps.
    """
    end = int(math.ceil((t_max + 1) / HOUR) * HOUR)
    test_start = end - config.seconds("test_days")
    valid_start = test_start - config.seconds("valid_days")
    train_start = valid_start - config.seconds("train_days")
    h = config.seconds("horizon_hours")
    step = config.seconds("step_hours")

    def cutoffs(first: int, last_period_end: int) -> np.ndarray:
        # Step back from the last cutoff whose horizon ends exactly at the period end.
        last = last_period_end - h
        if last < first:
            return np.empty(0, dtype=np.int64)
        return np.arange(last, first - 1, -step, dtype=np.int64)[::-1]

    split = TimeSplit(
        train_start=train_start,
        valid_start=valid_start,
        test_start=test_start,
        end=end,
        cutoffs={
            "train": cutoffs(train_start + config.seconds("warmup_days"), valid_start),
            "valid": cutoffs(valid_start, test_start),
            "test": cutoffs(test_start, end),
        },
    )
    if t_min >= valid_start or not len(split.cutoffs["train"]):
        span = (t_max - t_min) / DAY
        raise DataValidationError(
            f"{name}: the log spans {span:.1f} days, too short for the split "
            f"(train {config.train_days} + valid {config.valid_days} + test {config.test_days} days"
            f" with {config.warmup_days} warm-up days); shorten the periods in TaskConfig"
        )
    return split


@dataclass(frozen=True)
class History:
    """The events behind each example, flattened: one row per (example, past event)."""

    example: np.ndarray  # int64 index into the period's examples
    age_hours: np.ndarray  # float64, T - event time
    behavior: np.ndarray  # int8 code into BEHAVIORS


class EvalTask:
    """Examples of every period plus access to the history behind each example.

    Events are grouped by (user, category) pair once; each example is a pair at
    a cutoff, and its history is the pair's events before that cutoff. ``split``
    overrides the split of ``log``'s own time span: a task over some of the users
    of a larger log takes that log's split (``split_between``), and then has
    exactly that log's examples of those users.
    """

    def __init__(
        self, log: BehaviourLog, config: TaskConfig | None = None, split: TimeSplit | None = None
    ) -> None:
        self.log = log
        self.config = config or TaskConfig()
        self.split = make_split(log, self.config) if split is None else split
        ev = log.events
        order = np.lexsort(
            (ev["timestamp"].to_numpy(), ev["category_id"].to_numpy(), ev["user_id"].to_numpy())
        )
        users = ev["user_id"].to_numpy()[order]
        cats = ev["category_id"].to_numpy()[order]
        self._ts = ev["timestamp"].to_numpy()[order].astype(np.int64)
        self._beh = ev["behavior"].to_numpy()[order].astype(np.int8)
        new_pair = np.ones(len(order), dtype=bool)
        new_pair[1:] = (users[1:] != users[:-1]) | (cats[1:] != cats[:-1])
        self._pair_start = np.flatnonzero(new_pair)
        self._pair_end = np.append(self._pair_start[1:], len(order))
        self.pair_user = users[self._pair_start]
        self.pair_category = cats[self._pair_start]
        # Strictly increasing key over (pair, time) for vectorised per-pair searches.
        pair_of_event = np.cumsum(new_pair) - 1
        self._t0 = int(self._ts.min())
        self._span = int(max(int(self._ts.max()), self.split.end) - self._t0 + 2)
        self._key = pair_of_event.astype(np.int64) * self._span + (self._ts - self._t0)
        self._examples: dict[str, pd.DataFrame] = {}

    def _count_before(self, t: int) -> np.ndarray:
        """Per pair, how many of its events happened strictly before time t."""
        offset = min(max(t - self._t0, 0), self._span - 1)
        keys = np.arange(len(self._pair_start), dtype=np.int64) * self._span + offset
        return np.searchsorted(self._key, keys, side="left") - self._pair_start

    def examples(self, period: str) -> pd.DataFrame:
        """One row per (user, category, cutoff): pair index, cutoff, history size and label."""
        if period not in PERIODS:
            raise ConfigError(f"period must be one of {PERIODS}, got {period!r}")
        if period not in self._examples:
            h = self.config.seconds("horizon_hours")
            frames = []
            for t in self.split.cutoffs[period]:
                before = self._count_before(int(t))
                within = self._count_before(int(t) + h) - before
                pairs = np.flatnonzero(before > 0)
                frames.append(
                    pd.DataFrame(
                        {
                            "pair": pairs.astype(np.int64),
                            "user_id": self.pair_user[pairs],
                            "category_id": self.pair_category[pairs],
                            "cutoff": np.full(len(pairs), t, dtype=np.int64),
                            "n_before": before[pairs].astype(np.int64),
                            "label": (within[pairs] > 0).astype(np.int8),
                        }
                    )
                )
            self._examples[period] = pd.concat(frames, ignore_index=True)
        return self._examples[period]

    def labels(self, period: str) -> np.ndarray:
        """The 0/1 labels of a period as floats."""
        return self.examples(period)["label"].to_numpy(dtype=np.float64)

    def history(self, period: str, max_events: int | None = None) -> History:
        """Every example's past events in its category (the most recent max_events if set)."""
        ex = self.examples(period)
        n_before = ex["n_before"].to_numpy()
        take = n_before if max_events is None else np.minimum(n_before, max_events)
        stop = self._pair_start[ex["pair"].to_numpy()] + n_before
        example = np.repeat(np.arange(len(ex), dtype=np.int64), take)
        # Offsets counting back from each example's last event before its cutoff.
        offsets = np.arange(len(example)) - np.repeat(np.cumsum(take) - take, take)
        idx = np.repeat(stop, take) - 1 - offsets
        age = (np.repeat(ex["cutoff"].to_numpy(), take) - self._ts[idx]) / HOUR
        return History(example=example, age_hours=age.astype(np.float64), behavior=self._beh[idx])

    def describe(self) -> pd.DataFrame:
        """Per period: its dates, cutoffs, examples and base rate (for reports)."""
        rows = []
        for period in PERIODS:
            start, stop = self.split.bounds(period)
            ex = self.examples(period)
            rows.append(
                {
                    "period": period,
                    "start": pd.Timestamp(start, unit="s", tz="UTC"),
                    "end": pd.Timestamp(stop, unit="s", tz="UTC"),
                    "cutoffs": len(self.split.cutoffs[period]),
                    "examples": len(ex),
                    "base_rate": float(ex["label"].mean()) if len(ex) else float("nan"),
                }
            )
        return pd.DataFrame(rows)
