"""The entry points: a log file (:func:`load_log`) or an in-memory frame (:func:`from_frame`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from decay_model.errors import ConfigError, DataValidationError
from decay_model.logs.build import Accumulator, build_log, date_note, emit, keep_rows
from decay_model.logs.categories import join_categories, load_item_categories
from decay_model.logs.convert import Where, plain
from decay_model.logs.dataset import load_partitioned
from decay_model.logs.messages import bad_value, first_line
from decay_model.logs.schema import (
    ALIAS_TO_COLUMN,
    COLUMN_ALIASES,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    BehaviourLog,
)
from decay_model.logs.sources import SOURCES, SourceSpec, resolve_source
from decay_model.logs.tables import Batch, Table, open_table

_POSITIONAL_EVENTS: Mapping[int, tuple[str, ...]] = MappingProxyType(
    {5: REQUIRED_COLUMNS, 6: (*REQUIRED_COLUMNS, "duration")}
)


def _detect_source(table: Table, first: Batch) -> SourceSpec:
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
    raw_list = plain(raw).cast(pa.string()).to_pylist()
    k = next((i for i, v in enumerate(raw_list) if v is None or v.strip().lower() not in known), 0)
    where = Where(table.name, table.describe, first.offset, first.index)
    vocabularies = "; ".join(f"{s.name}: {s.accepted()}" for s in SOURCES.values())
    raise bad_value(
        where.name,
        "behavior",
        where(k),
        "cannot tell the source from value",
        raw_list[k],
        f"a value of one source ({vocabularies}), or pass source=",
    )


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
        path: CSV (with or without a header row) or Parquet file (found by its magic bytes),
            or a folder holding a Parquet dataset partitioned by user (see
            :mod:`decay_model.logs.dataset`), read whole into memory.
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
    if Path(path).is_dir():
        if item_categories is not None or source not in (None, "canonical"):
            raise ConfigError(
                f"{path}: a partitioned Parquet dataset holds canonical columns; "
                "source and item_categories apply to single files only"
            )
        return load_partitioned(path)
    spec = resolve_source(source)
    if not isinstance(block_size, int) or block_size < 1:
        raise ConfigError(f"block_size must be a positive number of bytes, got {block_size!r}")
    table = open_table(path, ALIAS_TO_COLUMN, _POSITIONAL_EVENTS, "behaviour log")
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
    acc = Accumulator(wanted, spec, table.describe, name)
    acc.add(first)
    for batch in batches:
        acc.add(batch)

    raw = acc.finish()
    dropped: dict[str, int] = {}
    if table.blank_lines:
        dropped["blank_line"] = table.blank_lines
    if category_paths:
        map_items, map_cats = load_item_categories(category_paths, block_size)
        raw["category_id"], found = join_categories(raw["item_id"], map_items, map_cats)
        n_missing = int((~found).sum())
        if n_missing:
            dropped["no_category"] = n_missing
            raw = keep_rows(raw, found)
    if acc.date_only:
        notes.append(date_note(name, acc.date_only, acc.rows, spec))
    log = build_log(
        raw,
        name=name,
        source=spec.name,
        rows_read=acc.rows + table.blank_lines,
        dropped=dropped,
        notes=notes,
        date_only=acc.date_only > 0,
    )
    return emit(log)


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
                f"{first_line(exc)}); expected one type per column"
            ) from exc
    spec = SOURCES["canonical"]
    acc = Accumulator(wanted, spec, lambda row: f"row {row}", name)
    acc.add(Batch(columns, 0))
    notes = [date_note(name, acc.date_only, acc.rows, spec)] if acc.date_only else []
    log = build_log(
        acc.finish(),
        name=name,
        source=spec.name,
        rows_read=acc.rows,
        dropped={},
        notes=notes,
        date_only=acc.date_only > 0,
    )
    return emit(log)
