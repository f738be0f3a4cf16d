"""The pretrained NeuralDecay artifact shipped inside the package: loads and predicts without ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import decay_model
from decay_model import EvalTask, NeuralDecay, load_artifact
from decay_model.artifact import load_population
from decay_model.population import check_encoded
from decay_model.synthetic import SyntheticConfig, generate

PRETRAINED = Path(decay_model.__file__).parent / "pretrained" / "taobao_neural"


def test_pretrained_loads_and_predicts_without_shared_data() -> None:
    if not (PRETRAINED / "card.json").is_file():
        pytest.fail(f"the pretrained artifact is missing from the package: {PRETRAINED.name}")
    model, card = load_artifact(PRETRAINED)
    assert isinstance(model, NeuralDecay)
    assert card["data"]["source"] == "taobao" and card["command"].startswith("python -m scripts.fit_decay")
    assert {"log_loss", "auc", "hr@10"} <= set(card["metrics"]["test"])
    assert load_population(PRETRAINED)["n_pairs"] > 0
    # Any log will do: the built-in synthetic one (its categories are out of vocabulary).
    task = EvalTask(generate(SyntheticConfig(n_users=40, n_categories=8), seed=0).log)
    p = model.predict(task, "test")
    assert p.shape == (len(task.examples("test")),) and np.all((p > 0) & (p < 1))
    check_encoded(model.encode(task.log))
