"""Per-column conversion of raw values to the canonical dtypes, one batch at a time.

Converting each batch as it is read keeps memory near the compact result; every bad value
raises with its line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from decay_model.logs.messages import bad_value, first_true
from decay_model.logs.sources import TMALL_YEAR, SourceSpec

_MAX_SECONDS = 10**11  # about the year 5138: larger values are milliseconds or finer
_EPOCH = pd.Timestamp(0, tz="UTC")
_ONE_SECOND = pd.Timedelta(seconds=1)
_DATE_ONLY = r"^\d{4}-\d{2}-\d{2}$"
_ISO_START = r"^\d{4}-\d{2}-\d{2}"
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_UNIT_FACTORS = MappingProxyType({"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000})


@dataclass(frozen=True)
class Where:
    """Turns a position inside one batch into "line N" / "row N" for messages."""

    name: str
    describe: Callable[[int], str]
    offset: int
    index: np.ndarray | None = None

    def __call__(self, k: int) -> str:
        """Describe the batch-local row ``k``."""
        row = self.offset + (int(self.index[k]) if self.index is not None else k)
        return self.describe(row)

    def subset(self, positions: np.ndarray) -> Where:
        """Return the locator for the batch rows taken at ``positions``."""
        index = positions if self.index is None else self.index[positions]
        return Where(self.name, self.describe, self.offset, index)


def plain(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Return a plain (not chunked, not dictionary-encoded) array."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _check_no_nulls(arr: pa.Array, where: Where, column: str, expected: str) -> None:
    """Raise on the first missing value: ids, behaviours and times are never optional."""
    if arr.null_count:
        k = first_true(pc.is_null(arr))
        raise bad_value(where.name, column, where(k), "missing value", None, expected)


def _integral_floats(values: np.ndarray) -> np.ndarray:
    """Return a mask of the float values that are not exact int64 integers."""
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(values) | (values != np.floor(values)) | (np.abs(values) >= 2.0**63)


def convert_id(arr: pa.Array, where: Where, column: str) -> np.ndarray | pa.Array:
    """Convert one batch of ids to int64, or to trimmed text when they are not integers.

    Text ids are factorized once all batches are read (see ``_factorize``), so a later
    batch with non-integer ids still yields one consistent code space.
    """
    expected = "an id (an integer, or non-empty text)"
    arr = plain(arr)
    _check_no_nulls(arr, where, column, expected)
    t = arr.type
    if pa.types.is_integer(t):
        if pa.types.is_uint64(t):
            big = pc.greater(arr, np.iinfo(np.int64).max)
            k = first_true(big)
            if k is not None:
                raise bad_value(
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
        k = first_true(_integral_floats(values))
        if k is not None:
            raise bad_value(where.name, column, where(k), "non-integer id", values[k], expected)
        return values.astype(np.int64)
    if _is_text(t):
        try:  # the common case, tried first because trimming a whole batch costs time
            return arr.cast(pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        text = pc.utf8_trim_whitespace(arr)
        k = first_true(pc.equal(text, ""))
        if k is not None:
            raise bad_value(where.name, column, where(k), "blank id", arr[k].as_py(), expected)
        try:
            return text.cast(pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        try:  # "17.0", as written by tools that turned an int column into floats
            values = text.cast(pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return text
        if first_true(_integral_floats(values)) is None:
            return values.astype(np.int64)
        return text
    raise bad_value(where.name, column, where(0), f"unsupported type {t}:", arr[0].as_py(), expected)


def convert_behavior(arr: pa.Array, where: Where, spec: SourceSpec) -> np.ndarray:
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
            raise bad_value(
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
        k = first_true(pc.is_null(indices))
        raise bad_value(where.name, column, where(k), "missing value", None, expected)
    codes = table[indices.to_numpy(zero_copy_only=False)]
    k = first_true(codes < 0)
    if k is not None:
        value = arr[k].as_py()
        problem = "blank value" if str(value).strip() == "" else "unknown value"
        raise bad_value(where.name, column, where(k), problem, value, expected)
    return codes.astype(np.int8)


_TIME_EXPECTED = "epoch seconds, an ISO 8601 datetime (e.g. 2017-11-25T10:00:00+08:00) or a date (2017-11-25)"


def _expected_time(unit: str) -> str:
    """Describe the accepted time values for a source's integer unit."""
    if unit == "ms":
        return _TIME_EXPECTED.replace("epoch seconds", "epoch milliseconds")
    if unit == "mmdd":
        return f"a month-day number mmdd (e.g. 1111 for 11 November, read in {TMALL_YEAR})"
    return _TIME_EXPECTED


def _check_seconds(secs: np.ndarray, raw: pa.Array, where: Where, unit: str, *, numeric: bool) -> np.ndarray:
    """Reject times before 1970 and numbers too large to be epoch seconds."""
    k = first_true(secs < 0)
    if k is not None:
        raise bad_value(
            where.name,
            "timestamp",
            where(k),
            "negative timestamp (before 1970)",
            raw[k].as_py(),
            f"{_expected_time(unit)}, not before 1970-01-01 UTC",
        )
    if numeric:
        k = first_true(secs > _MAX_SECONDS)
        if k is not None:
            hint = "epoch seconds" if unit == "s" else "epoch milliseconds"
            raise bad_value(
                where.name,
                "timestamp",
                where(k),
                "timestamp too large (past the year 5000)",
                raw[k].as_py(),
                f"{hint}; milliseconds need source='retailrocket'" if unit == "s" else hint,
            )
    return secs


def _from_numbers(values: np.ndarray, raw: pa.Array, where: Where, unit: str) -> np.ndarray:
    """Turn epoch numbers (seconds or milliseconds; floats floored) into int64 seconds."""
    scale = _UNIT_FACTORS["ms" if unit == "ms" else "s"]
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        k = first_true(bad)
        if k is not None:
            raise bad_value(
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


def _from_mmdd(values: np.ndarray, raw: pa.Array, where: Where) -> np.ndarray:
    """Turn Tmall's month-day numbers into midnight UTC of that day in :data:`TMALL_YEAR`."""
    values = values.astype(np.int64)
    month, day = values // 100, values % 100
    plausible = (values >= 0) & (month >= 1) & (month <= 12) & (day >= 1)
    month_start = np.datetime64(f"{TMALL_YEAR:04d}-01", "M") + (np.where(plausible, month, 1) - 1).astype(
        "timedelta64[M]"
    )
    date = month_start.astype("datetime64[D]") + (np.where(plausible, day, 1) - 1).astype("timedelta64[D]")
    valid = plausible & (date.astype("datetime64[M]") == month_start)
    k = first_true(~valid)
    if k is not None:
        raise bad_value(
            where.name,
            "timestamp",
            where(k),
            "not a month-day date",
            raw[k].as_py(),
            _expected_time("mmdd"),
        )
    return date.astype("datetime64[s]").astype(np.int64)


def _from_iso(text: pa.Array, where: Where, unit: str) -> tuple[np.ndarray, int]:
    """Parse ISO 8601 datetimes or dates (aware -> UTC, naive taken as UTC) to seconds."""
    parsed = pd.to_datetime(
        pd.Series(text.to_numpy(zero_copy_only=False), dtype=object),
        format="ISO8601",
        utc=True,
        errors="coerce",
    )
    k = first_true(parsed.isna().to_numpy())
    if k is not None:
        raise bad_value(
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


def convert_timestamp(arr: pa.Array, where: Where, unit: str) -> tuple[np.ndarray, int]:
    """Convert one batch of times to int64 epoch seconds; also count date-only values."""
    arr = plain(arr)
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
            k = first_true(_integral_floats(values.astype(np.float64)))
            if k is not None:
                raise bad_value(
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
        raise bad_value(
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


def _from_text(text: pa.Array, raw: pa.Array, where: Where, unit: str) -> tuple[np.ndarray, int]:
    """Convert trimmed text times, value by value: numbers by the unit, the rest as ISO 8601."""
    is_number = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False)
    is_dated = pc.fill_null(pc.match_substring_regex(text, _ISO_START), False)
    k = first_true(pc.invert(pc.or_(is_number, is_dated)))
    if k is not None:  # also refuses words such as "now" and "today", which pandas would read
        problem = "blank value" if text[k].as_py() == "" else "cannot read as a time"
        raise bad_value(where.name, "timestamp", where(k), problem, raw[k].as_py(), _expected_time(unit))
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
            k = first_true(_integral_floats(values.astype(np.float64)))
            if k is not None:
                raise bad_value(
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


def convert_duration(arr: pa.Array, where: Where) -> np.ndarray:
    """Convert dwell times to float64 seconds; blanks become NaN, negatives are errors."""
    expected = "a non-negative number (dwell time) or a blank"
    arr = plain(arr)
    if _is_text(arr.type):
        text = pc.utf8_trim_whitespace(arr)
        number = pc.match_substring_regex(text, _NUMBER)
        k = first_true(pc.invert(pc.or_(number, pc.equal(text, ""))))
        if k is not None:
            raise bad_value(where.name, "duration", where(k), "not a number", arr[k].as_py(), expected)
        values = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text).cast(pa.float64())
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_null(arr.type):
        values = arr.cast(pa.float64())
    else:
        raise bad_value(
            where.name,
            "duration",
            where(0),
            f"unsupported type {arr.type}:",
            arr[0].as_py(),
            expected,
        )
    out = values.to_numpy(zero_copy_only=False).astype(np.float64)
    with np.errstate(invalid="ignore"):
        k = first_true((out < 0) | np.isinf(out))
    if k is not None:
        raise bad_value(
            where.name,
            "duration",
            where(k),
            "negative or infinite duration",
            arr[k].as_py(),
            expected,
        )
    return out
