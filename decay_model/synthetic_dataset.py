"""A synthetic log of any size, written chunk by chunk as a partitioned Parquet dataset.

The events are those of :func:`decay_model.synthetic.generate`: users are drawn one after
another from one generator, a chunk of users at a time, and each chunk goes straight to the
dataset's user buckets (:class:`~decay_model.logs.dataset.PartitionedLogWriter`), so memory holds
one chunk, never the log. Users are added until ``n_events`` is reached; the last user is kept
whole. The metadata records the config with the number of users drawn, and
``generate(that config, seed)`` gives the same events.

Command line (progress on stderr, a summary line on stdout)::

    python -m decay_model.synthetic_dataset --events 10000000 --out DIR
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from decay_model.errors import ConfigError, run_command
from decay_model.logs.dataset import PartitionedLogWriter
from decay_model.memory import peak_rss_mib
from decay_model.synthetic import SyntheticConfig, _draw_users, _Dynamics

DEFAULT_BUCKET_EVENTS = 1_000_000
"""Events per partition the writer aims at: what the streaming fit holds at once."""

DEFAULT_CHUNK_USERS = 10_000
"""Users drawn before each write (about 700,000 events with the default config)."""


def write_synthetic_dataset(
    path: str | os.PathLike[str],
    n_events: int,
    config: SyntheticConfig | None = None,
    seed: int = 0,
    *,
    bucket_events: int = DEFAULT_BUCKET_EVENTS,
    chunk_users: int = DEFAULT_CHUNK_USERS,
    overwrite: bool = False,
    on_chunk: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write about ``n_events`` synthetic events to a new dataset at ``path``; returns its metadata.

    ``bucket_events`` sets the number of user buckets (``ceil(n_events / bucket_events)``);
    ``chunk_users`` only trades memory for fewer, larger row groups and does not change the
    events. ``on_chunk`` is called with the number of events of each chunk written.
    """
    for name, value in (
        ("n_events", n_events),
        ("bucket_events", bucket_events),
        ("chunk_users", chunk_users),
    ):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(seed)
    dyn = _Dynamics.draw(cfg, rng)
    written, next_user = 0, 1
    with PartitionedLogWriter(path, math.ceil(n_events / bucket_events), overwrite=overwrite) as writer:
        per_user = min(cfg.categories_per_user, cfg.n_categories) * cfg.base_rate_per_day * cfg.days
        per_user /= 1 - cfg.branching  # expected events of a user: its pairs' immigrants and offspring
        while written < n_events:
            # Near the end, draw about the users still needed rather than a whole chunk.
            n_users = min(chunk_users, 1 + math.ceil(1.2 * (n_events - written) / per_user))
            events = _draw_users(rng, cfg, dyn, next_user, n_users)
            users = events["user_id"]
            if len(users) > n_events - written:
                # Keep the users up to the one whose events reach n_events (users are in order).
                last = users[n_events - written - 1]
                keep = users <= last
                events = {c: v[keep] for c, v in events.items()}
                n_users = int(last) - next_user + 1
            writer.write(events)
            written += len(events["user_id"])
            next_user += n_users
            if on_chunk is not None:
                on_chunk(len(events["user_id"]))
        metadata = {
            "generator": "decay_model.synthetic_dataset",
            "seed": seed,
            "config": asdict(replace(cfg, n_users=next_user - 1)),
            "true_lambda": {str(c): lam for c, lam in dyn.truth().items()},
            "n_users": next_user - 1,
        }
        writer.close(metadata)
    return {**metadata, "n_rows": written, "n_buckets": writer.n_buckets}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(
        prog="python -m decay_model.synthetic_dataset",
        description="Write a large synthetic behaviour log as a Parquet dataset partitioned by user.",
    )
    parser.add_argument("--events", type=float, required=True, help="events to write, e.g. 1e8")
    parser.add_argument("--out", required=True, metavar="DIR", help="new dataset folder")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument(
        "--bucket-events",
        type=float,
        default=DEFAULT_BUCKET_EVENTS,
        help=f"events per user bucket (default: {DEFAULT_BUCKET_EVENTS:.0e})",
    )
    parser.add_argument(
        "--chunk-users",
        type=int,
        default=DEFAULT_CHUNK_USERS,
        help=f"users drawn per write (default: {DEFAULT_CHUNK_USERS})",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dataset with a progress bar; print events, users, buckets, time and peak memory."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    args = parse_args(argv)
    for option, value in (("--events", args.events), ("--bucket-events", args.bucket_events)):
        if not (math.isfinite(value) and value == round(value) and value >= 1):
            raise ConfigError(f"{option} must be a whole number >= 1, got {value:g}")
    n_events, bucket_events = round(args.events), round(args.bucket_events)
    console = Console(stderr=True)
    start = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"))
    with Progress(
        *columns, TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not console.is_terminal
    ) as bar:
        task = bar.add_task("events", total=n_events)
        meta = write_synthetic_dataset(
            args.out,
            n_events,
            seed=args.seed,
            bucket_events=bucket_events,
            chunk_users=args.chunk_users,
            overwrite=args.overwrite,
            on_chunk=lambda n: bar.advance(task, n),
        )
    wall = time.perf_counter() - start
    print(
        f"wrote {meta['n_rows']:,} events of {meta['n_users']:,} users in {meta['n_buckets']} buckets to "
        f"{Path(args.out)} in {wall:.1f} s ({meta['n_rows'] / wall:,.0f} events/s, "
        f"peak memory {peak_rss_mib():,.0f} MiB)"
    )
    return 0


if __name__ == "__main__":
    run_command("python -m decay_model.synthetic_dataset", main)
