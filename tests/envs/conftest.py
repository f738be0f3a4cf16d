"""Helpers shared by the envs tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest


def write_fake_artifact(folder: Path, summary: dict) -> Path:
    """A minimal artifact folder whose population.json passes load_population's checks."""
    folder.mkdir(parents=True, exist_ok=True)
    blob = (json.dumps(summary) + "\n").encode()
    (folder / "population.json").write_bytes(blob)
    card = {
        "format_version": 1,
        "model": "exponential",
        "population_sha256": hashlib.sha256(blob).hexdigest(),
    }
    (folder / "card.json").write_text(json.dumps(card))
    return folder


@pytest.fixture
def fake_artifact():
    return write_fake_artifact
