"""The two things every report plot needs: pyplot on a file backend, and an atomic PNG write.

matplotlib is imported only when a plot is drawn, so importing a module that can plot costs
nothing.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from decay_model.atomic import atomic_write_bytes


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, imported only when a plot is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path) -> None:
    """Write a figure as PNG atomically, so an interrupted run never leaves half a file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(Path(path), buffer.getvalue())
