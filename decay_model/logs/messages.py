"""One-line messages for bad input: each names the file, column, line, value and what was expected."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from decay_model.errors import DataValidationError


def show(value: object, limit: int = 60) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters, so messages stay one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message (pyarrow's can span several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def bad_value(
    name: str, column: str, where: str, problem: str, value: object, expected: str
) -> DataValidationError:
    """Build the one-line DataValidationError for one offending cell."""
    return DataValidationError(
        f"{name}: column {column}, {where}: {problem} {show(value)}; expected {expected}"
    )


def first_true(mask: np.ndarray | pa.Array | pa.ChunkedArray) -> int | None:
    """Return the position of the first true value of a boolean mask, or None."""
    if isinstance(mask, pa.Array | pa.ChunkedArray):
        mask = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None
