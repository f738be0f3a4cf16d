"""agents.examples: the documented rule resolves by name, is tunable and acts on its cutoff."""

from __future__ import annotations

import numpy as np

from agents.custom import resolve
from agents.examples import Cutoff
from agents.policy import RETIRE, SHOW, block
from envs.config import get_preset
from envs.layout import EMPTY_BLOCK, PREDICTED_INTEREST_BLOCK
from envs.vector import InterestDecayVectorEnv


def test_the_example_rule_resolves_by_name_and_declares_its_grid() -> None:
    factory = resolve("agents.examples:Cutoff")
    assert factory.tunable and factory.grid == {"cutoff": [0.1, 0.2, 0.3, 0.4]}
    assert isinstance(factory.build(get_preset("small"), seed=0), Cutoff)
    assert not resolve('agents.examples:Cutoff{"cutoff": 0.2}').tunable


def test_the_example_rule_shows_above_its_cutoff_and_retires_below() -> None:
    venv = InterestDecayVectorEnv(32, preset="small")
    obs, _ = venv.reset(seed=0)
    actions, _ = Cutoff(0.3).predict(obs)
    interest = block(obs, PREDICTED_INTEREST_BLOCK)
    filled = block(obs, EMPTY_BLOCK) < 0.5
    assert np.array_equal(actions[filled], np.where(interest >= 0.3, SHOW, RETIRE)[filled])
    assert {SHOW, RETIRE} >= set(np.unique(actions)) and len(np.unique(actions[filled])) == 2
