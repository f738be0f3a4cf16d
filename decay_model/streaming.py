"""Fit ExponentialDecay on a partitioned Parquet log that need not fit in memory.

The in-memory fit (``_DecayCore.fit``) reads, per training example (a user-category pair at a
cutoff), the pair's most recent ``max_events`` events before the cutoff, and re-reads all of
them at every L-BFGS step: the likelihood depends on the decay rate through every event's age,
so no fixed-size per-pair statistic (counts, gaps, last times) replaces the events. What can be
bounded is what is held at once:

1. **Scan** (one pass, timestamp column only): first and last time, hence the split
   (:func:`~decay_model.task.split_between`), the same as the whole log's.
2. **Prepare** (one pass, one partition at a time): a partition holds every event of its users
   (:mod:`decay_model.logs.dataset`), so an :class:`~decay_model.task.EvalTask` over it, with
   the global split, has exactly the whole log's examples of those users. Each partition's
   training and validation examples and histories go to a spill folder, one raw file per
   partition and period (13 bytes per history row, 13 per example), and are dropped from
   memory. Test examples are built the same way in a last sweep, when the fit is done.
3. **Fit**: the steps of ``_DecayCore.fit`` (maximum likelihood, empirical Bayes per column,
   shrinkage chosen on validation), with every loss, gradient and curvature summed over the
   spilled partitions, loaded one at a time. Examples of one pair, and of one user, never span
   two partitions, so the cluster-robust scores per pair and the per-user curvature are
   complete within a partition.

Memory so holds one partition's examples and the autograd graph of at most about
:data:`MAX_ROWS` history rows (the partition size is set when the dataset is written), plus
what grows with users and categories, not with events: per training user a few float64
numbers (id, offset, variance, gradient, positions) and, while the users' offsets are fitted,
L-BFGS's history of 100 pairs of parameter vectors (1.6 KB per user); per category a few 3 x 3
blocks. The spill folder on disk grows with events (13 bytes per history row and per example).

Equivalence: every number is the in-memory fit's sum taken in another order, so the fitted
parameters agree up to floating-point summation order and where L-BFGS, from those slightly
different values, stops; ``tests/decay_model/test_streaming_fit.py`` checks the parameters
agree within :data:`TOLERANCE` and the predictions within :data:`PREDICTION_TOLERANCE`. The
chosen shrinkage factor is a comparison of validation losses and could flip only if two
factors' losses tie to rounding.

Not streamed, and so not in the artifact: ROC-AUC, ECE and the ranking metrics need every
prediction of a period at once (the card reports log-loss, Brier score, n and base rate per
period), and no population summary is written (``decaygym-build-sim`` reads an in-memory log).

Command line (progress on stderr, a summary on stdout)::

    python -m decay_model.streaming --logs DATASET_DIR --out RUN_DIR
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from decay_model.artifact import save_artifact
from decay_model.atomic import atomic_write_json
from decay_model.errors import ConfigError, DataValidationError, command_line, run_command
from decay_model.exponential import DTYPE, KINDS, DecayFitConfig, ExponentialDecay, RandomEffect, _DecayCore
from decay_model.exponential import _marginal_tau2 as marginal_tau2
from decay_model.exponential import _nll as nll
from decay_model.logs.dataset import DEFAULT_BATCH_ROWS, PARTITION, PartitionedLog
from decay_model.memory import peak_rss_mib, release_free_memory
from decay_model.metrics import EPS
from decay_model.task import PERIODS, EvalTask, History, TaskConfig, TimeSplit, split_between

TOLERANCE = 1e-4
"""Largest absolute difference to the in-memory fit the test accepts on any fitted number.

About ten times the in-memory fit's own change when its training examples are merely listed
in another order (1.1e-5 on a synthetic log of 12,000 events): along near-flat directions of
the likelihood (α, β, the floor and the level trade off), L-BFGS stops wherever rounding lets
it. That change grows with the log: on 10^6 events reordering moved the in-memory fit by 2.5e-4
and the streaming fit differed from it by 2.8e-4. Ids and shrinkage factors must be equal.
"""

PREDICTION_TOLERANCE = 3e-5
"""Largest absolute difference to the in-memory fit the test accepts on a predicted probability.

About ten times the in-memory fit's own change under a reordering of its examples (3.8e-6 on
the 12,000-event log; 2.4e-5 on 10^6 events, where the streaming fit differed by 4.5e-5).
"""

TRIM_PARAMS = 1 << 16
"""Parameters from which a fit returns freed memory after every pass (L-BFGS history >= 100 MiB)."""

MAX_ROWS = 1 << 20
"""History rows a pass holds in its autograd graph at once (about 0.4 GB in empirical Bayes)."""

COLUMNS = ("user_id", "category_id")
"""The id columns random effects can be keyed by."""


@dataclass(frozen=True)
class Chunk:
    """Some of one partition's examples of one period: what the in-memory fit reads from EvalTask."""

    key: int  # the partition
    hist: History
    y: np.ndarray  # float64 labels
    pos: dict[str, np.ndarray]  # column -> each example's position in the training ids; -1 if unseen
    pair: np.ndarray  # each example's (user, category) pair, numbered within the partition
    n_pairs: int  # pairs numbered in the partition (an upper bound of pair + 1)


def period_arrays(
    task: EvalTask, period: str, max_events: int, local: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """A partition's examples and histories of one period, compact (13 bytes a history row).

    ``local`` holds the partition's sorted user and category ids; examples point into them.
    """
    ex = task.examples(period)
    hist = task.history(period, max_events)
    return {
        "example": hist.example.astype(np.int32),
        "age": hist.age_hours,
        "behavior": hist.behavior,
        "label": ex["label"].to_numpy(np.int8),
        "pair": ex["pair"].to_numpy(np.int32),
        **{c: np.searchsorted(local[c], ex[c].to_numpy()).astype(np.int32) for c in COLUMNS},
    }


_LAYOUT: tuple[tuple[str, type[np.generic], str], ...] = (
    ("example", np.int32, "history"),
    ("age", np.float64, "history"),
    ("behavior", np.int8, "history"),
    ("label", np.int8, "examples"),
    ("pair", np.int32, "examples"),
    *((column, np.int32, "examples") for column in COLUMNS),
)
"""A spilled chunk's arrays in file order: name, dtype, and whether one per history row or example."""
SPILLED = ("train", "valid")
"""Periods prepared once: the fit reads them at every pass. Test is read once, at the end."""


class ChunkStore:
    """Per partition, the training and validation chunks, prepared once and read at every pass.

    With a ``folder`` each chunk is one raw file, loaded one chunk at a time
    (bounded memory); without, the chunks stay in memory (small logs, tests).
    """

    def __init__(self, folder: Path | None = None, max_rows: int = MAX_ROWS) -> None:
        if not isinstance(max_rows, int) or max_rows < 1:
            raise ConfigError(f"max_rows must be a positive number of history rows, got {max_rows!r}")
        self.folder = folder
        self.max_rows = max_rows
        self._held: dict[tuple[int, str], dict[str, np.ndarray]] = {}
        self._keys: list[int] = []
        self._sizes: dict[tuple[int, str], dict[str, int]] = {}
        self._maps: dict[int, dict[str, np.ndarray]] = {}  # partition -> column -> local id -> position
        self.ids: dict[str, np.ndarray] = {}  # column -> sorted ids of the training examples
        self.n_examples = dict.fromkeys(PERIODS, 0)
        self.n_history = dict.fromkeys(PERIODS, 0)
        self.bytes = 0

    def count(self, period: str, arrays: dict[str, np.ndarray]) -> None:
        """Add a chunk's examples and history rows to the period's totals."""
        self.n_examples[period] += len(arrays["label"])
        self.n_history[period] += len(arrays["example"])

    def put(self, key: int, period: str, arrays: dict[str, np.ndarray]) -> None:
        """Keep one partition's arrays of one period (on disk when the store has a folder)."""
        if not self._keys or self._keys[-1] != key:
            self._keys.append(key)
        self.count(period, arrays)
        self.bytes += sum(a.nbytes for a in arrays.values())
        if self.folder is None:
            self._held[key, period] = arrays
            return
        # One raw file per chunk, the arrays back to back: reading it back parses no headers.
        self._sizes[key, period] = {"history": len(arrays["example"]), "examples": len(arrays["label"])}
        with (self.folder / f"{key}-{period}.bin").open("wb") as handle:
            for name, dtype, _ in _LAYOUT:
                np.ascontiguousarray(arrays[name], dtype=dtype).tofile(handle)

    def set_ids(self, ids: dict[str, np.ndarray], local: dict[int, dict[str, np.ndarray]]) -> None:
        """The training ids of each column, and where each partition's local ids sit in them."""
        self.ids = ids
        for key, columns in local.items():
            self._maps[key] = {}
            for column, values in columns.items():
                known = ids[column]
                at = np.clip(np.searchsorted(known, values), 0, max(len(known) - 1, 0))
                hit = known[at] == values if len(known) else np.zeros(len(values), dtype=bool)
                self._maps[key][column] = np.where(hit, at, -1)

    def split(self, key: int, arrays: dict[str, np.ndarray]) -> Iterator[Chunk]:
        """The model's view of one partition's arrays (:func:`period_arrays`), in runs of examples.

        Each run holds about ``max_rows`` history rows, so the autograd graph of a pass, the
        largest thing it holds, is bounded whatever the partition's size.
        """
        if not len(arrays["label"]):
            return
        example, n_examples = arrays["example"], len(arrays["label"])
        n_pairs = int(arrays["pair"].max()) + 1
        # History rows are grouped by example, in example order: a run of examples is a run of rows.
        row_ends = np.cumsum(np.bincount(example, minlength=n_examples))
        cuts = np.searchsorted(row_ends, np.arange(self.max_rows, len(example), self.max_rows)) + 1
        bounds = np.unique(np.concatenate([[0], np.minimum(cuts, n_examples), [n_examples]]))
        for lo, hi in itertools.pairwise(bounds.tolist()):
            r0 = int(row_ends[lo - 1]) if lo else 0
            r1 = int(row_ends[hi - 1])
            yield Chunk(
                key=key,
                hist=History(
                    example=example[r0:r1].astype(np.int64) - lo,
                    age_hours=arrays["age"][r0:r1],
                    behavior=arrays["behavior"][r0:r1],
                ),
                y=arrays["label"][lo:hi].astype(np.float64),
                pos={column: self._maps[key][column][arrays[column][lo:hi]] for column in COLUMNS},
                pair=arrays["pair"][lo:hi],
                n_pairs=n_pairs,
            )

    def chunks(self, period: str) -> Iterator[Chunk]:
        """The period's chunks: one partition at a time, in runs of about ``max_rows`` history rows."""
        for key in self._keys:
            if self.folder is None:
                arrays = self._held[key, period]
            else:
                sizes = self._sizes[key, period]
                with (self.folder / f"{key}-{period}.bin").open("rb") as handle:
                    arrays = {name: np.fromfile(handle, dtype, sizes[n]) for name, dtype, n in _LAYOUT}
            yield from self.split(key, arrays)


@dataclass
class StreamReport:
    """What a streaming fit read, how long each stage took and the peak memory: the measurement."""

    dataset: str
    n_events: int = 0
    n_partitions: int = 0
    max_partition_events: int = 0
    n_users: int = 0
    n_categories: int = 0
    batch_size: int = 0
    examples: dict[str, int] = field(default_factory=dict)
    history_rows: dict[str, int] = field(default_factory=dict)
    spill_mib: float = 0.0
    passes: int = 0  # loss (and gradient) evaluations over the whole training period
    seconds: dict[str, float] = field(default_factory=dict)  # prepare (with the scan), fit, evaluate, total
    peak_rss_mib: float = 0.0

    @property
    def events_per_s(self) -> float:
        """Events of the log per second of the whole run (scan to metrics)."""
        return self.n_events / self.seconds["total"] if self.seconds.get("total") else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the rates."""
        prepare = self.seconds.get("prepare", 0.0)
        return {
            **asdict(self),
            "events_per_s": self.events_per_s,
            "read_and_prepare_events_per_s": self.n_events / prepare if prepare else None,
            "seconds_per_pass": self.seconds["fit"] / self.passes if self.passes else None,
        }

    def summary(self) -> str:
        """One line for the terminal."""
        return (
            f"{self.n_events:,} events ({self.n_partitions} partitions, "
            f"largest {self.max_partition_events:,}) "
            f"in {self.seconds.get('total', 0.0):.1f} s: {self.events_per_s:,.0f} events/s; "
            f"fit {self.seconds.get('fit', 0.0):.1f} s over {self.passes} passes; "
            f"peak memory {self.peak_rss_mib:,.0f} MiB; spill {self.spill_mib:,.0f} MiB"
        )


def prepare(
    log: PartitionedLog,
    task_config: TaskConfig,
    max_events: int,
    store: ChunkStore,
    *,
    batch_size: int = DEFAULT_BATCH_ROWS,
    on_partition: Callable[[int], None] | None = None,
) -> tuple[TimeSplit, dict[str, Any]]:
    """Scan the times, then turn each partition into its training and validation chunks.

    Returns the split and the data card of the log (sizes, times, and a digest of the
    partitions' content fingerprints in partition order).
    """
    scan = log.scan_times(batch_size)
    split = split_between(scan.t_min, scan.t_max, task_config, str(log.path))
    train_ids: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
    local: dict[int, dict[str, np.ndarray]] = {}
    digest = hashlib.sha256(b"decaygym-partitioned-log-v1")
    rows_kept = largest = 0
    for bucket in log.buckets:
        part = log.read_bucket(bucket, batch_size)
        digest.update(f"\0{PARTITION}={bucket}:{part.fingerprint()}\0".encode())
        rows_kept += part.n_events
        largest = max(largest, part.report.rows_read)
        local[bucket] = {c: np.unique(part.events[c].to_numpy()) for c in COLUMNS}
        task = EvalTask(part, task_config, split=split)
        for period in SPILLED:
            arrays = period_arrays(task, period, max_events, local[bucket])
            store.put(bucket, period, arrays)
            if period == "train":
                for c in COLUMNS:
                    train_ids[c].append(local[bucket][c][np.unique(arrays[c])])
        del part, task, arrays
        if on_partition is not None:
            on_partition(bucket)
    users = np.concatenate([cols["user_id"] for cols in local.values()])
    distinct, counts = np.unique(users, return_counts=True)
    if len(distinct) < len(users):
        user = int(distinct[np.argmax(counts > 1)])
        found = ", ".join(f"{PARTITION}={b}" for b, cols in local.items() if np.isin(user, cols["user_id"]))
        raise DataValidationError(
            f"{log.path}: user {user} has events in partitions {found}; "
            "every user's events must lie in one partition"
        )
    store.set_ids({c: np.unique(np.concatenate(v)) for c, v in train_ids.items()}, local)
    card = {
        "name": log.path.name,
        "source": "canonical",
        "format": "partitioned parquet",
        "fingerprint": None,  # the whole log's BehaviourLog.fingerprint needs it in memory
        "partitions_fingerprint": digest.hexdigest(),
        "n_events": rows_kept,
        "rows_read": scan.rows,
        "n_users": len(distinct),
        "n_categories": len(np.unique(np.concatenate([c["category_id"] for c in local.values()]))),
        "t_min": scan.t_min,
        "t_max": scan.t_max,
        "max_partition_rows": largest,
    }
    return split, card


def partition_chunks(
    log: PartitionedLog,
    split: TimeSplit,
    task_config: TaskConfig,
    max_events: int,
    store: ChunkStore,
    period: str,
    batch_size: int = DEFAULT_BATCH_ROWS,
) -> Iterator[Chunk]:
    """A period's chunks read afresh from the partitions, one at a time (for a period read once)."""
    for bucket in log.buckets:
        arrays = _read_period(log, bucket, split, task_config, max_events, period, batch_size)
        store.count(period, arrays)
        yield from store.split(bucket, arrays)


def _read_period(
    log: PartitionedLog,
    bucket: int,
    split: TimeSplit,
    task_config: TaskConfig,
    max_events: int,
    period: str,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """One partition's arrays of one period; the partition itself is freed on return."""
    part = log.read_bucket(bucket, batch_size)
    local = {c: np.unique(part.events[c].to_numpy()) for c in COLUMNS}
    return period_arrays(EvalTask(part, task_config, split=split), period, max_events, local)


class StreamingFit:
    """``_DecayCore.fit`` step by step, with every sum over examples taken one chunk at a time.

    Each method mirrors the model's method of the same name; the model's own ``_logit``,
    ``_shared_tensors`` and effects are used, so only the summation is new.
    """

    def __init__(
        self, model: _DecayCore, store: ChunkStore, on_pass: Callable[[str], None] | None = None
    ) -> None:
        if any(len(eff.ids) for eff in model.effects):
            raise ConfigError("StreamingFit needs an unfitted model")
        self.model = model
        self.store = store
        self.on_pass = on_pass
        self.passes = 0
        self.step = ""

    # -- what the model reads per example -------------------------------------------------
    def _lookup(self, eff: RandomEffect, chunk: Chunk) -> np.ndarray:
        """``eff.lookup`` of the chunk's ids: its ids are the store's training ids once fitted."""
        if not len(eff.ids):
            return np.zeros(len(chunk.y))
        pos = chunk.pos[eff.column]
        return np.where(pos >= 0, eff.values[pos], 0.0)

    def _offset_tensors(self, chunk: Chunk, skip: Sequence[RandomEffect] = ()) -> dict[str, torch.Tensor]:
        out = {}
        for kind in KINDS:
            total = np.zeros(len(chunk.y))
            for eff in self.model.effects:
                if eff.kind == kind and all(eff is not other for other in skip):
                    total += self._lookup(eff, chunk)
            out[kind] = torch.as_tensor(total)
        return out

    def _end_pass(self, trim: bool = False) -> None:
        """Count a pass over the training period; ``trim`` hands the heap's free pages back."""
        if trim:
            release_free_memory()
        self.passes += 1
        if self.on_pass is not None:
            self.on_pass(self.step)

    # -- the fit ----------------------------------------------------------------------------
    def _fit_ml(self, column: str | None = None) -> None:
        """``_DecayCore._fit_ml``: the loss and its gradient are summed chunk by chunk."""
        model, config = self.model, self.model.config
        shared = {k: v.clone().requires_grad_(True) for k, v in model._shared_tensors().items()}
        free = [eff for eff in model.effects if eff.column == column]
        groups = []
        for eff in free:
            eff.ids = self.store.ids[eff.column]
            start = eff.raw if len(eff.raw) == len(eff.ids) else np.zeros(len(eff.ids))
            groups.append((eff, torch.tensor(start, dtype=DTYPE, requires_grad=True)))
        params = list(shared.values()) + [theta for _, theta in groups]
        # L-BFGS allocates parameter-sized vectors at every step and keeps 200 of them; with many
        # parameters, freed ones would pile up in the heap (release_free_memory). With few, the
        # trim would only cost page faults.
        trim = sum(p.numel() for p in params) >= TRIM_PARAMS
        opt = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=config.max_iter,
            tolerance_grad=1e-9,
            tolerance_change=1e-12,
            line_search_fn="strong_wolfe",
        )
        n = self.store.n_examples["train"]

        def closure() -> torch.Tensor:
            opt.zero_grad()
            total = 0.0
            for chunk in self.store.chunks("train"):
                off = self._offset_tensors(chunk, skip=free)
                for eff, theta in groups:
                    off[eff.kind] = off[eff.kind] + theta[torch.as_tensor(chunk.pos[eff.column])]
                log_w = torch.cat([torch.zeros(1, dtype=DTYPE), shared["log_w"][1:].clamp(-8, 8)])
                logit = model._logit(
                    chunk.hist, off, **{**shared, "log_w": log_w, "log_b0": shared["log_b0"].clamp(-12, 5)}
                )
                loss = nll(logit, torch.as_tensor(chunk.y))
                (loss / n).backward()
                total += float(loss.detach())
            penalty = torch.zeros((), dtype=DTYPE)
            for _, theta in groups:
                penalty = penalty + 0.5 * (theta**2).sum() / config.raw_prior_sd**2
            if groups:
                (penalty / n).backward()
            self._end_pass(trim)
            return torch.tensor((total + float(penalty.detach())) / n, dtype=DTYPE)

        opt.step(closure)
        model.log_lambda0 = float(shared["log_lam0"].detach())
        model.alpha = float(shared["alpha"].detach())
        model.beta = float(shared["beta"].detach())
        model.log_b0 = float(shared["log_b0"].detach().clamp(-12, 5))
        model.log_w = np.concatenate([[0.0], shared["log_w"].detach()[1:].clamp(-8, 8).numpy()])
        for eff, theta in groups:
            eff.raw = theta.detach().numpy().copy()
            eff.values = eff.raw.copy()

    def _empirical_bayes(self, column: str) -> None:
        """``_DecayCore._empirical_bayes``: curvature blocks and per-pair scores summed chunk by chunk."""
        model = self.model
        effs = [eff for eff in model.effects if eff.column == column]
        k, n_ids = len(effs), len(effs[0].ids)
        hess = np.zeros((n_ids, k, k))
        meat = np.zeros((n_ids, k, k))
        shared = model._shared_tensors()
        pair_scores, id_of_pair, key = np.zeros((0, k)), np.zeros(0, dtype=np.int64), None
        for chunk in self.store.chunks("train"):
            if chunk.key != key:
                # A pair's examples all lie in one partition: its summed score is complete now.
                np.add.at(meat, id_of_pair, pair_scores[:, :, None] * pair_scores[:, None, :])
                pair_scores = np.zeros((chunk.n_pairs, k))
                id_of_pair = np.zeros(chunk.n_pairs, dtype=np.int64)
                key = chunk.key
            group = chunk.pos[column]
            off = self._offset_tensors(chunk)
            z = [torch.zeros(len(chunk.y), dtype=DTYPE, requires_grad=True) for _ in effs]
            for eff, zi in zip(effs, z, strict=True):
                off[eff.kind] = off[eff.kind] + zi
            loss = nll(model._logit(chunk.hist, off, **shared), torch.as_tensor(chunk.y))
            scores = torch.autograd.grad(loss, z, create_graph=True)
            for i, score in enumerate(scores):
                rows = torch.autograd.grad(score.sum(), z, retain_graph=True)
                for j, row in enumerate(rows):
                    hess[:, i, j] += np.bincount(group, weights=row.detach().numpy(), minlength=n_ids)
            for i, sc in enumerate(scores):
                pair_scores[:, i] += np.bincount(
                    chunk.pair, weights=sc.detach().numpy(), minlength=chunk.n_pairs
                )
            id_of_pair[chunk.pair] = group
        # Pairs without training examples keep a zero score and add nothing.
        np.add.at(meat, id_of_pair, pair_scores[:, :, None] * pair_scores[:, None, :])
        self._end_pass()
        hess = 0.5 * (hess + hess.transpose(0, 2, 1)) + np.eye(k) / model.config.raw_prior_sd**2
        eigval, eigvec = np.linalg.eigh(hess)
        inv = (eigvec / np.maximum(eigval, 1e-8)[:, None, :]) @ eigvec.transpose(0, 2, 1)
        sandwich = inv @ meat @ inv
        for j, eff in enumerate(effs):
            eff.se2 = np.maximum(inv[:, j, j], sandwich[:, j, j])
            eff.prior_sd = math.sqrt(marginal_tau2(eff.raw, eff.se2))
            eff.shrink(1.0)

    def predictions(self, chunks: Iterable[Chunk]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(labels, P(re-engagement)) of each chunk."""
        shared = self.model._shared_tensors()
        for chunk in chunks:
            with torch.no_grad():
                logit = self.model._logit(chunk.hist, self._offset_tensors(chunk), **shared)
            yield chunk.y, torch.sigmoid(logit).numpy()

    def metrics(self, chunks: Iterable[Chunk]) -> dict[str, float]:
        """Log-loss (as decay_model.metrics.log_loss), Brier score, n and base rate, summed chunk by chunk."""
        n = loss = squares = positives = 0.0
        for y, p in self.predictions(chunks):
            clipped = np.clip(p, EPS, 1 - EPS)
            loss -= float(np.sum(y * np.log(clipped) + (1 - y) * np.log1p(-clipped)))
            squares += float(np.sum((p - y) ** 2))
            positives += float(y.sum())
            n += len(y)
        if not n:
            return {"log_loss": math.nan, "brier": math.nan, "n": 0, "base_rate": math.nan}
        return {"log_loss": loss / n, "brier": squares / n, "n": int(n), "base_rate": positives / n}

    def _tune_shrinkage(self) -> None:
        """``_DecayCore._tune_shrinkage``: validation log-loss summed chunk by chunk."""
        model = self.model
        effs = [eff for eff in model.effects if eff.column == "user_id"]
        if not effs or not model.config.shrinkage_grid:
            return
        grid = sorted(model.config.shrinkage_grid)
        start = model._shared_tensors()
        losses = []
        for factor in grid:
            self.step = f"shrinkage factor {factor:g}"
            model._set_shared(start)
            for eff in effs:
                eff.shrink(factor)
            self._fit_ml()
            losses.append(self.metrics(self.store.chunks("valid"))["log_loss"])
        bound = min(losses) * (1 + model.config.shrinkage_tolerance)
        chosen = next(f for f, loss in zip(grid, losses, strict=True) if loss <= bound)
        self.step = "final fit"
        model._set_shared(start)
        for eff in effs:
            eff.shrink(chosen)
        self._fit_ml()

    def fit(self) -> _DecayCore:
        """The steps of ``_DecayCore.fit``, in its order."""
        model = self.model
        self.step = "shared parameters"
        self._fit_ml()
        if not model.effects:
            return model
        for column in dict.fromkeys(eff.column for eff in model.effects):
            self.step = f"{column} offsets"
            self._fit_ml(column)
            self._empirical_bayes(column)
        self.step = "shared parameters"
        self._fit_ml()
        self._tune_shrinkage()
        return model


def fit_streaming(
    path: str | os.PathLike[str],
    task_config: TaskConfig | None = None,
    fit_config: DecayFitConfig | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_ROWS,
    spill_dir: str | os.PathLike[str] | None = None,
    in_memory: bool = False,
    max_rows: int = MAX_ROWS,
    on_partition: Callable[[int], None] | None = None,
    on_pass: Callable[[str], None] | None = None,
) -> tuple[ExponentialDecay, dict[str, dict[str, float]], dict[str, Any], StreamReport]:
    """Fit ExponentialDecay on the partitioned dataset at ``path``.

    The prepared chunks go to a new folder inside ``spill_dir`` (default: the system's
    temporary folder), removed at the end; ``in_memory`` keeps them in memory instead.
    ``max_rows``: history rows per autograd graph (:data:`MAX_ROWS`).

    Returns:
        (the fitted model, metrics of valid and test, the data card, the measurement).
    """
    task_config = task_config or TaskConfig()
    model = ExponentialDecay(fit_config)
    log = PartitionedLog.open(path)
    report = StreamReport(dataset=str(log.path), n_partitions=len(log.buckets), batch_size=batch_size)
    start = time.perf_counter()
    folder = None if in_memory else Path(tempfile.mkdtemp(dir=spill_dir, prefix="decaygym-chunks-"))
    try:
        store = ChunkStore(folder, max_rows)
        split, card = prepare(
            log, task_config, model.config.max_events, store, batch_size=batch_size, on_partition=on_partition
        )
        report.seconds["prepare"] = time.perf_counter() - start
        streaming = StreamingFit(model, store, on_pass)
        streaming.fit()
        report.seconds["fit"] = time.perf_counter() - start - report.seconds["prepare"]
        test = partition_chunks(log, split, task_config, model.config.max_events, store, "test", batch_size)
        metrics = {"valid": streaming.metrics(store.chunks("valid")), "test": streaming.metrics(test)}
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    report.seconds["total"] = time.perf_counter() - start
    report.seconds["evaluate"] = report.seconds["total"] - report.seconds["prepare"] - report.seconds["fit"]
    report.n_events = card["n_events"]
    report.max_partition_events = card["max_partition_rows"]
    report.n_users, report.n_categories = card["n_users"], card["n_categories"]
    report.examples, report.history_rows = dict(store.n_examples), dict(store.n_history)
    report.spill_mib = store.bytes / 2**20
    report.passes = streaming.passes
    report.peak_rss_mib = peak_rss_mib()
    return model, metrics, card, report


def max_differences(a: _DecayCore, b: _DecayCore) -> dict[str, float]:
    """Largest absolute difference of each fitted number of two models (ids must match exactly)."""
    sa, sb = a.state(), b.state()
    if sa.keys() != sb.keys():
        raise ConfigError(f"models differ in their parameters: {sorted(sa.keys() ^ sb.keys())}")
    out = {}
    for key in sorted(sa):
        x, y = sa[key].double(), sb[key].double()
        if x.shape != y.shape or (key.endswith(".ids") and not torch.equal(x, y)):
            raise DataValidationError(f"{key}: the two fits have different ids or shapes")
        out[key] = float((x - y).abs().max()) if x.numel() else 0.0
    return out


def compare_in_memory(
    path: str | os.PathLike[str], model: _DecayCore, task_config: TaskConfig, fit_config: DecayFitConfig
) -> dict[str, Any]:
    """Fit in memory on the whole log and measure how far ``model`` (the streaming fit) is from it."""
    from decay_model.logs.dataset import load_partitioned
    from decay_model.metrics import log_loss

    start = time.perf_counter()
    task = EvalTask(load_partitioned(path), task_config)
    reference = ExponentialDecay(fit_config).fit(task)
    seconds = time.perf_counter() - start
    diffs = max_differences(model, reference)
    p_ref, p_stream = reference.predict(task, "valid"), model.predict(task, "valid")
    return {
        "seconds": seconds,
        "peak_rss_mib_after": peak_rss_mib(),
        "max_abs_difference": max(diffs.values()),
        "max_abs_difference_by_parameter": diffs,
        "max_abs_prediction_difference": float(np.max(np.abs(p_ref - p_stream))),
        "valid_log_loss": {
            "in_memory": log_loss(task.labels("valid"), p_ref),
            "streaming": log_loss(task.labels("valid"), p_stream),
        },
        "same_shrinkage": [e.scale for e in model.effects] == [e.scale for e in reference.effects],
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(
        prog="python -m decay_model.streaming",
        description="Fit ExponentialDecay on a Parquet log partitioned by user, one partition in memory "
        "at a time, and report peak memory and events/s.",
    )
    parser.add_argument("--logs", required=True, metavar="DIR", help="dataset folder (bucket=K/*.parquet)")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="run folder for the artifact and streaming.json"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_ROWS,
        help=f"rows per record batch ({DEFAULT_BATCH_ROWS})",
    )
    parser.add_argument(
        "--max-rows", type=int, default=MAX_ROWS, help=f"history rows per autograd graph ({MAX_ROWS})"
    )
    parser.add_argument("--spill-dir", metavar="DIR", help="where prepared chunks go (default: system temp)")
    parser.add_argument("--max-iter", type=int, help="L-BFGS iterations per fit (default: DecayFitConfig's)")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also fit in memory on the whole log and report the largest difference (small logs only)",
    )
    defaults = TaskConfig()
    for name in ("horizon_hours", "step_hours", "train_days", "valid_days", "test_days", "warmup_days"):
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=float,
            default=getattr(defaults, name),
            help=f"(default: {getattr(defaults, name):g})",
        )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Fit, write the artifact and streaming.json, print the measurement."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    args = parse_args(argv)
    task_config = TaskConfig(
        **{
            k: getattr(args, k)
            for k in ("horizon_hours", "step_hours", "train_days", "valid_days", "test_days", "warmup_days")
        }
    )
    if args.max_iter is not None and args.max_iter < 1:
        raise ConfigError(f"--max-iter must be >= 1, got {args.max_iter}")
    if args.max_rows < 1:
        raise ConfigError(f"--max-rows must be >= 1, got {args.max_rows}")
    fit_config = DecayFitConfig() if args.max_iter is None else DecayFitConfig(max_iter=args.max_iter)
    out = Path(args.out)
    console = Console(stderr=True)
    log = PartitionedLog.open(args.logs)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as bar:
        reading = bar.add_task("preparing partitions", total=len(log.buckets))
        fitting = bar.add_task("fitting", total=None)
        model, metrics, card, report = fit_streaming(
            args.logs,
            task_config,
            fit_config,
            batch_size=args.batch_size,
            spill_dir=args.spill_dir,
            max_rows=args.max_rows,
            on_partition=lambda _: bar.advance(reading),
            on_pass=lambda step: bar.update(fitting, advance=1, description=f"fitting: {step}"),
        )
    command = command_line("python -m decay_model.streaming", argv)
    result: dict[str, Any] = {"command": command, **report.to_dict(), "metrics": metrics}
    save_artifact(
        model,
        out / "artifacts" / model.name,
        data=card,
        task_config=task_config,
        metrics=metrics,  # type: ignore[arg-type]
        extra={"command": command},  # timings and memory go to streaming.json, not the artifact
    )
    print(report.summary())
    if args.compare:
        result["in_memory"] = compare_in_memory(args.logs, model, task_config, fit_config)
        print(
            f"in-memory fit: {result['in_memory']['seconds']:.1f} s; largest difference: parameters "
            f"{result['in_memory']['max_abs_difference']:.2e} (test tolerance {TOLERANCE:g}), "
            f"validation probabilities {result['in_memory']['max_abs_prediction_difference']:.2e} "
            f"({PREDICTION_TOLERANCE:g})"
        )
    atomic_write_json(out / "streaming.json", result)
    print(f"run folder: {out}")
    return 0


if __name__ == "__main__":
    run_command("python -m decay_model.streaming", main)
