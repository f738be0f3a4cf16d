"""An artifact's card and population summary, read without torch (the simulator's view of an artifact).

An artifact folder holds ``card.json`` (what the model is, what it was fitted on, its metrics and
the sha256 of the other files), ``params.pt`` (the fitted numbers, read by
``decay_model.artifact.load_artifact``) and, for artifacts the simulator can draw users from,
``population.json``. Everything here reads JSON only.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from decay_model.errors import ArtifactError

FORMAT_VERSION = 1
CARD = "card.json"
PARAMS = "params.pt"
POPULATION = "population.json"
PRETRAINED = Path(__file__).resolve().parent / "pretrained" / "taobao_neural"
"""The pretrained decay artifact shipped with the package (fitted on the Taobao log; see its card)."""


def package_version() -> str:
    """Installed decaygym version, or "unknown" when run from a bare checkout."""
    try:
        return metadata.version("decaygym")
    except metadata.PackageNotFoundError:
        return "unknown"


def read_card(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The artifact's card, validated for format; raises ArtifactError with the reason."""
    folder = Path(directory)
    card_path = folder / CARD
    if not folder.exists():
        raise ArtifactError(f"{folder}: no such artifact folder")
    if not card_path.is_file():
        raise ArtifactError(
            f"{folder}: not a decay artifact (no {CARD}); expected a folder written by save_artifact"
        )
    try:
        card = json.loads(card_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{card_path}: corrupted card, not valid JSON ({exc})") from exc
    if not isinstance(card, dict) or "format_version" not in card or "model" not in card:
        raise ArtifactError(f"{card_path}: corrupted card: format_version or model missing")
    for key in ("config", "data", "metrics"):
        if not isinstance(card.get(key, {}), dict):
            raise ArtifactError(f"{card_path}: corrupted card: {key!r} must be a mapping")
    if card["format_version"] != FORMAT_VERSION:
        raise ArtifactError(
            f"{card_path}: artifact format {card['format_version']!r}, but this decaygym reads format "
            f"{FORMAT_VERSION}; refit the model with this version"
        )
    return card


def load_population(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The artifact's population summary (per-category distributions of λ and b)."""
    folder = Path(directory)
    card = read_card(folder)
    path = folder / POPULATION
    if "population_sha256" not in card:
        raise ArtifactError(f"{folder}: this artifact carries no population summary")
    if not path.is_file():
        raise ArtifactError(f"{folder}: {POPULATION} is missing")
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != card["population_sha256"]:
        raise ArtifactError(f"{path}: corrupted: its sha256 does not match the card's population_sha256")
    return json.loads(blob)
