"""From converted batches to the cleaned log: merge, factorize text ids, drop duplicates, sort."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from decay_model.errors import DataValidationError
from decay_model.logs.convert import Where, convert_behavior, convert_duration, convert_id, convert_timestamp
from decay_model.logs.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, BehaviourLog, LoadReport, LogWarning
from decay_model.logs.sources import TMALL_YEAR, SourceSpec
from decay_model.logs.tables import Batch


class Accumulator:
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

    def add(self, batch: Batch) -> None:
        """Convert and store one batch (every column, or raise on its first bad value)."""
        where = Where(self.name, self.describe, batch.offset, batch.index)
        for column in self.columns:
            arr = batch.columns[column]
            if column == "behavior":
                self.chunks[column].append(convert_behavior(arr, where, self.spec))
            elif column == "timestamp":
                secs, n_dates = convert_timestamp(arr, where, self.spec.timestamp_unit)
                self.chunks[column].append(secs)
                self.date_only += n_dates
            elif column == "duration":
                self.chunks[column].append(convert_duration(arr, where))
            else:
                self.chunks[column].append(convert_id(arr, where, column))
        self.rows += batch.n_rows

    def finish(self) -> dict[str, np.ndarray | pa.ChunkedArray]:
        """Concatenate each column's chunks (see ``merge_ids`` for id columns)."""
        out = {}
        for column in self.columns:  # pop each column's chunks as it is merged: less peak memory
            out[column] = merge_ids(self.chunks.pop(column))
        return out


def merge_ids(chunks: Sequence[np.ndarray | pa.Array]) -> np.ndarray | pa.ChunkedArray:
    """Concatenate converted chunks; if any chunk of ids was text, all become text."""
    if any(isinstance(c, pa.Array) for c in chunks):
        return pa.chunked_array(
            [c if isinstance(c, pa.Array) else pa.array(c).cast(pa.string()) for c in chunks],
            type=pa.string(),
        )
    if chunks:
        return np.concatenate(chunks)
    return np.empty(0, dtype=np.int64)


def as_text(values: np.ndarray | pa.ChunkedArray) -> pa.ChunkedArray:
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


def keep_rows(
    columns: dict[str, np.ndarray | pa.ChunkedArray], keep: np.ndarray
) -> dict[str, np.ndarray | pa.ChunkedArray]:
    """Filter every column with one boolean mask."""
    mask = pa.array(keep)
    return {c: (v.filter(mask) if isinstance(v, pa.ChunkedArray) else v[keep]) for c, v in columns.items()}


def build_log(
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


def date_note(name: str, n_dates: int, total: int, spec: SourceSpec) -> str:
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


def emit(log: BehaviourLog) -> BehaviourLog:
    """Raise the report's warnings as LogWarning, pointing at the caller of the public function."""
    for note in log.report.warnings:
        warnings.warn(note, LogWarning, stacklevel=3)
    return log
