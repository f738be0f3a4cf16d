"""Tables on disk: sniffing a CSV or Parquet file, finding its header, reading it in batches."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from decay_model.errors import DataValidationError
from decay_model.logs.messages import first_line, show

_SNIFF_BYTES = 1 << 20


@dataclass
class Batch:
    """Raw columns of one batch (canonical name -> arrow array) and where its rows came from."""

    columns: dict[str, pa.Array]
    offset: int
    index: np.ndarray | None = None  # batch row -> row within the raw block, if rows were dropped

    @property
    def n_rows(self) -> int:
        """Rows in this batch."""
        return len(next(iter(self.columns.values())))


@dataclass
class Table:
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
        """Lines before the first data row: 1 for a CSV with a header, else 0."""
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

    def batches(self, wanted: Sequence[str], block_size: int) -> Iterator[Batch]:
        """Stream the ``wanted`` canonical columns, batch by batch."""
        if self.kind == "parquet":
            yield from self._parquet_batches(wanted)
        else:
            yield from self._csv_batches(wanted, block_size)

    def _parquet_batches(self, wanted: Sequence[str]) -> Iterator[Batch]:
        physical = [self.columns[c] for c in wanted]
        try:
            parquet = pq.ParquetFile(self.path)
            batches = parquet.iter_batches(columns=physical)
        except (pa.ArrowException, OSError) as exc:
            raise DataValidationError(f"{self.name}: cannot read as Parquet: {first_line(exc)}") from exc
        for offset, batch in record_batches(batches, self.name):
            cols = {c: batch.column(p) for c, p in zip(wanted, physical, strict=True)}
            yield Batch(cols, offset)

    def _csv_batches(self, wanted: Sequence[str], block_size: int) -> Iterator[Batch]:
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
                yield Batch(cols, offset, index)
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
                f"(as on line 1, delimiter {self.delimiter!r}); text {show(text)}"
            )
        return DataValidationError(
            f"{self.name}: cannot read as CSV at or after line {start}: {first_line(exc)}"
        )


def _find_line(path: Path, start: int, text: str) -> int | None:
    """Return the 1-based number of the first line from ``start`` on that equals ``text``."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        for number, line in enumerate(fh, start=1):
            if number >= start and line.rstrip("\r\n") == text:
                return number
    return None


def open_table(
    path_like: str | os.PathLike[str],
    aliases: Mapping[str, str],
    positional: Mapping[int, tuple[str, ...]],
    what: str,
) -> Table:
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
        raise DataValidationError(f"{name}: cannot read: {first_line(exc)}") from exc
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
        return Table(path, name, "csv", tuple(fields), columns, delimiter, len(fields))
    layout = positional.get(len(fields))
    if layout is None:
        options = " or ".join(f"{n} ({','.join(cols)})" for n, cols in sorted(positional.items()))
        raise DataValidationError(
            f"{name}: not a {what} table: line 1 has {len(fields)} field(s) "
            f"{show(text)} and no known header; expected a header naming the columns, "
            f"or {options} fields per line"
        )
    columns = {column: f"c{i}" for i, column in enumerate(layout)}
    return Table(path, name, "csv", None, columns, delimiter, len(fields))


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


def _open_parquet(path: Path, name: str, aliases: Mapping[str, str]) -> Table:
    """Open a Parquet file's schema and map its column names."""
    try:
        schema = pq.ParquetFile(path).schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise DataValidationError(
            f"{name}: starts like Parquet (PAR1) but cannot be read as Parquet: {first_line(exc)}"
        ) from exc
    names = list(schema.names)
    columns = _map_header(name, names, aliases, lambda i: names[i])
    return Table(path, name, "parquet", tuple(names), columns)


def record_batches(batches: Iterator[pa.RecordBatch], name: str) -> Iterator[tuple[int, pa.RecordBatch]]:
    """The non-empty batches of a Parquet reader, each with its first row's offset.

    A read error names the file (``name``) and the row it stopped after.
    """
    offset = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise DataValidationError(
                f"{name}: cannot read as Parquet after row {offset}: {first_line(exc)}"
            ) from exc
        if batch.num_rows:
            yield offset, batch
            offset += batch.num_rows
