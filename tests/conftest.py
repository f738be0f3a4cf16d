"""Shared pytest fixtures and the ``--runslow`` switch for end-to-end checks."""

from __future__ import annotations

from pathlib import Path

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
