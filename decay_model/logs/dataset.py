"""Behaviour logs larger than memory: a Parquet dataset partitioned by a hash of ``user_id``.

Layout: ``DIR/bucket=K/part-0.parquet`` for K in 0..B-1 (hive partitioning), each file in the
canonical columns and dtypes of the :mod:`decay_model.logs` docstring, plus ``DIR/_dataset.json``
(the writer's metadata; pyarrow skips names starting with ``_``). Every event of a user lies in
one partition, so a reader can take one partition, sort it by (user, time) in memory, and be done
with those users: memory is bounded by the largest partition, not by the log. Any hive dataset
with a ``bucket`` partition whose users do not span partitions reads the same way.

Reading goes through ``pyarrow.dataset`` in record batches with a column projection, and each
batch through the same converters as :func:`~decay_model.logs.load_log`, so a bad value raises
a :class:`~decay_model.errors.DataValidationError` naming the file, column and row. Ids must be
integers: text ids would be coded per partition, not once for the log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from decay_model.atomic import atomic_write_json
from decay_model.errors import ConfigError, DataValidationError
from decay_model.logs.build import Accumulator, build_log, date_note, emit
from decay_model.logs.convert import Where, convert_timestamp
from decay_model.logs.messages import first_line
from decay_model.logs.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, BehaviourLog
from decay_model.logs.sources import SOURCES
from decay_model.logs.tables import Batch, record_batches

PARTITION = "bucket"
"""The hive partition key: ``DIR/bucket=K/``."""

METADATA = "_dataset.json"
"""The writer's metadata file at the dataset root (buckets, rows, what generated it)."""

SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("category_id", pa.int64()),
        ("behavior", pa.int8()),
        ("timestamp", pa.int64()),
    ]
)
"""What the writer stores: the canonical columns and dtypes."""

DEFAULT_BATCH_ROWS = 1 << 16
"""Rows per record batch read: a batch's raw and converted columns stay a few MiB."""

_DTYPES: dict[str, type[np.generic]] = {c: np.int64 for c in REQUIRED_COLUMNS} | {
    "behavior": np.int8,
    "duration": np.float64,
}

_BUCKET_DIR = re.compile(rf"^{PARTITION}=(\d+)$")


def bucket_of(user_id: np.ndarray, n_buckets: int) -> np.ndarray:
    """Each user's partition: the splitmix64 finaliser of its id, modulo ``n_buckets``.

    A mixing hash rather than ``id % n``, so partitions stay even whatever pattern the ids
    follow (consecutive codes, ids that are multiples of 10, ...).
    """
    x = np.asarray(user_id, dtype=np.int64).view(np.uint64)
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return (x % np.uint64(n_buckets)).astype(np.int64)


class PartitionedLogWriter:
    """Appends events to a new partitioned dataset, one ParquetWriter per bucket.

    Each :meth:`write` sends every row to its user's bucket, as one row group per bucket, so
    the caller can hand over the log chunk by chunk and never hold it whole. The dataset is
    built in a hidden sibling folder and renamed into place by :meth:`close`, so a reader sees
    no dataset or the whole one; an exception inside ``with`` removes the partial folder.
    """

    def __init__(self, path: str | os.PathLike[str], n_buckets: int, *, overwrite: bool = False) -> None:
        if not isinstance(n_buckets, int) or n_buckets < 1:
            raise ConfigError(f"n_buckets must be a positive integer, got {n_buckets!r}")
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            if not self.path.is_dir() or any(self.path.iterdir()):
                raise ConfigError(f"{self.path}: already exists; choose a new folder or pass overwrite")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.n_buckets = n_buckets
        self.rows = np.zeros(n_buckets, dtype=np.int64)
        self._tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"))
        self._writers: dict[int, pq.ParquetWriter] = {}

    def write(self, columns: Mapping[str, np.ndarray]) -> None:
        """Append events given as canonical columns (see :data:`SCHEMA`)."""
        missing = [c for c in SCHEMA.names if c not in columns]
        if missing:
            raise DataValidationError(f"{self.path}: events to write lack column(s) {', '.join(missing)}")
        try:
            table = pa.table({c: np.asarray(columns[c]) for c in SCHEMA.names}).cast(SCHEMA)
        except (pa.ArrowException, ValueError) as exc:
            raise DataValidationError(f"{self.path}: events to write: {first_line(exc)}") from exc
        buckets = bucket_of(table.column("user_id").to_numpy(), self.n_buckets)
        order = np.argsort(buckets, kind="stable")
        counts = np.bincount(buckets, minlength=self.n_buckets)
        stops = np.cumsum(counts)
        for bucket in np.flatnonzero(counts):
            rows = order[stops[bucket] - counts[bucket] : stops[bucket]]
            self._writer(int(bucket)).write_table(table.take(pa.array(rows)))
        self.rows += counts

    def _writer(self, bucket: int) -> pq.ParquetWriter:
        if bucket not in self._writers:
            folder = self._tmp / f"{PARTITION}={bucket}"
            folder.mkdir()
            self._writers[bucket] = pq.ParquetWriter(folder / "part-0.parquet", SCHEMA)
        return self._writers[bucket]

    def close(self, metadata: Mapping[str, Any] | None = None) -> Path:
        """Finish every file, write :data:`METADATA` and move the dataset into place."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        atomic_write_json(
            self._tmp / METADATA,
            {
                "format": "decaygym-partitioned-log-v1",
                "partition": f"{PARTITION} = splitmix64(user_id) mod n_buckets",
                "n_buckets": self.n_buckets,
                "n_rows": int(self.rows.sum()),
                "max_bucket_rows": int(self.rows.max()),
                **(metadata or {}),
            },
        )
        old = None
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.{os.getpid()}.old")
            os.replace(self.path, old)
        os.replace(self._tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        """Drop everything written so far."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> PartitionedLogWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is not None:
            self.abort()


@dataclass(frozen=True)
class TimeScan:
    """What one pass over the timestamps finds: enough to place the evaluation split."""

    rows: int
    t_min: int
    t_max: int


@dataclass(frozen=True)
class PartitionedLog:
    """An opened partitioned dataset: its buckets and files; reads one bucket at a time."""

    path: Path
    fragments: dict[int, tuple[ds.ParquetFileFragment, ...]] = field(repr=False)
    columns: tuple[str, ...]  # canonical columns read: the required ones and those optional present
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> PartitionedLog:
        """List the dataset's buckets and check every file has the required columns."""
        root = Path(path)
        if not root.is_dir():
            what = "not found" if not root.exists() else "not a folder"
            raise DataValidationError(f"{root}: {what}; expected a Parquet dataset folder ({PARTITION}=K/)")
        try:
            dataset = ds.dataset(root, format="parquet", partitioning="hive")
            fragments = list(dataset.get_fragments())
        except (pa.ArrowException, OSError) as exc:
            raise DataValidationError(f"{root}: cannot read as a Parquet dataset: {first_line(exc)}") from exc
        if not fragments:
            raise DataValidationError(f"{root}: no Parquet files; expected {PARTITION}=K/*.parquet")
        by_bucket: dict[int, list[ds.ParquetFileFragment]] = {}
        optional = set(OPTIONAL_COLUMNS)
        for fragment in fragments:
            match = _BUCKET_DIR.match(Path(fragment.path).parent.name)
            if match is None:
                raise DataValidationError(
                    f"{fragment.path}: not inside a {PARTITION}=K folder; a partitioned log keeps "
                    f"each file under DIR/{PARTITION}=K/ so that a user's events share one partition"
                )
            names = set(fragment.physical_schema.names)
            missing = [c for c in REQUIRED_COLUMNS if c not in names]
            if missing:
                raise DataValidationError(
                    f"{fragment.path}: missing required column {', '.join(missing)} "
                    f"(columns: {', '.join(sorted(names))})"
                )
            optional &= names
            by_bucket.setdefault(int(match.group(1)), []).append(fragment)
        metadata: dict[str, Any] = {}
        if (root / METADATA).is_file():
            try:
                metadata = json.loads((root / METADATA).read_text())
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DataValidationError(f"{root / METADATA}: not valid JSON ({exc})") from exc
        return cls(
            path=root,
            fragments={b: tuple(sorted(f, key=lambda fr: fr.path)) for b, f in sorted(by_bucket.items())},
            columns=(*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in optional)),
            metadata=metadata,
        )

    @property
    def buckets(self) -> tuple[int, ...]:
        """Bucket numbers present, ascending."""
        return tuple(self.fragments)

    def batches(
        self, bucket: int, columns: tuple[str, ...], batch_size: int
    ) -> Iterator[tuple[str, int, pa.RecordBatch]]:
        """Record batches of one bucket's files: (file, row offset in the file, batch).

        The only place that reads event rows: one projection of ``columns``, at most
        ``batch_size`` rows at a time.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive number of rows, got {batch_size!r}")
        for fragment in self.fragments[bucket]:
            batches = fragment.to_batches(columns=list(columns), batch_size=batch_size)
            for offset, batch in record_batches(iter(batches), fragment.path):
                yield fragment.path, offset, batch

    def scan_times(self, batch_size: int = DEFAULT_BATCH_ROWS) -> TimeScan:
        """Rows, first and last timestamp: one pass that reads the timestamp column only."""
        rows, t_min, t_max = 0, None, None
        for bucket in self.buckets:
            for name, offset, batch in self.batches(bucket, ("timestamp",), batch_size):
                where = Where(name, _row, offset)
                secs, _ = convert_timestamp(batch.column(0), where, "s")
                rows += len(secs)
                low, high = int(secs.min()), int(secs.max())
                t_min = low if t_min is None else min(t_min, low)
                t_max = high if t_max is None else max(t_max, high)
        if t_min is None or t_max is None:
            raise DataValidationError(f"{self.path}: empty log: no rows; expected at least one event")
        return TimeScan(rows, t_min, t_max)

    def read_raw(
        self, bucket: int, batch_size: int = DEFAULT_BATCH_ROWS
    ) -> tuple[dict[str, np.ndarray], int]:
        """One bucket's converted columns, in file order, and the number of timestamps that were dates."""
        accumulators: list[Accumulator] = []  # one per file, so that messages name the file
        for name, offset, batch in self.batches(bucket, self.columns, batch_size):
            if not accumulators or accumulators[-1].name != name:
                accumulators.append(Accumulator(self.columns, SOURCES["canonical"], _row, name))
            accumulators[-1].add(Batch(dict(zip(self.columns, batch.columns, strict=True)), offset))
        parts: dict[str, list[np.ndarray]] = {c: [] for c in self.columns}
        for acc in accumulators:
            for column, values in acc.finish().items():
                if not isinstance(values, np.ndarray):
                    raise DataValidationError(
                        f"{acc.name}: column {column} holds text ids; a partitioned log needs "
                        "integer ids (text ids would be coded per partition, not once for the log)"
                    )
                parts[column].append(values)
        date_only = sum(acc.date_only for acc in accumulators)
        return {c: np.concatenate(v) if v else np.empty(0, _DTYPES[c]) for c, v in parts.items()}, date_only

    def read_bucket(self, bucket: int, batch_size: int = DEFAULT_BATCH_ROWS) -> BehaviourLog:
        """One bucket as a cleaned log: validated, duplicates dropped, sorted by (user, time).

        Warnings are kept in the report, not raised: the caller reads many buckets.
        """
        raw, date_only = self.read_raw(bucket, batch_size)
        return _canonical_log(raw, f"{self.path} {PARTITION}={bucket}", date_only, "empty partition")


def _row(row: int) -> str:
    return f"row {row + 1}"


def load_partitioned(path: str | os.PathLike[str], batch_size: int = DEFAULT_BATCH_ROWS) -> BehaviourLog:
    """The whole partitioned dataset as one in-memory log (for logs that fit in memory).

    Buckets are read in order and their files in name order, so events of one user that share
    a timestamp keep the order in which the streaming reader sees them.
    """
    log = PartitionedLog.open(path)
    parts: dict[str, list[np.ndarray]] = {c: [] for c in log.columns}
    date_only = 0
    for bucket in log.buckets:
        raw, dates = log.read_raw(bucket, batch_size)
        for column, values in raw.items():
            parts[column].append(values)
        date_only += dates
    raw = {c: np.concatenate(v) for c, v in parts.items()}
    return emit(_canonical_log(raw, str(log.path), date_only, "empty log"))


def _canonical_log(raw: dict[str, np.ndarray], name: str, date_only: int, empty: str) -> BehaviourLog:
    """A log of canonical columns read from a dataset (``date_only``: rows with a date and no time).

    Raises:
        DataValidationError: no rows (``empty`` says what was empty).
    """
    rows = len(raw["user_id"])
    if not rows:
        raise DataValidationError(f"{name}: {empty}: no rows; expected at least one event")
    notes = [date_note(name, date_only, rows, SOURCES["canonical"])] if date_only else []
    return build_log(
        raw, name=name, source="canonical", rows_read=rows, dropped={}, notes=notes, date_only=date_only > 0
    )
