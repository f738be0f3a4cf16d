"""Dynamic adjustment: re-encode simulated users from the events the simulator generated.

With ``SimConfig.reencode_every = k``, every k visits of a user the neural decay model reads
that user's recent simulated events (browsing views and purchases, clicks and purchases on
the agent's page; a ring of ``reencode_history`` events kept in ``SimState``) and returns a
fresh current interest a, decay rate λ and floor b for every category in them, as it would
for a real user's log. The user's tracked categories found there take the new λ and b, and
both their true interest and the system's estimate become a: the user is re-read by the
model, so their decay adapts as their simulated behaviour unfolds. Categories not in the
recent events keep their state. The model runs batched on its device (CUDA when present).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from decay_model.artifact import load_artifact
from decay_model.errors import ConfigError, SimulationError
from decay_model.logs import from_frame
from envs import state_layout

#: What the model's numbers must be before they enter the state: (field, test, what was expected)
CHECKS = (
    ("interest", lambda x: (x >= 0.0) & (x <= 1.0), "a probability in [0, 1]"),
    ("floor", lambda x: (x >= 0.0) & (x <= 1.0), "a probability in [0, 1]"),
    ("lam", lambda x: x > 0.0, "a decay rate > 0 (1/hour)"),
)

#: The epoch second that stands for every user's "now" in the frame handed to the model
#: (each user's own clock is shifted onto it; the decay model only reads time differences).
NOW = 1_700_000_000


class ReEncoder:
    """A neural decay model bound to the population's category ids.

    Args:
        model: a fitted model with ``encode(log, at)`` (NeuralDecay).
        names: the population's category ids (``Population.names``), in index order.
    """

    def __init__(self, model: Any, names: tuple[str, ...]) -> None:
        self.model = model
        numeric = [int(n) if n.lstrip("-").isdigit() else None for n in names]
        top = max((v for v in numeric if v is not None), default=0)
        # a pooled name such as "other" gets an id of its own that no model knows (read as out of vocabulary)
        spare = iter(range(top + 1, top + 1 + len(names)))
        self.ids = np.asarray([v if v is not None else next(spare) for v in numeric], np.int64)
        order = np.argsort(self.ids)
        self._sorted_ids, self._order = self.ids[order], order

    @classmethod
    def from_artifact(cls, folder: str | Path, names: tuple[str, ...]) -> ReEncoder:
        """Load the neural model of an artifact folder."""
        model, card = load_artifact(folder)
        if card.get("model") != "neural":
            raise ConfigError(
                f"{folder}: re-encoding needs a neural decay artifact, not {card.get('model')!r}"
            )
        return cls(model, names)

    def frame(self, state: Any, rows: NDArray[np.intp]) -> pd.DataFrame:
        """The recent events of ``rows`` as a log frame in the canonical schema (user_id = row)."""
        size = state.hist_cat.shape[1]
        count = np.minimum(state.hist_n[rows], size)
        total = int(count.sum())
        user = np.repeat(rows, count)
        # position of each event in its user's ring, oldest first
        first = np.repeat(state.hist_n[rows] - count, count)
        offset = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        pos = (first + offset) % size
        age_s = np.ceil((state.clock_h[user] - state.hist_time[user, pos]).astype(np.float64) * 3600.0)
        # one second between consecutive events, so that none is a duplicate and their order holds
        ts = NOW - age_s.astype(np.int64) - (np.repeat(count, count) - offset)
        return pd.DataFrame(
            {
                "user_id": user.astype(np.int64),
                "item_id": np.arange(total, dtype=np.int64),
                "category_id": self.ids[state.hist_cat[user, pos]],
                "behavior": state.hist_beh[user, pos].astype(np.int8),
                "timestamp": ts,
            }
        )

    def __call__(self, state: Any, rows: NDArray[np.intp]) -> int:
        """Re-encode users ``rows`` in place; returns how many (user, category) pairs changed."""
        rows = rows[state.hist_n[rows] > 0]
        if not len(rows):
            return 0
        log = from_frame(self.frame(state, rows), name="simulated events")
        enc = self.model.encode(log, at=NOW + 1)
        user = enc["user_id"].to_numpy(np.intp)
        where = np.searchsorted(self._sorted_ids, enc["category_id"].to_numpy(np.int64))
        cat_index = self._order[np.minimum(where, len(self._order) - 1)]
        w = state.cat.shape[1] - 1
        match = state.cat[user, :w] == cat_index[:, None]  # (pairs, W): the tracked column, if any
        hit = match.any(axis=1)
        user, col = user[hit], match[hit].argmax(axis=1)
        values = {name: enc[name].to_numpy(np.float64)[hit] for name, _, _ in CHECKS}
        self.check(state, user, enc["category_id"].to_numpy()[hit], values)
        interest = values["interest"].astype(np.float32)
        state.cats[state_layout.LAM, user, col] = np.clip(values["lam"], 1e-6, 1e3).astype(np.float32)
        state.cats[state_layout.FLOOR, user, col] = values["floor"].astype(np.float32)
        state.cats[state_layout.INTEREST, user, col] = interest
        state.cats[state_layout.ESTIMATE, user, col] = interest
        return int(hit.sum())

    @staticmethod
    def check(
        state: Any, user: NDArray[np.intp], category: NDArray[Any], values: dict[str, NDArray[Any]]
    ) -> None:
        """Raise ``SimulationError`` naming the first user and field whose re-encoded value is unusable.

        Nothing is written before every value passed: a bad model output never reaches the state.
        """
        for name, test, expected in CHECKS:
            x = values[name]
            with np.errstate(invalid="ignore"):
                bad = ~(np.isfinite(x) & test(x))
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                u = int(user[j])
                raise SimulationError(
                    f"re-encoding user {u} of the batch (key {int(state.key[u])}, episode "
                    f"{int(state.episode[u])}, visit {int(state.visit[u])}): the decay model gave "
                    f"{name}={float(x[j])} for category {category[j]}, expected {expected} "
                    f"({int(bad.sum())} such value(s) in this batch)"
                )
