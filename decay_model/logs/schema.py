"""The canonical event schema every log is read into, and the log and report loading returns.

The columns, their dtypes and meaning are tabled in the :mod:`decay_model.logs` docstring.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

BEHAVIORS: tuple[str, ...] = ("view", "click", "cart", "fav", "buy")
"""The canonical behaviour vocabulary; an event's ``behavior`` code is its index here."""

REQUIRED_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "category_id", "behavior", "timestamp")
"""Columns every log must provide (directly, through an alias, or by position)."""

OPTIONAL_COLUMNS: tuple[str, ...] = ("duration",)
"""Columns that are kept when present."""

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

ALIAS_TO_COLUMN: Mapping[str, str] = MappingProxyType(
    {alias: column for column, aliases in COLUMN_ALIASES.items() for alias in aliases}
)
"""Accepted header name (lower case) -> its canonical column."""

_FINGERPRINT_VERSION = b"decaygym-behaviour-log-v1"


class LogWarning(UserWarning):
    """A log was loaded, but something about it limits what it can tell (e.g. date-only times)."""


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
    """A validated, cleaned event log in the canonical schema (see the :mod:`decay_model.logs` docstring).

    Attributes:
        events: The events; columns and dtypes as in the :mod:`decay_model.logs` docstring, sorted stably by
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
