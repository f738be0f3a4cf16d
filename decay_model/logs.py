"""Read real e-commerce behaviour logs into one canonical event schema.

Every later stage of decaygym (the time split, the decay models, the simulated
population) reads a :class:`BehaviourLog`, whose ``events`` frame has exactly
these columns:

============  =======  =========================================================
column        dtype    meaning
============  =======  =========================================================
user_id       int64    user id (factorized to codes when the raw ids were text)
item_id       int64    item id (likewise)
category_id   int64    the item's category id (likewise)
behavior      int8     code into :data:`BEHAVIORS`: 0 view, 1 click, 2 cart,
                       3 fav, 4 buy
timestamp     int64    seconds since 1970-01-01 UTC
duration      float64  optional dwell time; NaN where unknown
============  =======  =========================================================

Rows are sorted stably by ``(user_id, timestamp)``, so events of one user that
share a timestamp keep their file order, and exact duplicate rows are dropped.
Every row that is dropped is counted, by reason, in :class:`LoadReport`.

Each public dataset names its behaviours differently. :data:`SOURCES` maps
them onto the canonical vocabulary (canonical names are accepted for every
source as well):

============  =========================================  ==================================
source        raw behaviour -> canonical                 timestamp
============  =========================================  ==================================
taobao        pv->view, cart, fav, buy                   epoch seconds (UserBehavior.csv,
                                                         which has no header)
tmall         click, cart, fav, buy;                     ``mmdd`` without a year, read as a
              0->click, 1->cart, 2->buy, 3->fav          date in :data:`TMALL_YEAR`
retailrocket  view, addtocart->cart, transaction->buy    epoch milliseconds; no category
                                                         column: pass ``item_categories``
canonical     view, click, cart, fav, buy; codes 0-4     epoch seconds
============  =========================================  ==================================

Any source also accepts ISO 8601 datetimes (time-zone aware ones are converted
to UTC, naive ones are taken as UTC) and date-only values; dates lose the order
of events within a day, so they raise a warning. Bad input raises
:class:`~decay_model.errors.DataValidationError` with a one-line message that
names the file, the column, the first offending line and value, and what was
expected.
"""

from __future__ import annotations

import csv
import hashlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from decay_model.errors import ConfigError, DataValidationError

__all__ = [
    "BEHAVIORS",
    "COLUMN_ALIASES",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "SOURCES",
    "TMALL_YEAR",
    "BehaviourLog",
    "LoadReport",
    "LogWarning",
    "SourceSpec",
    "describe_sources",
    "from_frame",
    "load_log",
]

BEHAVIORS: tuple[str, ...] = ("view", "click", "cart", "fav", "buy")
"""The canonical behaviour vocabulary; an event's ``behavior`` code is its index here."""

REQUIRED_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "category_id", "behavior", "timestamp")
"""Columns every log must provide (directly, through an alias, or by position)."""

OPTIONAL_COLUMNS: tuple[str, ...] = ("duration",)
"""Columns that are kept when present."""

TMALL_YEAR: int = 2015
"""Year assumed for Tmall's ``mmdd`` time stamps (the logs cover 2015-05 to 2015-11)."""

COLUMN_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "user_id": ("user_id", "userid", "user", "visitorid", "uid"),
        "item_id": ("item_id", "itemid", "item"),
        "category_id": ("category_id", "categoryid", "cat_id", "category"),
        "behavior": (
            "behavior",
            "behaviour",
            "behavior_type",
            "behaviour_type",
            "event",
            "action_type",
            "action",
        ),
        "timestamp": ("timestamp", "time_stamp", "ts", "time", "datetime", "event_time"),
        "duration": ("duration", "dwell_time", "dwell"),
    }
)
"""Header names (compared case-insensitively) accepted for each canonical column."""

_ALIAS_TO_COLUMN: Mapping[str, str] = MappingProxyType(
    {alias: column for column, aliases in COLUMN_ALIASES.items() for alias in aliases}
)
_POSITIONAL_EVENTS: Mapping[int, tuple[str, ...]] = MappingProxyType(
    {5: REQUIRED_COLUMNS, 6: (*REQUIRED_COLUMNS, "duration")}
)
_SNIFF_BYTES = 1 << 20
_MAX_SECONDS = 10**11  # about the year 5138: larger values are milliseconds or finer
_EPOCH = pd.Timestamp(0, tz="UTC")
_ONE_SECOND = pd.Timedelta(seconds=1)
_DATE_ONLY = r"^\d{4}-\d{2}-\d{2}$"
_ISO_START = r"^\d{4}-\d{2}-\d{2}"
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_UNIT_FACTORS = MappingProxyType({"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000})
_FINGERPRINT_VERSION = b"decaygym-behaviour-log-v1"


class LogWarning(UserWarning):
    """A log was loaded, but something about it limits what it can tell (e.g. date-only times)."""


# --------------------------------------------------------------------------------------------
# Source vocabularies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSpec:
    """How one public dataset writes behaviours and time, mapped onto the canonical schema.

    Attributes:
        name: Key in :data:`SOURCES` and the value of ``LoadReport.source``.
        title: The dataset, for people.
        behavior_map: Raw behaviour value (lower case) -> canonical name in :data:`BEHAVIORS`.
            Canonical names are accepted in addition, for every source.
        timestamp_unit: How integer time stamps are read: ``"s"`` (epoch seconds), ``"ms"``
            (epoch milliseconds) or ``"mmdd"`` (month and day, in :data:`TMALL_YEAR`).
        notes: Caveats worth knowing before fitting anything on this source.
        header_markers: Lower-case header names that only this source uses; they select
            the source when ``source=None``.
    """

    name: str
    title: str
    behavior_map: Mapping[str, str]
    timestamp_unit: str
    notes: str
    header_markers: frozenset[str] = frozenset()

    def vocabulary(self) -> dict[str, int]:
        """Return every accepted raw value (lower case) mapped to its canonical code."""
        vocab = {raw: BEHAVIORS.index(canonical) for raw, canonical in self.behavior_map.items()}
        for code, name in enumerate(BEHAVIORS):
            vocab.setdefault(name, code)
        return vocab

    def accepted(self) -> str:
        """Return the accepted raw values as one short, human-readable list."""
        return ", ".join(self.vocabulary())


SOURCES: Mapping[str, SourceSpec] = MappingProxyType(
    {
        "taobao": SourceSpec(
            name="taobao",
            title="Taobao UserBehavior (Alibaba Tianchi dataset 649)",
            behavior_map=MappingProxyType({"pv": "view", "cart": "cart", "fav": "fav", "buy": "buy"}),
            timestamp_unit="s",
            notes="No header; columns user,item,category,behavior,timestamp. "
            "A few rows fall before the nominal 2017-11-25..2017-12-03 window.",
        ),
        "tmall": SourceSpec(
            name="tmall",
            title="Tmall repeat buyers (user_log_format1.csv)",
            behavior_map=MappingProxyType(
                {
                    "click": "click",
                    "cart": "cart",
                    "fav": "fav",
                    "buy": "buy",
                    "0": "click",
                    "1": "cart",
                    "2": "buy",
                    "3": "fav",
                }
            ),
            timestamp_unit="mmdd",
            notes=f"time_stamp is month-day (1111 = 11 Nov) without a year: read in {TMALL_YEAR}; "
            "date-only, so repeats within a day collapse as exact duplicates.",
            header_markers=frozenset({"time_stamp", "action_type", "seller_id", "brand_id"}),
        ),
        "retailrocket": SourceSpec(
            name="retailrocket",
            title="RetailRocket e-commerce events (events.csv)",
            behavior_map=MappingProxyType({"view": "view", "addtocart": "cart", "transaction": "buy"}),
            timestamp_unit="ms",
            notes="No category column: pass item_categories (item_id,category_id, or "
            "item_properties*.csv, whose latest categoryid per item is used).",
            header_markers=frozenset({"visitorid", "transactionid"}),
        ),
        "canonical": SourceSpec(
            name="canonical",
            title="decaygym's own schema",
            behavior_map=MappingProxyType(
                {
                    **{name: name for name in BEHAVIORS},
                    **{str(code): name for code, name in enumerate(BEHAVIORS)},
                }
            ),
            timestamp_unit="s",
            notes="What from_frame and the synthetic generator produce; behaviour codes 0-4 "
            "are accepted as well as names.",
        ),
    }
)
"""Known sources, by name. See the module docstring for the table."""


def describe_sources() -> str:
    """Return :data:`SOURCES` as a Markdown table, so the README cannot drift from the code."""
    units = {
        "s": "epoch seconds",
        "ms": "epoch milliseconds",
        "mmdd": f"`mmdd`, read in {TMALL_YEAR} (date-only)",
    }
    lines = [
        "| source | dataset | behaviour values -> canonical | timestamp | notes |",
        "|---|---|---|---|---|",
    ]
    for spec in SOURCES.values():
        mapping = ", ".join(
            f"`{raw}`" if raw == canonical else f"`{raw}`->`{canonical}`"
            for raw, canonical in spec.behavior_map.items()
        )
        lines.append(
            f"| `{spec.name}` | {spec.title} | {mapping} | {units[spec.timestamp_unit]} | {spec.notes} |"
        )
    return "\n".join(lines)


def _resolve_source(source: str | None) -> SourceSpec | None:
    """Look ``source`` up in :data:`SOURCES`, raising ConfigError with the known names."""
    if source is None:
        return None
    spec = SOURCES.get(str(source).strip().lower())
    if spec is None:
        raise ConfigError(
            f"unknown log source {source!r}; known sources: {', '.join(SOURCES)} (or None to detect it)"
        )
    return spec


# --------------------------------------------------------------------------------------------
# Public result types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadReport:
    """What loading a log read, kept and dropped, so nothing disappears silently.

    Attributes:
        path: The file name as given (``"<frame>"`` for in-memory frames).
        source: The vocabulary applied: a key of :data:`SOURCES`.
        rows_read: Data rows read (header excluded); ``rows_kept + sum(dropped.values())``.
        rows_kept: Rows in the resulting events frame.
        dropped: Reason -> number of rows dropped for it (only reasons that occurred).
        warnings: Caveats found while loading, also emitted as :class:`LogWarning`.
    """

    path: str
    source: str
    rows_read: int
    rows_kept: int
    dropped: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        """Return one human line, e.g. for a CLI's progress output or a model card."""
        total = sum(self.dropped.values())
        detail = ""
        if self.dropped:
            detail = " (" + ", ".join(f"{k} {v:,}" for k, v in self.dropped.items()) + ")"
        line = (
            f"read {self.rows_read:,} rows from {self.path} (source {self.source}); "
            f"kept {self.rows_kept:,}; dropped {total:,}{detail}"
        )
        if self.warnings:
            line += f"; {len(self.warnings)} warning(s)"
        return line


@dataclass(frozen=True, eq=False)
class BehaviourLog:
    """A validated, cleaned event log in the canonical schema (see the module docstring).

    Attributes:
        events: The events; columns and dtypes as in the module docstring, sorted stably by
            ``(user_id, timestamp)``, with a fresh RangeIndex.
        report: What loading read, kept and dropped.
        id_maps: For id columns whose raw values were not integers: an Index whose
            position ``code`` holds the original value (codes follow the sorted raw values).
            Empty when all ids were integers.
    """

    events: pd.DataFrame
    report: LoadReport
    id_maps: dict[str, pd.Index] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Return a sha256 hex digest of the canonical columns (and id maps).

        Model artifacts record it, so that a model can say which data it was fitted on;
        it depends only on the cleaned content, not on the file's name or layout.
        """
        digest = hashlib.sha256(_FINGERPRINT_VERSION)
        for column in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
            if column not in self.events:
                continue
            dtype = "<f8" if column == "duration" else ("i1" if column == "behavior" else "<i8")
            values = np.ascontiguousarray(self.events[column].to_numpy(dtype=dtype))
            digest.update(f"\0{column}:{dtype}:{len(values)}\0".encode())
            digest.update(memoryview(values).cast("B"))
        for column in sorted(self.id_maps):
            digest.update(f"\0id_map:{column}\0".encode())
            digest.update("\x1f".join(map(str, self.id_maps[column])).encode())
        return digest.hexdigest()

    @property
    def n_events(self) -> int:
        """Number of events kept."""
        return len(self.events)

    @property
    def n_users(self) -> int:
        """Number of distinct users."""
        return int(self.events["user_id"].nunique())

    @property
    def n_items(self) -> int:
        """Number of distinct items."""
        return int(self.events["item_id"].nunique())

    @property
    def n_categories(self) -> int:
        """Number of distinct categories."""
        return int(self.events["category_id"].nunique())

    @property
    def t_min(self) -> int:
        """Earliest timestamp, epoch seconds."""
        return int(self.events["timestamp"].min())

    @property
    def t_max(self) -> int:
        """Latest timestamp, epoch seconds."""
        return int(self.events["timestamp"].max())


# --------------------------------------------------------------------------------------------
# Error helpers
# --------------------------------------------------------------------------------------------


def _show(value: object, limit: int = 60) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters, so messages stay one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message (pyarrow's can span several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _bad_value(
    name: str, column: str, where: str, problem: str, value: object, expected: str
) -> DataValidationError:
    """Build the one-line DataValidationError for one offending cell."""
    return DataValidationError(
        f"{name}: column {column}, {where}: {problem} {_show(value)}; expected {expected}"
    )


def _first_true(mask: np.ndarray | pa.Array | pa.ChunkedArray) -> int | None:
    """Return the position of the first true value of a boolean mask, or None."""
    if isinstance(mask, pa.Array | pa.ChunkedArray):
        mask = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


# --------------------------------------------------------------------------------------------
# Per-column conversion (one batch at a time, so memory stays near the compact result)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    """Turns a position inside one batch into "line N" / "row N" for messages."""

    name: str
    describe: Callable[[int], str]
    offset: int
    index: np.ndarray | None = None

    def __call__(self, k: int) -> str:
        """Describe the batch-local row ``k``."""
        row = self.offset + (int(self.index[k]) if self.index is not None else k)
        return self.describe(row)

    def subset(self, positions: np.ndarray) -> _Where:
        """Return the locator for the batch rows taken at ``positions``."""
        index = positions if self.index is None else self.index[positions]
        return _Where(self.name, self.describe, self.offset, index)


def _plain(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Return a plain (not chunked, not dictionary-encoded) array."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _check_no_nulls(arr: pa.Array, where: _Where, column: str, expected: str) -> None:
    """Raise on the first missing value: ids, behaviours and times are never optional."""
    if arr.null_count:
        k = _first_true(pc.is_null(arr))
        raise _bad_value(where.name, column, where(k), "missing value", None, expected)


def _integral_floats(values: np.ndarray) -> np.ndarray:
    """Return a mask of the float values that are not exact int64 integers."""
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(values) | (values != np.floor(values)) | (np.abs(values) >= 2.0**63)


def _convert_id(arr: pa.Array, where: _Where, column: str) -> np.ndarray | pa.Array:
    """Convert one batch of ids to int64, or to trimmed text when they are not integers.

    Text ids are factorized once all batches are read (see ``_factorize``), so a later
    batch with non-integer ids still yields one consistent code space.
    """
    expected = "an id (an integer, or non-empty text)"
    arr = _plain(arr)
    _check_no_nulls(arr, where, column, expected)
    t = arr.type
    if pa.types.is_integer(t):
        if pa.types.is_uint64(t):
            big = pc.greater(arr, np.iinfo(np.int64).max)
            k = _first_true(big)
            if k is not None:
                raise _bad_value(
                    where.name,
                    column,
                    where(k),
                    "id too large",
                    arr[k].as_py(),
                    "an id that fits in int64",
                )
        return arr.cast(pa.int64()).to_numpy()
    if pa.types.is_floating(t):
        values = arr.to_numpy(zero_copy_only=False).astype(np.float64)
        k = _first_true(_integral_floats(values))
        if k is not None:
            raise _bad_value(where.name, column, where(k), "non-integer id", values[k], expected)
        return values.astype(np.int64)
    if _is_text(t):
        try:  # the common case, tried first because trimming a whole batch costs time
            return arr.cast(pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        text = pc.utf8_trim_whitespace(arr)
        k = _first_true(pc.equal(text, ""))
        if k is not None:
            raise _bad_value(where.name, column, where(k), "blank id", arr[k].as_py(), expected)
        try:
            return text.cast(pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        try:  # "17.0", as written by tools that turned an int column into floats
            values = text.cast(pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return text
        if _first_true(_integral_floats(values)) is None:
            return values.astype(np.int64)
        return text
    raise _bad_value(where.name, column, where(0), f"unsupported type {t}:", arr[0].as_py(), expected)


def _convert_behavior(arr: pa.Array, where: _Where, spec: SourceSpec) -> np.ndarray:
    """Map one batch of raw behaviour values to int8 codes through the source's vocabulary."""
    column = "behavior"
    expected = f"one of {spec.accepted()} (source {spec.name})"
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        encoded = arr
    else:
        raw = arr
        if pa.types.is_integer(arr.type):
            raw = arr.cast(pa.string())
        elif not _is_text(arr.type):
            raise _bad_value(
                where.name,
                column,
                where(0),
                f"unsupported type {arr.type}:",
                arr[0].as_py(),
                expected,
            )
        encoded = pc.dictionary_encode(raw)
    vocab = spec.vocabulary()
    keys = encoded.dictionary.cast(pa.string()).to_pylist()
    table = np.array(
        [vocab.get(key.strip().lower(), -1) if key is not None else -1 for key in keys] + [-1],
        dtype=np.int16,
    )
    indices = encoded.indices
    if indices.null_count:
        k = _first_true(pc.is_null(indices))
        raise _bad_value(where.name, column, where(k), "missing value", None, expected)
    codes = table[indices.to_numpy(zero_copy_only=False)]
    k = _first_true(codes < 0)
    if k is not None:
        value = arr[k].as_py()
        problem = "blank value" if str(value).strip() == "" else "unknown value"
        raise _bad_value(where.name, column, where(k), problem, value, expected)
    return codes.astype(np.int8)


_TIME_EXPECTED = "epoch seconds, an ISO 8601 datetime (e.g. 2017-11-25T10:00:00+08:00) or a date (2017-11-25)"


def _expected_time(unit: str) -> str:
    """Describe the accepted time values for a source's integer unit."""
    if unit == "ms":
        return _TIME_EXPECTED.replace("epoch seconds", "epoch milliseconds")
    if unit == "mmdd":
        return f"a month-day number mmdd (e.g. 1111 for 11 November, read in {TMALL_YEAR})"
    return _TIME_EXPECTED


def _check_seconds(secs: np.ndarray, raw: pa.Array, where: _Where, unit: str, *, numeric: bool) -> np.ndarray:
    """Reject times before 1970 and numbers too large to be epoch seconds."""
    k = _first_true(secs < 0)
    if k is not None:
        raise _bad_value(
            where.name,
            "timestamp",
            where(k),
            "negative timestamp (before 1970)",
            raw[k].as_py(),
            f"{_expected_time(unit)}, not before 1970-01-01 UTC",
        )
    if numeric:
        k = _first_true(secs > _MAX_SECONDS)
        if k is not None:
            hint = "epoch seconds" if unit == "s" else "epoch milliseconds"
            raise _bad_value(
                where.name,
                "timestamp",
                where(k),
                "timestamp too large (past the year 5000)",
                raw[k].as_py(),
                f"{hint}; milliseconds need source='retailrocket'" if unit == "s" else hint,
            )
    return secs


def _from_numbers(values: np.ndarray, raw: pa.Array, where: _Where, unit: str) -> np.ndarray:
    """Turn epoch numbers (seconds or milliseconds; floats floored) into int64 seconds."""
    scale = _UNIT_FACTORS["ms" if unit == "ms" else "s"]
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        k = _first_true(bad)
        if k is not None:
            raise _bad_value(
                where.name,
                "timestamp",
                where(k),
                "not a finite number",
                raw[k].as_py(),
                _expected_time(unit),
            )
        floored = np.floor(values / scale)
        _check_seconds(floored, raw, where, unit, numeric=True)
        return floored.astype(np.int64)
    secs = values.astype(np.int64, copy=False)
    if scale != 1:
        secs = secs // scale
    return _check_seconds(secs, raw, where, unit, numeric=True)


def _from_mmdd(values: np.ndarray, raw: pa.Array, where: _Where) -> np.ndarray:
    """Turn Tmall's month-day numbers into midnight UTC of that day in :data:`TMALL_YEAR`."""
    values = values.astype(np.int64)
    month, day = values // 100, values % 100
    plausible = (values >= 0) & (month >= 1) & (month <= 12) & (day >= 1)
    month_start = np.datetime64(f"{TMALL_YEAR:04d}-01", "M") + (np.where(plausible, month, 1) - 1).astype(
        "timedelta64[M]"
    )
    date = month_start.astype("datetime64[D]") + (np.where(plausible, day, 1) - 1).astype("timedelta64[D]")
    valid = plausible & (date.astype("datetime64[M]") == month_start)
    k = _first_true(~valid)
    if k is not None:
        raise _bad_value(
            where.name,
            "timestamp",
            where(k),
            "not a month-day date",
            raw[k].as_py(),
            _expected_time("mmdd"),
        )
    return date.astype("datetime64[s]").astype(np.int64)


def _from_iso(text: pa.Array, where: _Where, unit: str) -> tuple[np.ndarray, int]:
    """Parse ISO 8601 datetimes or dates (aware -> UTC, naive taken as UTC) to seconds."""
    parsed = pd.to_datetime(
        pd.Series(text.to_numpy(zero_copy_only=False), dtype=object),
        format="ISO8601",
        utc=True,
        errors="coerce",
    )
    k = _first_true(parsed.isna().to_numpy())
    if k is not None:
        raise _bad_value(
            where.name,
            "timestamp",
            where(k),
            "cannot read as a time",
            text[k].as_py(),
            _expected_time(unit),
        )
    secs = ((parsed - _EPOCH) // _ONE_SECOND).to_numpy(dtype=np.int64)
    _check_seconds(secs, text, where, unit, numeric=False)
    n_dates = int(pc.sum(pc.match_substring_regex(text, _DATE_ONLY)).as_py() or 0)
    return secs, n_dates


def _convert_timestamp(arr: pa.Array, where: _Where, unit: str) -> tuple[np.ndarray, int]:
    """Convert one batch of times to int64 epoch seconds; also count date-only values."""
    arr = _plain(arr)
    _check_no_nulls(arr, where, "timestamp", _expected_time(unit))
    t = arr.type
    if pa.types.is_timestamp(t):  # aware values are stored in UTC; naive ones are taken as UTC
        raw = arr.cast(pa.int64()).to_numpy()
        secs = raw // _UNIT_FACTORS[t.unit]
        return _check_seconds(secs, arr, where, unit, numeric=False), 0
    if pa.types.is_date32(t):
        secs = arr.cast(pa.int32()).to_numpy().astype(np.int64) * 86_400
        return _check_seconds(secs, arr, where, unit, numeric=False), len(arr)
    if pa.types.is_date64(t):
        secs = arr.cast(pa.int64()).to_numpy() // 1_000
        return _check_seconds(secs, arr, where, unit, numeric=False), len(arr)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        values = arr.to_numpy(zero_copy_only=False)
        if unit == "mmdd":
            k = _first_true(_integral_floats(values.astype(np.float64)))
            if k is not None:
                raise _bad_value(
                    where.name,
                    "timestamp",
                    where(k),
                    "not a month-day date",
                    arr[k].as_py(),
                    _expected_time(unit),
                )
            return _from_mmdd(values, arr, where), len(arr)
        return _from_numbers(values, arr, where, unit), 0
    if not _is_text(t):
        raise _bad_value(
            where.name,
            "timestamp",
            where(0),
            f"unsupported type {t}:",
            arr[0].as_py(),
            _expected_time(unit),
        )
    try:  # the common case first: clean integers need no trimming
        ints = arr.cast(pa.int64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        ints = None
    if ints is not None:
        if unit == "mmdd":
            return _from_mmdd(ints, arr, where), len(arr)
        return _from_numbers(ints, arr, where, unit), 0
    return _from_text(pc.utf8_trim_whitespace(arr), arr, where, unit)


def _from_text(text: pa.Array, raw: pa.Array, where: _Where, unit: str) -> tuple[np.ndarray, int]:
    """Convert trimmed text times, value by value: numbers by the unit, the rest as ISO 8601."""
    is_number = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False)
    is_dated = pc.fill_null(pc.match_substring_regex(text, _ISO_START), False)
    k = _first_true(pc.invert(pc.or_(is_number, is_dated)))
    if k is not None:  # also refuses words such as "now" and "today", which pandas would read
        problem = "blank value" if text[k].as_py() == "" else "cannot read as a time"
        raise _bad_value(where.name, "timestamp", where(k), problem, raw[k].as_py(), _expected_time(unit))
    secs = np.empty(len(text), dtype=np.int64)
    n_dates = 0
    numbers = np.flatnonzero(is_number.to_numpy(zero_copy_only=False))
    if numbers.size:
        part = text.take(numbers)
        part_raw = raw.take(numbers)
        part_where = where.subset(numbers)
        try:
            values = part.cast(pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # "+5", "1.5", "1e9"
            values = part.cast(pa.float64()).to_numpy(zero_copy_only=False)
        if unit == "mmdd":
            k = _first_true(_integral_floats(values.astype(np.float64)))
            if k is not None:
                raise _bad_value(
                    where.name,
                    "timestamp",
                    part_where(k),
                    "not a month-day date",
                    part_raw[k].as_py(),
                    _expected_time(unit),
                )
            secs[numbers] = _from_mmdd(values, part_raw, part_where)
            n_dates += len(numbers)
        else:
            secs[numbers] = _from_numbers(values, part_raw, part_where, unit)
    if numbers.size < len(text):
        dated = np.flatnonzero(~is_number.to_numpy(zero_copy_only=False))
        secs[dated], n_iso_dates = _from_iso(text.take(dated), where.subset(dated), unit)
        n_dates += n_iso_dates
    return secs, n_dates


def _convert_duration(arr: pa.Array, where: _Where) -> np.ndarray:
    """Convert dwell times to float64 seconds; blanks become NaN, negatives are errors."""
    expected = "a non-negative number (dwell time) or a blank"
    arr = _plain(arr)
    if _is_text(arr.type):
        text = pc.utf8_trim_whitespace(arr)
        number = pc.match_substring_regex(text, _NUMBER)
        k = _first_true(pc.invert(pc.or_(number, pc.equal(text, ""))))
        if k is not None:
            raise _bad_value(where.name, "duration", where(k), "not a number", arr[k].as_py(), expected)
        values = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text).cast(pa.float64())
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_null(arr.type):
        values = arr.cast(pa.float64())
    else:
        raise _bad_value(
            where.name,
            "duration",
            where(0),
            f"unsupported type {arr.type}:",
            arr[0].as_py(),
            expected,
        )
    out = values.to_numpy(zero_copy_only=False).astype(np.float64)
    with np.errstate(invalid="ignore"):
        k = _first_true((out < 0) | np.isinf(out))
    if k is not None:
        raise _bad_value(
            where.name,
            "duration",
            where(k),
            "negative or infinite duration",
            arr[k].as_py(),
            expected,
        )
    return out


# --------------------------------------------------------------------------------------------
# Tables on disk: sniffing, header detection, batched reading
# --------------------------------------------------------------------------------------------


@dataclass
class _Batch:
    """Raw columns of one batch (canonical name -> arrow array) and where its rows came from."""

    columns: dict[str, pa.Array]
    offset: int
    index: np.ndarray | None = None  # batch row -> row within the raw block, if rows were dropped

    @property
    def n_rows(self) -> int:
        """Rows in this batch."""
        return len(next(iter(self.columns.values())))


@dataclass
class _Table:
    """An opened CSV or Parquet file: its layout, and a way to stream its needed columns."""

    path: Path
    name: str
    kind: str  # "csv" or "parquet"
    header: tuple[str, ...] | None  # raw header names; None for a headerless CSV
    columns: dict[str, str]  # canonical column -> physical column name in the reader
    delimiter: str = ","
    n_fields: int = 0
    blank_lines: int = 0

    @property
    def header_lines(self) -> int:
        return 1 if self.kind == "csv" and self.header is not None else 0

    def describe(self, row: int) -> str:
        """Describe data row ``row`` (0-based) as a 1-based file line (or Parquet row)."""
        if self.kind == "csv":
            return f"line {self.header_lines + row + 1}"
        return f"row {row + 1}"

    def header_text(self) -> str:
        """Describe the header (or a Parquet file's columns) for messages."""
        if self.header is None:
            return "no header"
        label = "header" if self.kind == "csv" else "columns"
        return f"{label}: " + ", ".join(self.header)

    def batches(self, wanted: Sequence[str], block_size: int) -> Iterator[_Batch]:
        """Stream the ``wanted`` canonical columns, batch by batch."""
        if self.kind == "parquet":
            yield from self._parquet_batches(wanted)
        else:
            yield from self._csv_batches(wanted, block_size)

    def _parquet_batches(self, wanted: Sequence[str]) -> Iterator[_Batch]:
        physical = [self.columns[c] for c in wanted]
        offset = 0
        try:
            parquet = pq.ParquetFile(self.path)
            batches = parquet.iter_batches(columns=physical)
        except (pa.ArrowException, OSError) as exc:
            raise DataValidationError(f"{self.name}: cannot read as Parquet: {_first_line(exc)}") from exc
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise DataValidationError(
                    f"{self.name}: cannot read as Parquet after row {offset}: {_first_line(exc)}"
                ) from exc
            if batch.num_rows:
                cols = {c: batch.column(p) for c, p in zip(wanted, physical, strict=True)}
                yield _Batch(cols, offset)
                offset += batch.num_rows

    def _csv_batches(self, wanted: Sequence[str], block_size: int) -> Iterator[_Batch]:
        names = [f"c{i}" for i in range(self.n_fields)]
        physical = [self.columns[c] for c in wanted]
        invalid: list[tuple[int, int, str | None]] = []

        def on_invalid(row: Any) -> str:
            invalid.append((row.expected_columns, row.actual_columns, row.text))
            return "error"

        read_options = pacsv.ReadOptions(
            block_size=block_size, skip_rows=self.header_lines, column_names=names
        )
        parse_options = pacsv.ParseOptions(
            delimiter=self.delimiter, ignore_empty_lines=False, invalid_row_handler=on_invalid
        )
        convert_options = pacsv.ConvertOptions(
            include_columns=physical,
            column_types={p: pa.string() for p in physical},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        offset = 0
        try:
            reader = pacsv.open_csv(
                self.path,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
        except (pa.ArrowException, OSError) as exc:
            raise self._csv_error(exc, invalid, offset) from exc
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise self._csv_error(exc, invalid, offset) from exc
            n = batch.num_rows
            if not n:
                continue
            cols = {c: batch.column(p) for c, p in zip(wanted, physical, strict=True)}
            # With ignore_empty_lines=False an empty line is a row of empty strings; dropping
            # it here (and counting it) keeps every later line number exact. An empty line
            # has an empty first field, so the other fields are tested only then.
            blank = pc.equal(cols[wanted[0]], "")
            index = None
            if pc.any(blank).as_py():
                for arr in cols.values():
                    blank = pc.and_(blank, pc.equal(pc.utf8_trim_whitespace(arr), ""))
            if pc.any(blank).as_py():
                keep = ~pc.fill_null(blank, False).to_numpy(zero_copy_only=False)
                self.blank_lines += int(n - keep.sum())
                index = np.flatnonzero(keep)
                cols = {c: a.filter(pa.array(keep)) for c, a in cols.items()}
            if index is None or index.size:
                yield _Batch(cols, offset, index)
            offset += n

    def _csv_error(
        self, exc: BaseException, invalid: list[tuple[int, int, str | None]], offset: int
    ) -> DataValidationError:
        """Translate a pyarrow CSV failure into a one-line message with the line number."""
        start = self.header_lines + offset + 1
        if invalid:
            expected, actual, text = invalid[0]
            line = _find_line(self.path, start, text) if text is not None else None
            where = f"line {line}" if line is not None else f"at or after line {start}"
            return DataValidationError(
                f"{self.name}: {where}: {actual} field(s) where {expected} were expected "
                f"(as on line 1, delimiter {self.delimiter!r}); text {_show(text)}"
            )
        return DataValidationError(
            f"{self.name}: cannot read as CSV at or after line {start}: {_first_line(exc)}"
        )


def _find_line(path: Path, start: int, text: str) -> int | None:
    """Return the 1-based number of the first line from ``start`` on that equals ``text``."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        for number, line in enumerate(fh, start=1):
            if number >= start and line.rstrip("\r\n") == text:
                return number
    return None


def _open_table(
    path_like: str | os.PathLike[str],
    aliases: Mapping[str, str],
    positional: Mapping[int, tuple[str, ...]],
    what: str,
) -> _Table:
    """Check a file is a readable CSV/Parquet table and work out its column layout.

    Parquet is recognised by its ``PAR1`` magic bytes, whatever the extension. A CSV has
    a header when its first line holds any known column name; otherwise its columns are
    taken by position (``positional`` maps a field count to column names).
    """
    name = os.fspath(path_like)
    name = name if isinstance(name, str) else os.fsdecode(name)
    path = Path(name)
    if not path.exists():
        raise DataValidationError(f"{name}: file not found; expected a CSV or Parquet {what}")
    if not path.is_file():
        raise DataValidationError(f"{name}: not a regular file; expected a CSV or Parquet {what}")
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise DataValidationError(f"{name}: cannot read: {_first_line(exc)}") from exc
    if size == 0:
        raise DataValidationError(f"{name}: empty file (0 bytes); expected a CSV or Parquet {what}")
    if head.startswith(b"PAR1"):
        return _open_parquet(path, name, aliases)
    if path.suffix.lower() in {".parquet", ".pq"}:
        raise DataValidationError(
            f"{name}: named like Parquet but lacks the PAR1 magic bytes (corrupt or not Parquet)"
        )
    if head.startswith(b"\x1f\x8b") or head.startswith(b"PK\x03\x04"):
        raise DataValidationError(
            f"{name}: compressed (gzip/zip) data; decompress it first, expected a CSV or Parquet {what}"
        )
    nul = head.find(b"\x00")
    if nul >= 0:
        raise DataValidationError(
            f"{name}: binary data (NUL byte at offset {nul}), not a CSV or Parquet {what}"
        )
    first, newline, _ = head.partition(b"\n")
    if not newline and len(head) == _SNIFF_BYTES:
        raise DataValidationError(f"{name}: line 1 is longer than {_SNIFF_BYTES:,} bytes; not a CSV {what}")
    try:
        text = first.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            f"{name}: line 1 is not UTF-8 text (byte {exc.start}); expected a CSV or Parquet {what}"
        ) from exc
    if not text.strip():
        if not head.strip():
            raise DataValidationError(f"{name}: empty file (only blank lines); expected a {what}")
        raise DataValidationError(f"{name}: line 1 is blank; expected a header or a data row")
    if text.lstrip()[0] in "{[":
        raise DataValidationError(
            f"{name}: looks like a JSON document, not a CSV or Parquet table; expected a {what}"
        )
    delimiter = max((",", "\t", ";", "|"), key=text.count)
    fields = next(csv.reader([text], delimiter=delimiter))
    keys = [f.strip().lower() for f in fields]
    if any(key in aliases for key in keys):
        columns = _map_header(name, fields, aliases, lambda i: f"c{i}")
        return _Table(path, name, "csv", tuple(fields), columns, delimiter, len(fields))
    layout = positional.get(len(fields))
    if layout is None:
        options = " or ".join(f"{n} ({','.join(cols)})" for n, cols in sorted(positional.items()))
        raise DataValidationError(
            f"{name}: not a {what} table: line 1 has {len(fields)} field(s) "
            f"{_show(text)} and no known header; expected a header naming the columns, "
            f"or {options} fields per line"
        )
    columns = {column: f"c{i}" for i, column in enumerate(layout)}
    return _Table(path, name, "csv", None, columns, delimiter, len(fields))


def _map_header(
    name: str, fields: Sequence[str], aliases: Mapping[str, str], physical: Callable[[int], str]
) -> dict[str, str]:
    """Map header names onto canonical columns, refusing two names for one column."""
    columns: dict[str, str] = {}
    seen: dict[str, str] = {}
    for i, raw in enumerate(fields):
        column = aliases.get(raw.strip().lower())
        if column is None:
            continue
        if column in columns:
            raise DataValidationError(
                f"{name}: header names {column} twice ({seen[column]!r} and {raw!r}); "
                "expected one column for each"
            )
        columns[column] = physical(i)
        seen[column] = raw
    return columns


def _open_parquet(path: Path, name: str, aliases: Mapping[str, str]) -> _Table:
    """Open a Parquet file's schema and map its column names."""
    try:
        schema = pq.ParquetFile(path).schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise DataValidationError(
            f"{name}: starts like Parquet (PAR1) but cannot be read as Parquet: {_first_line(exc)}"
        ) from exc
    names = list(schema.names)
    columns = _map_header(name, names, aliases, lambda i: names[i])
    return _Table(path, name, "parquet", tuple(names), columns)


# --------------------------------------------------------------------------------------------
# Accumulating batches, joining categories, building the log
# --------------------------------------------------------------------------------------------


class _Accumulator:
    """Converts batches to compact columns and keeps them until the whole file is read."""

    def __init__(
        self, columns: Sequence[str], spec: SourceSpec, describe: Callable[[int], str], name: str
    ) -> None:
        self.columns = tuple(columns)
        self.spec = spec
        self.describe = describe
        self.name = name
        self.chunks: dict[str, list[np.ndarray | pa.Array]] = {c: [] for c in self.columns}
        self.rows = 0
        self.date_only = 0

    def add(self, batch: _Batch) -> None:
        """Convert and store one batch (every column, or raise on its first bad value)."""
        where = _Where(self.name, self.describe, batch.offset, batch.index)
        for column in self.columns:
            arr = batch.columns[column]
            if column == "behavior":
                self.chunks[column].append(_convert_behavior(arr, where, self.spec))
            elif column == "timestamp":
                secs, n_dates = _convert_timestamp(arr, where, self.spec.timestamp_unit)
                self.chunks[column].append(secs)
                self.date_only += n_dates
            elif column == "duration":
                self.chunks[column].append(_convert_duration(arr, where))
            else:
                self.chunks[column].append(_convert_id(arr, where, column))
        self.rows += batch.n_rows

    def finish(self) -> dict[str, np.ndarray | pa.ChunkedArray]:
        """Concatenate each column's chunks (see ``_merge_ids`` for id columns)."""
        out = {}
        for column in self.columns:  # pop each column's chunks as it is merged: less peak memory
            out[column] = _merge_ids(self.chunks.pop(column))
        return out


def _merge_ids(chunks: Sequence[np.ndarray | pa.Array]) -> np.ndarray | pa.ChunkedArray:
    """Concatenate converted chunks; if any chunk of ids was text, all become text."""
    if any(isinstance(c, pa.Array) for c in chunks):
        return pa.chunked_array(
            [c if isinstance(c, pa.Array) else pa.array(c).cast(pa.string()) for c in chunks],
            type=pa.string(),
        )
    if chunks:
        return np.concatenate(chunks)
    return np.empty(0, dtype=np.int64)


def _as_text(values: np.ndarray | pa.ChunkedArray) -> pa.ChunkedArray:
    """Return ids as a text column (for joins and factorizing mixed int/text ids)."""
    if isinstance(values, pa.ChunkedArray):
        return values
    return pa.chunked_array([pa.array(values).cast(pa.string())])


def _factorize(values: pa.ChunkedArray) -> tuple[np.ndarray, pd.Index]:
    """Code text ids by their rank among the sorted unique values."""
    uniques = pc.unique(values)
    uniques = uniques.take(pc.sort_indices(uniques))
    codes = pc.index_in(values, value_set=uniques)
    return codes.to_numpy().astype(np.int64), pd.Index(uniques.to_pylist(), dtype=object)


def _keep_rows(
    columns: dict[str, np.ndarray | pa.ChunkedArray], keep: np.ndarray
) -> dict[str, np.ndarray | pa.ChunkedArray]:
    """Filter every column with one boolean mask."""
    mask = pa.array(keep)
    return {c: (v.filter(mask) if isinstance(v, pa.ChunkedArray) else v[keep]) for c, v in columns.items()}


_CATEGORY_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        **{a: c for a, c in _ALIAS_TO_COLUMN.items() if c in ("item_id", "category_id")},
        "timestamp": "timestamp",
        "property": "property",
        "value": "value",
    }
)


def _load_item_categories(
    paths: Sequence[str | os.PathLike[str]], block_size: int
) -> tuple[np.ndarray | pa.ChunkedArray, np.ndarray | pa.ChunkedArray]:
    """Read item -> category maps: (item_id, category_id) files or RetailRocket item_properties.

    For item_properties only rows with ``property == "categoryid"`` count, and an item's
    latest value wins (by timestamp, then by file order), as the category can change.
    """
    items: list[np.ndarray | pa.Array] = []
    cats: list[np.ndarray | pa.Array] = []
    stamps: list[np.ndarray] = []
    for path_like in paths:
        table = _open_table(
            path_like, _CATEGORY_ALIASES, {2: ("item_id", "category_id")}, "item-category map"
        )
        if {"item_id", "category_id"} <= table.columns.keys():
            wanted: list[str] = ["item_id", "category_id"]
        elif {"item_id", "property", "value"} <= table.columns.keys():
            wanted = ["item_id", "property", "value"]
            if "timestamp" in table.columns:
                wanted.append("timestamp")
        else:
            raise DataValidationError(
                f"{table.name}: not an item-category map ({table.header_text()}); expected "
                "columns item_id,category_id, or RetailRocket's timestamp,itemid,property,value"
            )
        for batch in table.batches(wanted, block_size):
            where = _Where(table.name, table.describe, batch.offset, batch.index)
            cols = batch.columns
            if "property" in cols:
                is_cat = pc.equal(pc.utf8_trim_whitespace(_plain(cols["property"])), "categoryid")
                mask = pc.fill_null(is_cat, False).to_numpy(zero_copy_only=False)
                if not mask.any():
                    continue
                rows = np.flatnonzero(mask)
                index = rows if batch.index is None else batch.index[rows]
                cols = {c: _plain(a).filter(pa.array(mask)) for c, a in cols.items()}
                where = _Where(table.name, table.describe, batch.offset, index)
                cols["category_id"] = cols.pop("value")
            items.append(_convert_id(cols["item_id"], where, "item_id"))
            cats.append(_convert_id(cols["category_id"], where, "category_id"))
            if "timestamp" in cols:
                stamps.append(_convert_timestamp(cols["timestamp"], where, "ms")[0])
            else:
                stamps.append(np.zeros(len(cols["item_id"]), dtype=np.int64))
    item, cat = _merge_ids(items), _merge_ids(cats)
    n = len(item)
    # Keep each item's last row in (timestamp, file) order: the latest category wins.
    order = np.argsort(np.concatenate(stamps), kind="stable") if stamps else np.arange(0)
    key = item.to_numpy() if isinstance(item, pa.ChunkedArray) else item
    is_last = ~pd.Series(key[order]).duplicated(keep="last").to_numpy()
    mask = np.zeros(n, dtype=bool)
    mask[order[is_last]] = True
    kept = _keep_rows({"item_id": item, "category_id": cat}, mask)
    return kept["item_id"], kept["category_id"]


def _join_categories(
    events_items: np.ndarray | pa.ChunkedArray,
    map_items: np.ndarray | pa.ChunkedArray,
    map_cats: np.ndarray | pa.ChunkedArray,
) -> tuple[np.ndarray | pa.ChunkedArray, np.ndarray]:
    """Look each event's item up in the map; return categories and a found-mask."""
    if isinstance(events_items, np.ndarray) and isinstance(map_items, np.ndarray):
        left, right = events_items, map_items
    else:
        left = _as_text(events_items).to_numpy()
        right = _as_text(map_items).to_numpy()
    position = pd.Index(right).get_indexer(left)
    found = position >= 0
    take = np.where(found, position, 0)
    if isinstance(map_cats, pa.ChunkedArray):
        cats: np.ndarray | pa.ChunkedArray = (
            map_cats.take(pa.array(take)) if len(map_cats) else pa.chunked_array([], pa.string())
        )
    else:
        cats = map_cats[take] if len(map_cats) else np.zeros(len(left), dtype=np.int64)
    return cats, found


def _detect_source(table: _Table, first: _Batch) -> SourceSpec:
    """Pick the source from header names, else from the first batch's behaviour values.

    Digit codes without a header are read as canonical codes (Tmall's own files have a
    header that names them); pass ``source`` to override.
    """
    if table.header is not None:
        names = {h.strip().lower() for h in table.header}
        hits = [s for s in SOURCES.values() if s.header_markers & names]
        if len(hits) == 1:
            return hits[0]
    arr = first.columns["behavior"]
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary
    if pa.types.is_integer(arr.type):
        arr = arr.cast(pa.string())
    values = {str(v).strip().lower() for v in pc.unique(arr.cast(pa.string())).to_pylist() if v is not None}
    if "pv" in values:
        return SOURCES["taobao"]
    if values & {"addtocart", "transaction"}:
        return SOURCES["retailrocket"]
    if values <= SOURCES["canonical"].vocabulary().keys():
        return SOURCES["canonical"]
    covering = [s for s in SOURCES.values() if values <= s.vocabulary().keys()]
    if len(covering) == 1:
        return covering[0]
    # Nothing fits: report the first value no source knows, with its line.
    known = set().union(*(s.vocabulary() for s in SOURCES.values()))
    raw = first.columns["behavior"]
    raw_list = _plain(raw).cast(pa.string()).to_pylist()
    k = next((i for i, v in enumerate(raw_list) if v is None or v.strip().lower() not in known), 0)
    where = _Where(table.name, table.describe, first.offset, first.index)
    vocabularies = "; ".join(f"{s.name}: {s.accepted()}" for s in SOURCES.values())
    raise _bad_value(
        where.name,
        "behavior",
        where(k),
        "cannot tell the source from value",
        raw_list[k],
        f"a value of one source ({vocabularies}), or pass source=",
    )


def _build(
    raw: dict[str, np.ndarray | pa.ChunkedArray],
    *,
    name: str,
    source: str,
    rows_read: int,
    dropped: dict[str, int],
    notes: list[str],
    date_only: bool,
) -> BehaviourLog:
    """Factorize text ids, drop exact duplicates, sort by (user, time) and write the report."""
    id_maps: dict[str, pd.Index] = {}
    data: dict[str, np.ndarray] = {}
    for column in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
        if column not in raw:
            continue
        values = raw[column]
        if isinstance(values, pa.ChunkedArray):
            values, id_maps[column] = _factorize(values)
        data[column] = values
    n_duplicates, order = _dedup_and_sort(data)
    if n_duplicates:
        dropped["exact_duplicate"] = n_duplicates
        if date_only:
            notes.append(
                f"{name}: {n_duplicates:,} exact duplicate rows were dropped; with date-only "
                "times some may be genuine repeats on the same day"
            )
    columns = {}
    for column in list(data):  # take one column at a time and free its source: less peak memory
        columns[column] = data.pop(column)[order]
    events = pd.DataFrame(columns, copy=False)
    kept = len(events)
    if kept == 0:
        detail = ", ".join(f"{k} {v:,}" for k, v in dropped.items()) or "nothing"
        raise DataValidationError(f"{name}: no rows left after cleaning (dropped: {detail})")
    report = LoadReport(
        path=name,
        source=source,
        rows_read=rows_read,
        rows_kept=kept,
        dropped=dict(dropped),
        warnings=tuple(notes),
    )
    return BehaviourLog(events=events, report=report, id_maps=id_maps)


def _dedup_and_sort(data: dict[str, np.ndarray]) -> tuple[int, np.ndarray]:
    """Return the number of exact duplicate rows and the row order that sorts and drops them.

    The order sorts stably by (user_id, timestamp), so ties keep file order. Identical
    rows share user and time, so they sit in the same run of ties: only rows in such runs
    are compared in full, which costs far less memory than hashing every row.
    """
    user, stamp = data["user_id"], data["timestamp"]
    order = np.lexsort((stamp, user))
    tie = np.empty(max(len(order) - 1, 0), dtype=bool)
    sorted_user = user[order]
    np.equal(sorted_user[1:], sorted_user[:-1], out=tie)
    del sorted_user
    sorted_stamp = stamp[order]
    tie &= sorted_stamp[1:] == sorted_stamp[:-1]
    del sorted_stamp
    in_run = np.zeros(len(order), dtype=bool)
    in_run[1:] |= tie
    in_run[:-1] |= tie
    positions = np.flatnonzero(in_run)
    if not positions.size:
        return 0, order
    rows = order[positions]
    candidates = pd.DataFrame({c: v[rows] for c, v in data.items()}, copy=False)
    duplicate = candidates.duplicated(keep="first").to_numpy()
    n_duplicates = int(duplicate.sum())
    if n_duplicates:
        drop = np.zeros(len(order), dtype=bool)
        drop[positions[duplicate]] = True
        order = order[~drop]
    return n_duplicates, order


def _date_note(name: str, n_dates: int, total: int, spec: SourceSpec) -> str:
    """Word the date-only warning (Tmall's mmdd has its own wording)."""
    if spec.timestamp_unit == "mmdd":
        return (
            f"{name}: timestamps are month-day dates without a year (read in {TMALL_YEAR}) "
            "and without a time of day; within-day order is lost (file order is kept)"
        )
    return (
        f"{name}: {n_dates:,} of {total:,} timestamps are dates without a time of day; "
        "within-day order is lost (file order is kept)"
    )


def _emit(log: BehaviourLog) -> BehaviourLog:
    """Raise the report's warnings as LogWarning, pointing at the caller of the public function."""
    for note in log.report.warnings:
        warnings.warn(note, LogWarning, stacklevel=3)
    return log


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def load_log(
    path: str | os.PathLike[str],
    source: str | None = None,
    *,
    item_categories: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    block_size: int = 1 << 24,
) -> BehaviourLog:
    """Read a behaviour log (CSV or Parquet) into the canonical schema.

    The file is streamed in blocks and each block is converted to compact columns at
    once, so peak memory stays a small multiple of the kept columns even for the full
    100M-row Taobao file.

    Args:
        path: CSV (with or without a header row) or Parquet file (found by its magic bytes).
        source: A key of :data:`SOURCES`, or None to detect it from the header names or
            from the behaviour values in the first block.
        item_categories: For logs without a category column (RetailRocket): one file, or
            several (RetailRocket ships item_properties in two parts), holding either
            ``item_id,category_id`` or RetailRocket's ``timestamp,itemid,property,value``.
            When given it replaces any category column of the log. Events whose item has
            no category are dropped and counted as ``no_category``.
        block_size: Bytes per CSV block; must exceed the longest line.

    Returns:
        The cleaned log and a report of what was read, kept and dropped.

    Raises:
        DataValidationError: The file is missing, empty, not a table, lacks a column, or
            holds a value outside the schema; the one-line message names the file,
            column, first offending line and value, and what was expected.
        ConfigError: ``source`` or ``block_size`` is invalid.
    """
    spec = _resolve_source(source)
    if not isinstance(block_size, int) or block_size < 1:
        raise ConfigError(f"block_size must be a positive number of bytes, got {block_size!r}")
    table = _open_table(path, _ALIAS_TO_COLUMN, _POSITIONAL_EVENTS, "behaviour log")
    name = table.name
    category_paths: list[str | os.PathLike[str]] = []
    if item_categories is not None:
        if isinstance(item_categories, str | os.PathLike):
            category_paths = [item_categories]
        else:
            category_paths = list(item_categories)
    needed = [c for c in REQUIRED_COLUMNS if not (c == "category_id" and category_paths)]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        names = "; ".join(f"{c} (or {', '.join(COLUMN_ALIASES[c][1:])})" for c in missing)
        hint = ""
        if "category_id" in missing:
            hint = (
                "; a log without categories (e.g. RetailRocket events.csv) needs "
                "item_categories=<CSV of item_id,category_id, or RetailRocket item_properties>"
            )
        raise DataValidationError(f"{name}: missing required column {names} ({table.header_text()}){hint}")
    wanted = [*needed, *(c for c in OPTIONAL_COLUMNS if c in table.columns)]
    notes: list[str] = []
    if category_paths and "category_id" in table.columns:
        notes.append(f"{name}: its category column is ignored; categories come from item_categories")

    batches = table.batches(wanted, block_size)
    first = next(batches, None)
    if first is None:
        what = "has a header but no data rows" if table.header is not None else "has no data rows"
        raise DataValidationError(f"{name}: empty log: {what}; expected at least one event")
    if spec is None:
        spec = _detect_source(table, first)
    acc = _Accumulator(wanted, spec, table.describe, name)
    acc.add(first)
    for batch in batches:
        acc.add(batch)

    raw = acc.finish()
    dropped: dict[str, int] = {}
    if table.blank_lines:
        dropped["blank_line"] = table.blank_lines
    if category_paths:
        map_items, map_cats = _load_item_categories(category_paths, block_size)
        raw["category_id"], found = _join_categories(raw["item_id"], map_items, map_cats)
        n_missing = int((~found).sum())
        if n_missing:
            dropped["no_category"] = n_missing
            raw = _keep_rows(raw, found)
    if acc.date_only:
        notes.append(_date_note(name, acc.date_only, acc.rows, spec))
    log = _build(
        raw,
        name=name,
        source=spec.name,
        rows_read=acc.rows + table.blank_lines,
        dropped=dropped,
        notes=notes,
        date_only=acc.date_only > 0,
    )
    return _emit(log)


def from_frame(df: pd.DataFrame, *, name: str = "<frame>") -> BehaviourLog:
    """Validate and clean an in-memory frame that already uses the canonical schema.

    This is the door for synthetic logs and tests: the same checks, sorting, duplicate
    removal and report as :func:`load_log`, without a file. Error messages give the
    0-based row position.

    Args:
        df: Columns ``user_id, item_id, category_id, behavior, timestamp`` and optionally
            ``duration``; ``behavior`` as names from :data:`BEHAVIORS` or codes 0-4,
            ``timestamp`` as epoch seconds (datetime columns are accepted too). Other
            columns are ignored.
        name: What messages and the report call the frame.

    Returns:
        The cleaned log.

    Raises:
        DataValidationError: A column is missing or holds a value outside the schema.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataValidationError(
            f"{name}: missing required column {', '.join(missing)} "
            f"(columns: {', '.join(map(str, df.columns))}); expected {', '.join(REQUIRED_COLUMNS)}"
        )
    if len(df) == 0:
        raise DataValidationError(f"{name}: empty log: no rows; expected at least one event")
    wanted = [*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in df.columns)]
    columns: dict[str, pa.Array] = {}
    for column in wanted:
        try:
            columns[column] = pa.array(df[column], from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise DataValidationError(
                f"{name}: column {column} cannot be read (mixed or unsupported types: "
                f"{_first_line(exc)}); expected one type per column"
            ) from exc
    spec = SOURCES["canonical"]
    acc = _Accumulator(wanted, spec, lambda row: f"row {row}", name)
    acc.add(_Batch(columns, 0))
    notes = [_date_note(name, acc.date_only, acc.rows, spec)] if acc.date_only else []
    log = _build(
        acc.finish(),
        name=name,
        source=spec.name,
        rows_read=acc.rows,
        dropped={},
        notes=notes,
        date_only=acc.date_only > 0,
    )
    return _emit(log)
