"""Streaming fit on a partitioned Parquet log: equal to the in-memory fit, one partition at a time."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from decay_model.errors import ConfigError, DataValidationError
from decay_model.exponential import ExponentialDecay
from decay_model.logs import load_log
from decay_model.logs.dataset import PartitionedLog, PartitionedLogWriter, bucket_of, load_partitioned
from decay_model.metrics import log_loss
from decay_model.streaming import (
    PREDICTION_TOLERANCE,
    TOLERANCE,
    StreamingFit,
    fit_streaming,
    max_differences,
    period_arrays,
)
from decay_model.synthetic import SyntheticConfig, generate
from decay_model.synthetic_dataset import write_synthetic_dataset
from decay_model.task import EvalTask

CONFIG = SyntheticConfig(n_categories=8)
EVENTS = 8_000
BATCH = 500


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stream") / "log"
    write_synthetic_dataset(path, EVENTS, CONFIG, seed=3, bucket_events=2_000, chunk_users=40)
    return path


@pytest.fixture(scope="module")
def fits(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The in-memory reference and the streaming fit (spilled to disk), with a spy on partition reads."""
    reads: list[tuple[int, int]] = []
    alive: list[weakref.ref] = []
    batches: list[int] = []
    original_read, original_batches = PartitionedLog.read_bucket, PartitionedLog.batches

    def read_bucket(self: PartitionedLog, bucket: int, batch_size: int = BATCH) -> object:
        gc.collect()
        # Never two partitions in memory: the previous one is gone before the next is read.
        assert all(ref() is None for ref in alive), "a partition outlived the read of the next one"
        part = original_read(self, bucket, batch_size)
        alive.append(weakref.ref(part))
        reads.append((bucket, part.n_events))
        return part

    def spy_batches(self: PartitionedLog, bucket: int, columns: tuple[str, ...], batch_size: int):
        for item in original_batches(self, bucket, columns, batch_size):
            batches.append(item[2].num_rows)
            yield item

    mp = pytest.MonkeyPatch()
    mp.setattr(PartitionedLog, "read_bucket", read_bucket)
    mp.setattr(PartitionedLog, "batches", spy_batches)
    spill = tmp_path_factory.mktemp("spill")
    try:
        # max_rows: several autograd graphs per partition, as on a large log
        model, metrics, card, report = fit_streaming(
            dataset, batch_size=BATCH, spill_dir=spill, max_rows=2_000
        )
    finally:
        mp.undo()
    task = EvalTask(load_partitioned(dataset))
    reference = ExponentialDecay().fit(task)
    return {
        "model": model,
        "metrics": metrics,
        "card": card,
        "report": report,
        "reference": reference,
        "task": task,
        "reads": reads,
        "batches": batches,
        "spill": spill,
    }


def test_dataset_holds_the_synthetic_log_of_its_users(dataset: Path) -> None:
    meta = json.loads((dataset / "_dataset.json").read_text())
    config = SyntheticConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()})
    log = load_log(dataset)
    assert log.n_events == meta["n_rows"] >= EVENTS
    assert log.fingerprint() == generate(config, seed=3).log.fingerprint()
    part = PartitionedLog.open(dataset)
    assert len(part.buckets) == meta["n_buckets"] == 4
    for bucket in part.buckets:
        users = part.read_bucket(bucket).events["user_id"].to_numpy()
        assert (bucket_of(users, meta["n_buckets"]) == bucket).all()


def test_streaming_fit_equals_the_in_memory_fit(fits: dict) -> None:
    model, reference = fits["model"], fits["reference"]
    diffs = max_differences(model, reference)
    assert max(diffs.values()) <= TOLERANCE, diffs
    assert [e.scale for e in model.effects] == [e.scale for e in reference.effects]
    task = fits["task"]
    p_ref = reference.predict(task, "valid")
    p_stream = model.predict(task, "valid")
    assert np.max(np.abs(p_ref - p_stream)) <= PREDICTION_TOLERANCE
    valid = fits["metrics"]["valid"]
    assert valid["n"] == len(p_ref)
    # The streamed metric is the in-memory metric of the same predictions, summed in another order.
    assert valid["log_loss"] == pytest.approx(log_loss(task.labels("valid"), p_stream), rel=1e-12)
    assert valid["log_loss"] == pytest.approx(log_loss(task.labels("valid"), p_ref), abs=1e-6)
    assert fits["metrics"]["test"]["n"] == len(task.examples("test"))


def test_reading_is_batched_one_partition_at_a_time(fits: dict, dataset: Path) -> None:
    reads, batches, report = fits["reads"], fits["batches"], fits["report"]
    n_buckets = len(PartitionedLog.open(dataset).buckets)
    # One sweep to prepare train and valid, one to score test; partitions in order, each once a sweep.
    assert [b for b, _ in reads] == 2 * sorted({b for b, _ in reads})
    assert len(reads) == 2 * n_buckets
    assert max(n for _, n in reads) == report.max_partition_events < report.n_events / 2
    assert max(batches) <= BATCH and len(batches) > 2 * n_buckets
    # The timestamp scan, then two sweeps over every column: every event read three times.
    assert sum(batches) == 3 * report.n_events
    assert report.passes > 10 and report.peak_rss_mib > 0 and report.events_per_s > 0
    assert not any(fits["spill"].iterdir()), "the spilled chunks are removed after the fit"


def test_chunks_are_the_in_memory_tasks_examples(dataset: Path) -> None:
    log = load_partitioned(dataset)
    whole = EvalTask(log)
    part = PartitionedLog.open(dataset)
    n = 0
    for bucket in part.buckets:
        piece = part.read_bucket(bucket)
        local = {c: np.unique(piece.events[c].to_numpy()) for c in ("user_id", "category_id")}
        arrays = period_arrays(EvalTask(piece, split=whole.split), "train", 64, local)
        n += len(arrays["label"])
    assert n == len(whole.examples("train"))


def test_streaming_fit_refuses_a_fitted_model(fits: dict) -> None:
    with pytest.raises(ConfigError, match="unfitted"):
        StreamingFit(fits["reference"], store=None)  # type: ignore[arg-type]


def test_user_split_across_partitions_is_named(tmp_path: Path) -> None:
    events = generate(SyntheticConfig(n_users=6, n_categories=3), seed=1).log.events
    for bucket, rows in ((0, slice(0, 40)), (1, slice(40, None))):
        folder = tmp_path / f"bucket={bucket}"
        folder.mkdir()
        pq.write_table(
            pa.Table.from_pandas(events.iloc[rows], preserve_index=False), folder / "part-0.parquet"
        )
    user = int(events["user_id"].iloc[39])
    with pytest.raises(
        DataValidationError, match=rf"user {user} has events in partitions bucket=0, bucket=1"
    ):
        fit_streaming(tmp_path, in_memory=True)


def test_bad_value_names_file_column_and_row(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"user_id": [1, 1, 2], "item_id": [5, 6, 7], "category_id": [1, 1, 2], "behavior": [0, 9, 0]}
    ).assign(timestamp=[1_511_539_200, 1_511_539_300, 1_511_539_400])
    folder = tmp_path / "bucket=0"
    folder.mkdir()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "part-0.parquet")
    with pytest.raises(DataValidationError, match=r"part-0\.parquet: column behavior, row 2"):
        PartitionedLog.open(tmp_path).read_bucket(0)
    (folder / "part-0.parquet").unlink()
    pq.write_table(
        pa.Table.from_pandas(frame.drop(columns="item_id"), preserve_index=False), folder / "x.parquet"
    )
    with pytest.raises(DataValidationError, match=r"x\.parquet: missing required column item_id"):
        PartitionedLog.open(tmp_path)
    with pytest.raises(DataValidationError, match="not found"):
        PartitionedLog.open(tmp_path / "absent")


def test_writer_is_atomic_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "log"
    with pytest.raises(RuntimeError), PartitionedLogWriter(target, 2) as writer:
        writer.write(generate(SyntheticConfig(n_users=3, n_categories=2), seed=0).log.events)
        raise RuntimeError("interrupted")
    assert not target.exists() and not any(tmp_path.iterdir())
    write_synthetic_dataset(target, 500, CONFIG)
    with pytest.raises(ConfigError, match="already exists"):
        write_synthetic_dataset(target, 500, CONFIG)
