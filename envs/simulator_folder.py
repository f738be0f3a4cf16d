"""A simulator built from a team's own logs, as one folder, and how commands read it.

``decaygym-build-sim`` (``envs.build``) writes the folder; everything that accepts a preset
accepts the folder instead (``--sim DIR``, ``gymnasium.make(..., sim=DIR)``). The folder is
self-describing:

- ``card.json``: what it is (``kind``, ``format_version``), what it was built from (the log's
  sha256, the command line, package versions), its ``fingerprint`` and its parts. It is written
  last, so a folder without it is an unfinished build.
- ``sim_config.json``: the calibrated ``SimConfig`` fields; ``artifact`` is relative to the folder.
- ``decay/``: the fitted decay artifact (``decay_model.artifact``) with the population users are
  drawn from; ``neural/`` too when the build fitted the neural model, ``supplied/`` when it was
  given a fitted artifact (``--artifact``).
- ``activity.json``, ``calibration.json``, ``fidelity/``: the fits and the report behind the config.
- ``stages.json``: the build's stage markers, so that an interrupted build resumes.

Reading needs JSON only (no torch, no pandas), like ``decay_model.cards``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from decay_model.errors import ConfigError
from envs.config import SimConfig

FORMAT_VERSION = 1
"""The folder layout's version: a folder of another version is refused, not guessed at."""
KIND = "decaygym simulator"
CARD = "card.json"
SIM_CONFIG = "sim_config.json"
STAGES = "stages.json"
ACTIVITY = "activity.json"
CALIBRATION = "calibration.json"
FIDELITY = "fidelity"
DECAY = "decay"
NEURAL = "neural"
SUPPLIED = "supplied"

REQUIRED_PARTS: dict[str, str] = {
    CARD: "the card (the build did not finish)",
    SIM_CONFIG: "the calibrated simulator config",
}
"""Files a usable folder must hold, and what each is (for the error message)."""


def _fail(folder: Path, why: str) -> ConfigError:
    return ConfigError(f"simulator folder {folder}: {why}; rebuild it with decaygym-build-sim")


def read_sim_card(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The folder's card, checked for kind and format version; ConfigError names what is wrong."""
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"simulator folder {path}: no such folder (build one with decaygym-build-sim)")
    for name, what in REQUIRED_PARTS.items():
        if not (path / name).is_file():
            raise _fail(path, f"{name} is missing ({what})")
    try:
        card = json.loads((path / CARD).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"{CARD} is not valid JSON ({exc})") from exc
    if not isinstance(card, dict) or card.get("kind") != KIND:
        raise _fail(path, f"{CARD} is not a simulator card (kind {card.get('kind')!r}, expected {KIND!r})")
    if card.get("format_version") != FORMAT_VERSION:
        raise _fail(
            path,
            f"{CARD} has format_version {card.get('format_version')!r}, this decaygym reads "
            f"format {FORMAT_VERSION}",
        )
    return card


def load_sim(folder: str | os.PathLike[str]) -> SimConfig:
    """The folder's calibrated ``SimConfig`` (its artifact resolved against the folder)."""
    path = Path(folder)
    card = read_sim_card(path)
    try:
        values = json.loads((path / SIM_CONFIG).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"{SIM_CONFIG} is not valid JSON ({exc})") from exc
    if not isinstance(values, dict):
        raise _fail(path, f"{SIM_CONFIG} must hold a mapping of SimConfig fields")
    known = {f.name for f in fields(SimConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise _fail(path, f"{SIM_CONFIG} has fields this SimConfig does not know: {unknown}")
    if values.get("artifact") is not None:
        artifact = path / str(values["artifact"])
        if not (artifact / "card.json").is_file():
            raise _fail(
                path, f"the decay artifact {values['artifact']}/ is missing (sim_config.json's artifact)"
            )
        values["artifact"] = str(artifact)
    if "gap_residual_quantiles" in values:
        values["gap_residual_quantiles"] = tuple(values["gap_residual_quantiles"])
    expected = card.get("sim_config_sha256")
    if expected is not None and expected != sha256_file(path / SIM_CONFIG):
        raise _fail(path, f"{SIM_CONFIG} was changed after the build (its sha256 differs from the card's)")
    try:
        return SimConfig(**values)
    except ConfigError as exc:
        raise _fail(path, f"{SIM_CONFIG}: {exc}") from exc


def sim_provenance(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """What a run folder records of the simulator it ran on: path, fingerprint, the log's sha256."""
    card = read_sim_card(folder)
    return {
        "path": str(folder),
        "fingerprint": card.get("fingerprint"),
        "data_sha256": card.get("data", {}).get("sha256"),
        "built": card.get("created"),
    }


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes, read in chunks (logs can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
