"""Save and load fitted decay models as small, self-describing artifacts.

Reading a card or a population summary needs no torch: those live in ``decay_model.cards``
(re-exported here), so that the simulator can read them without loading the model.

An artifact is a folder with two files:

- ``params.pt``: the fitted numbers, a flat ``dict[str, torch.Tensor]`` loaded
  with ``weights_only=True`` (no pickled code runs on load);
- ``card.json``: what the model is (name, format version, its config), what it
  was fitted on (the log's fingerprint and size, the task), how well it did
  (metrics), the package and torch versions, and the sha256 of ``params.pt`` so
  that a truncated or edited file is caught on load.

Both files are written atomically (temporary file, then rename), the card last,
so an interrupted save never leaves an artifact that loads.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from decay_model.atomic import atomic_write_bytes, atomic_write_json, json_default
from decay_model.cards import (
    CARD,
    FORMAT_VERSION,
    PARAMS,
    POPULATION,
    load_population,
    package_version,
    read_card,
)
from decay_model.errors import ArtifactError
from decay_model.logs.schema import BehaviourLog
from decay_model.registry import REGISTRY, DecayModel, register_model
from decay_model.task import EvalTask, TaskConfig


def data_card(log: BehaviourLog) -> dict[str, Any]:
    """What a model was fitted on: enough to recognise the same data again."""
    return {
        "name": Path(log.report.path).name,
        "source": log.report.source,
        "fingerprint": log.fingerprint(),
        "n_events": log.n_events,
        "n_users": log.n_users,
        "n_categories": log.n_categories,
        "t_min": log.t_min,
        "t_max": log.t_max,
    }


def save_artifact(
    model: DecayModel,
    directory: str | os.PathLike[str],
    *,
    log: BehaviourLog | None = None,
    task_config: TaskConfig,
    metrics: dict[str, dict[str, float]] | None = None,
    population: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> Path:
    """Write ``params.pt`` (and ``population.json``), then ``card.json``; returns the folder.

    The card describes the data by :func:`data_card` of ``log``, or by ``data`` for a log that
    was never held in memory whole (decay_model.streaming).
    """
    if (log is None) == (data is None):
        raise ArtifactError("save_artifact: pass the log the model was fitted on, or its data card, not both")
    folder = Path(directory)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state().items()}, buffer)
    params = buffer.getvalue()
    atomic_write_bytes(folder / PARAMS, params)
    hashes = {"params_sha256": hashlib.sha256(params).hexdigest()}
    if population is not None:
        blob = (json.dumps(population, indent=1, sort_keys=True, default=json_default) + "\n").encode()
        atomic_write_bytes(folder / POPULATION, blob)
        hashes["population_sha256"] = hashlib.sha256(blob).hexdigest()
    card = {
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "config": model.config_dict(),
        "summary": model.describe(),
        "data": data_card(log) if log is not None else data,
        "task": task_config.to_dict(),
        "metrics": metrics or {},
        **hashes,
        "versions": {"decaygym": package_version(), "torch": torch.__version__, "numpy": np.__version__},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    atomic_write_json(folder / CARD, card)
    return folder


def load_artifact(
    directory: str | os.PathLike[str], *, expect_fingerprint: str | None = None
) -> tuple[DecayModel, dict[str, Any]]:
    """Load a fitted model and its card; every mismatch raises ArtifactError naming the cause."""
    folder = Path(directory)
    card = read_card(folder)
    name = card["model"]
    if name not in REGISTRY:
        import decay_model.models  # noqa: F401  (registers the built-in models)
    if name not in REGISTRY:
        raise ArtifactError(f"{folder / CARD}: unknown model {name!r}; known: {', '.join(sorted(REGISTRY))}")
    params_path = folder / PARAMS
    if not params_path.is_file():
        raise ArtifactError(f"{folder}: {PARAMS} is missing")
    params = params_path.read_bytes()
    if hashlib.sha256(params).hexdigest() != card.get("params_sha256"):
        raise ArtifactError(f"{params_path}: corrupted: its sha256 does not match the card's params_sha256")
    fitted_on = card.get("data", {}).get("fingerprint")
    if expect_fingerprint is not None and fitted_on != expect_fingerprint:
        raise ArtifactError(
            f"{folder}: fitted on data with fingerprint {fitted_on!r}, "
            f"not the expected {expect_fingerprint!r}"
        )
    try:
        state = torch.load(io.BytesIO(params), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for a bad file
        raise ArtifactError(f"{params_path}: not a readable parameter file ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArtifactError(f"{params_path}: expected a mapping of names to tensors")
    try:
        model = REGISTRY[name](card.get("config", {}))
        model.load_state(state)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        raise ArtifactError(f"{folder}: parameters do not fit model {name!r}: {exc!r}") from exc
    return model, card


__all__ = [
    "CARD",
    "FORMAT_VERSION",
    "PARAMS",
    "POPULATION",
    "DecayModel",
    "atomic_write_bytes",
    "atomic_write_json",
    "data_card",
    "fit_and_save",
    "load_artifact",
    "load_population",
    "package_version",
    "read_card",
    "register_model",
    "save_artifact",
]


def fit_and_save(
    model: DecayModel,
    task: EvalTask,
    directory: str | os.PathLike[str],
    *,
    log: BehaviourLog,
    periods: tuple[str, ...] = ("valid", "test"),
    extra: dict[str, Any] | None = None,
) -> tuple[DecayModel, dict[str, dict[str, float | None]], dict[str, np.ndarray], Any]:
    """Fit ``model`` on the task, score it per period and save it as an artifact with its population.

    One place for what ``decaygym-fit-decay`` and the simulator build both do with a model, so
    that an artifact's metrics and population mean the same thing whoever wrote it.

    Returns:
        (fitted model, metrics per period (NaN as None), predictions per period, the users as the
        training period left them, ``model.encode(log, at=valid_start)``, or None for models
        without ``encode``).
    """
    from decay_model.metrics import evaluate
    from decay_model.population import summarize_population
    from decay_model.ranking import ranking_metrics

    fitted = model.fit(task)
    metrics: dict[str, dict[str, float | None]] = {}
    predictions: dict[str, np.ndarray] = {}
    for period in periods:
        p = fitted.predict(task, period)
        predictions[period] = p
        scores = {**evaluate(task.labels(period), p), **ranking_metrics(task, period, p)}
        metrics[period] = {
            k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in scores.items()
        }
    # Users as the training period left them: what the simulator bootstraps from.
    encode = getattr(fitted, "encode", None)
    encoded = encode(log, at=task.split.valid_start) if encode else None
    save_artifact(
        fitted,
        directory,
        log=log,
        task_config=task.config,
        metrics=metrics,  # type: ignore[arg-type]
        population=summarize_population(encoded) if encoded is not None else None,
        extra=extra,
    )
    return fitted, metrics, predictions, encoded
