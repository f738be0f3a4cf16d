"""Tests of model artifacts: exact round trips, the card, and every way loading must fail."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import decay_model.artifact as artifact
from decay_model import (
    MODELS,
    DecayFitConfig,
    EvalTask,
    ExponentialDecay,
    GlobalDecay,
    Popularity,
    TaskConfig,
)
from decay_model.artifact import CARD, FORMAT_VERSION, PARAMS, load_artifact, save_artifact
from decay_model.errors import ArtifactError
from decay_model.logs import BehaviourLog
from decay_model.synthetic import SyntheticConfig, generate

# The models this file fits and saves (others may be registered in MODELS too).
NAMES = ("popularity", "global_decay", "exponential")
# Few iterations and no shrinkage tuning keep ExponentialDecay's fit to about a second; the
# round trip does not need a converged fit. Non-default settings also test that the config
# survives the card.
FAST = DecayFitConfig(max_iter=20, shrinkage_grid=())


class Fitted:
    def __init__(self, log: BehaviourLog, task: EvalTask, models: dict[str, Any], root: Path) -> None:
        self.log = log
        self.task = task
        self.models = models
        self.root = root

    def folder(self, name: str) -> Path:
        return self.root / name


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    log = generate(SyntheticConfig(n_users=40, n_categories=4), seed=2).log
    task = EvalTask(log, TaskConfig())
    models = {
        "popularity": Popularity(prior_strength=7.0).fit(task),
        "global_decay": GlobalDecay(FAST).fit(task),
        "exponential": ExponentialDecay(FAST).fit(task),
    }
    root = tmp_path_factory.mktemp("artifacts")
    for name, model in models.items():
        save_artifact(
            model,
            root / name,
            log=log,
            task_config=task.config,
            metrics={"test": {"log_loss": 0.5}},
            extra={"command": "pytest"},
        )
    return Fitted(log, task, models, root)


def copy_of(fitted: Fitted, name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(fitted.folder(name), target)
    return target


def edit_card(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    card = json.loads((folder / CARD).read_text())
    change(card)
    (folder / CARD).write_text(json.dumps(card))


def replace_params(folder: Path, data: bytes) -> None:
    """New params.pt with a card hash that matches it (past the integrity check)."""
    (folder / PARAMS).write_bytes(data)
    edit_card(folder, lambda c: c.update(params_sha256=hashlib.sha256(data).hexdigest()))


def load_error(folder: Path, **kwargs: Any) -> str:
    with pytest.raises(ArtifactError) as info:
        load_artifact(folder, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# --------------------------------------------------------------------------------------------
# Round trip and card
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_predicts_identically(fitted: Fitted, name: str) -> None:
    original = fitted.models[name]
    loaded, card = load_artifact(fitted.folder(name), expect_fingerprint=fitted.log.fingerprint())
    assert type(loaded) is type(original)
    assert loaded.config_dict() == original.config_dict()
    for period in ("train", "valid", "test"):
        p = original.predict(fitted.task, period)
        assert 0 < p.min() and p.max() < 1
        np.testing.assert_array_equal(loaded.predict(fitted.task, period), p)
    assert card["model"] == name


def test_round_trip_keeps_non_default_settings(fitted: Fitted) -> None:
    loaded, _ = load_artifact(fitted.folder("exponential"))
    assert isinstance(loaded, ExponentialDecay)
    assert loaded.config == FAST
    assert loaded.category_rates() == fitted.models["exponential"].category_rates()
    popularity, _ = load_artifact(fitted.folder("popularity"))
    assert isinstance(popularity, Popularity)
    assert popularity.prior_strength == 7.0


def test_fits_are_not_trivial(fitted: Fitted) -> None:
    # A round trip of an unfitted model would also be identical; make sure these learned something.
    assert len(fitted.models["popularity"].category_ids) == fitted.log.n_categories
    assert len(set(np.round(list(fitted.models["exponential"].category_rates().values()), 12))) > 1
    p = fitted.models["global_decay"].predict(fitted.task, "test")
    assert p.std() > 0.01


@pytest.mark.parametrize("name", NAMES)
def test_card_contents(fitted: Fitted, name: str) -> None:
    folder = fitted.folder(name)
    card = json.loads((folder / CARD).read_text())
    assert card["format_version"] == FORMAT_VERSION
    assert card["model"] == name
    assert card["config"] == json.loads(json.dumps(fitted.models[name].config_dict()))
    assert card["data"]["fingerprint"] == fitted.log.fingerprint()
    assert card["data"]["n_events"] == fitted.log.n_events
    assert card["data"]["t_max"] == fitted.log.t_max
    assert card["params_sha256"] == hashlib.sha256((folder / PARAMS).read_bytes()).hexdigest()
    assert set(card["versions"]) >= {"decaygym", "torch", "numpy"}
    assert card["versions"]["torch"] == torch.__version__
    assert card["versions"]["numpy"] == np.__version__
    assert card["task"] == TaskConfig().to_dict()
    assert card["metrics"] == {"test": {"log_loss": 0.5}}
    assert card["command"] == "pytest"  # extra keys land at the top level
    assert isinstance(card["summary"], dict) and card["summary"]


def test_save_leaves_no_temporary_files(fitted: Fitted, tmp_path: Path) -> None:
    folder = tmp_path / "nested" / "a"  # missing parents are created
    for _ in range(2):  # a fresh save, then an overwrite
        save_artifact(fitted.models["exponential"], folder, log=fitted.log, task_config=fitted.task.config)
        assert sorted(p.name for p in folder.iterdir()) == [CARD, PARAMS]
    for name in NAMES:
        assert sorted(p.name for p in fitted.folder(name).iterdir()) == [CARD, PARAMS]


def test_failed_write_cleans_up_its_temporary_file(
    fitted: Fitted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError("disk full")

    folder = tmp_path / "a"
    with monkeypatch.context() as m:
        m.setattr(artifact.os, "replace", refuse)
        with pytest.raises(OSError, match="disk full"):
            save_artifact(fitted.models["popularity"], folder, log=fitted.log, task_config=fitted.task.config)
    assert list(folder.iterdir()) == []


def test_interrupted_overwrite_never_loads(fitted: Fitted, tmp_path: Path) -> None:
    # The card is written last: if it fails, the old card no longer matches the new params.pt.
    folder = copy_of(fitted, "popularity", tmp_path)
    with pytest.raises(TypeError, match="not JSON serialisable"):
        save_artifact(
            fitted.models["exponential"],
            folder,
            log=fitted.log,
            task_config=fitted.task.config,
            extra={"bad": object()},
        )
    assert sorted(p.name for p in folder.iterdir()) == [CARD, PARAMS]
    assert "sha256" in load_error(folder)


# --------------------------------------------------------------------------------------------
# Loading errors
# --------------------------------------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    assert "no such artifact folder" in load_error(tmp_path / "nowhere")


def test_folder_without_card(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    message = load_error(tmp_path / "empty")
    assert "not a decay artifact" in message and CARD in message


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00garbage", b""])
def test_card_not_json(fitted: Fitted, tmp_path: Path, content: bytes) -> None:
    folder = copy_of(fitted, "popularity", tmp_path)
    (folder / CARD).write_bytes(content)
    message = load_error(folder)
    assert "corrupted card" in message and "not valid JSON" in message


@pytest.mark.parametrize("content", ["[1, 2]", '{"model": "popularity"}', '{"format_version": 1}'])
def test_card_without_format_or_model(fitted: Fitted, tmp_path: Path, content: str) -> None:
    folder = copy_of(fitted, "popularity", tmp_path)
    (folder / CARD).write_text(content)
    assert "format_version or model missing" in load_error(folder)


def test_format_version_bumped(fitted: Fitted, tmp_path: Path) -> None:
    folder = copy_of(fitted, "popularity", tmp_path)
    edit_card(folder, lambda c: c.update(format_version=FORMAT_VERSION + 1))
    message = load_error(folder)
    assert f"artifact format {FORMAT_VERSION + 1}" in message
    assert f"reads format {FORMAT_VERSION}" in message


def test_unknown_model(fitted: Fitted, tmp_path: Path) -> None:
    folder = copy_of(fitted, "popularity", tmp_path)
    edit_card(folder, lambda c: c.update(model="transformer"))
    message = load_error(folder)
    assert "unknown model 'transformer'" in message
    assert all(name in message for name in MODELS)


@pytest.mark.parametrize("name", ["popularity", "exponential"])
def test_params_truncated(fitted: Fitted, tmp_path: Path, name: str) -> None:
    folder = copy_of(fitted, name, tmp_path)
    data = (folder / PARAMS).read_bytes()
    (folder / PARAMS).write_bytes(data[: len(data) // 2])
    message = load_error(folder)
    assert PARAMS in message and "sha256" in message


def test_params_edited(fitted: Fitted, tmp_path: Path) -> None:
    folder = copy_of(fitted, "exponential", tmp_path)
    data = bytearray((folder / PARAMS).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    (folder / PARAMS).write_bytes(bytes(data))
    assert "does not match the card's params_sha256" in load_error(folder)


def test_params_missing(fitted: Fitted, tmp_path: Path) -> None:
    folder = copy_of(fitted, "global_decay", tmp_path)
    (folder / PARAMS).unlink()
    assert f"{PARAMS} is missing" in load_error(folder)


def test_expect_fingerprint(fitted: Fitted, tmp_path: Path) -> None:
    other = generate(SyntheticConfig(n_users=10, n_categories=2), seed=9).log.fingerprint()
    message = load_error(fitted.folder("popularity"), expect_fingerprint=other)
    assert "fingerprint" in message
    assert other in message and fitted.log.fingerprint() in message
    load_artifact(fitted.folder("popularity"), expect_fingerprint=fitted.log.fingerprint())


def test_params_of_another_model(fitted: Fitted, tmp_path: Path) -> None:
    # Hash-consistent, but the tensors belong to Popularity, not to ExponentialDecay.
    folder = copy_of(fitted, "exponential", tmp_path)
    replace_params(folder, (fitted.folder("popularity") / PARAMS).read_bytes())
    assert "parameters do not fit model 'exponential'" in load_error(folder)


def test_bad_config_in_card(fitted: Fitted, tmp_path: Path) -> None:
    folder = copy_of(fitted, "exponential", tmp_path)
    edit_card(folder, lambda c: c["config"].update(max_iter=0))
    assert "parameters do not fit model 'exponential'" in load_error(folder)


def test_params_not_a_torch_file_with_matching_hash(fitted: Fitted, tmp_path: Path) -> None:
    folder = copy_of(fitted, "popularity", tmp_path)
    replace_params(folder, b"not a torch file")
    assert "not a readable parameter file" in load_error(folder)


def test_params_holding_a_bare_tensor(fitted: Fitted, tmp_path: Path) -> None:
    folder = copy_of(fitted, "popularity", tmp_path)
    buffer = io.BytesIO()
    torch.save(torch.zeros(3), buffer)
    replace_params(folder, buffer.getvalue())
    assert "mapping of names to tensors" in load_error(folder)


@pytest.mark.parametrize("key", ["config", "data"])
def test_card_sections_of_the_wrong_type(fitted: Fitted, tmp_path: Path, key: str) -> None:
    folder = copy_of(fitted, "popularity", tmp_path)
    edit_card(folder, lambda c: c.update({key: []}))
    assert f"'{key}' must be a mapping" in load_error(folder)


def test_tensor_roundtrip_bytes_are_plain_tensors(fitted: Fitted) -> None:
    # params.pt is readable with weights_only=True (no pickled code) and holds only tensors.
    state = torch.load(io.BytesIO((fitted.folder("exponential") / PARAMS).read_bytes()), weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    assert set(state) == set(fitted.models["exponential"].state())
