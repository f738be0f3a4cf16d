"""Shared pytest fixtures and the ``--runslow`` switch for end-to-end checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow end-to-end check: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def taobao_path() -> Path:
    """The real Taobao UserBehavior head slice (84,475 rows) kept beside the repository."""
    path = SHARED_DATA / "taobao_userbehavior_head" / "UserBehavior_head.csv"
    if not path.is_file():
        pytest.skip(
            f"{path.relative_to(REPO_ROOT.parent)} not found: "
            "the real-data tests need ../shared beside the repo"
        )
    return path


@pytest.fixture(scope="session")
def obd_path() -> Path:
    """The Open Bandit Dataset small version (random and bts logging, 10,000 rows each) beside the repo."""
    path = SHARED_DATA / "obd_zozotown_small"
    missing = [name for name in ("random/all/all.csv", "bts/all/all.csv") if not (path / name).is_file()]
    if missing:
        pytest.skip(
            f"{(path / missing[0]).relative_to(REPO_ROOT.parent)} not found: "
            "the real-data tests need ../shared beside the repo"
        )
    return path


def _write_obd(
    path: Path,
    counts: dict[int, tuple[int, int]],
    propensity: float | None = 0.0125,
    drop: str | None = None,
) -> Path:
    """An OBD-like all.csv: impressions and clicks per position; constant or varying propensity."""
    positions, clicks = [], []
    for position, (n, k) in counts.items():
        positions += [position] * n
        clicks += [1] * k + [0] * (n - k)
    rows = len(positions)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2019-11-24", periods=rows, freq="min", tz="UTC").astype(str),
            "item_id": np.arange(rows) % 80,
            "position": positions,
            "click": clicks,
            "propensity_score": np.full(rows, propensity)
            if propensity is not None
            else rng.uniform(0.01, 0.5, rows),
            "user_feature_0": "81ce123cbb5bd8ce818f60fb3586bba5",
        }
    )
    if drop:
        frame = frame.drop(columns=drop)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path)  # the unnamed row index first, as in OBD
    return path


@pytest.fixture(scope="session")
def write_obd() -> Any:
    """``_write_obd``, for the position-bias tests of the statistics and of the command."""
    return _write_obd


class StubDecay:
    """A decay 'model' that encodes every (user, category) pair with fixed numbers: no fit, no time."""

    def __init__(self, interest: float = 0.3, lam: float = 0.1, floor: float = 0.02) -> None:
        self.values = {"interest": interest, "lam": lam, "floor": floor}

    def encode(self, log: Any, at: int) -> pd.DataFrame:
        ev = log.events[log.events["timestamp"] < at]
        pairs = ev.groupby(["user_id", "category_id"]).size().rename("n_events").reset_index()
        return pairs.assign(**self.values)[["user_id", "category_id", "interest", "lam", "floor", "n_events"]]


@pytest.fixture(scope="session")
def stub_decay() -> type[StubDecay]:
    """``StubDecay``, for tests of the fidelity report and calibration that need no fitted model."""
    return StubDecay


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread for the test, then as it was (a module opts in with ``usefixtures``).

    Small batches gain nothing from threads but synchronisation, and tests on a 2-core machine
    must not oversubscribe it.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
