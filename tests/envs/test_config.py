import json

import pytest

from decay_model.errors import ConfigError
from envs.config import PRESETS, SimConfig, get_preset


def test_presets_are_valid_and_ordered_by_size():
    assert set(PRESETS) == {"small", "default", "large", "independent_browsing"}
    assert PRESETS["default"].num_slots == 20
    for cfg in PRESETS.values():
        assert cfg.exposure_slots < cfg.num_slots
        assert cfg.obs_size == cfg.num_slots * 9 + 3
    # budget mode is the default browsing model; independent_browsing keeps the one before it
    assert PRESETS["default"].engagement_budget == pytest.approx(0.979)
    assert PRESETS["default"].engagement_budget_user_sd == pytest.approx(0.588)
    assert PRESETS["independent_browsing"] == PRESETS["default"].replace(
        engagement_budget=0.0, engagement_budget_user_sd=0.0
    )
    assert PRESETS["small"].num_slots < PRESETS["default"].num_slots < PRESETS["large"].num_slots


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("click_lift", -0.1),
        ("slot_cost", -1.0),
        ("session_gap_h", 0.0),
        ("gap_residual_quantiles", (1.0, 0.0)),
        ("explore_per_visit", 9.0),
        ("exposure_slots", 20),
        ("exposure_slots", 25),
        ("items_per_category", 0),
        ("num_slots", 0),
        ("fatigue_halflife_h", -3.0),
        ("purchase_rate", 1.5),
        ("click_scale", float("nan")),
        ("reencode_every", -1),
        ("reencode_history", 0),
        ("horizon", 2.5),
        ("engagement_budget", -0.5),
        ("engagement_budget", 17.0),  # more than the default's 16 tracked categories
    ],
)
def test_bad_field_raises_config_error_naming_field_and_value(field, value):
    with pytest.raises(ConfigError) as err:
        SimConfig(**{field: value})
    assert field in str(err.value)
    assert repr(value) in str(err.value)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        get_preset("huge")


def test_missing_artifact(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(ConfigError, match="artifact") as err:
        SimConfig(artifact=missing)
    assert missing in str(err.value)


def test_artifact_without_population(tmp_path):
    (tmp_path / "card.json").write_text(json.dumps({"format_version": 1, "model": "exponential"}))
    with pytest.raises(ConfigError, match="no population summary"):
        SimConfig(artifact=str(tmp_path))


def test_artifact_with_empty_population(tmp_path, fake_artifact):
    fake_artifact(tmp_path, {"categories": {}})
    with pytest.raises(ConfigError, match="no categories"):
        SimConfig(artifact=str(tmp_path))


def test_valid_artifact_accepted(tmp_path, fake_artifact):
    from envs.population import default_summary

    fake_artifact(tmp_path, default_summary())
    assert SimConfig(artifact=str(tmp_path)).artifact == str(tmp_path)


def test_reencoding_needs_a_neural_artifact(tmp_path, fake_artifact):
    from envs.population import default_summary

    folder = fake_artifact(tmp_path / "exp", default_summary())  # an exponential model's artifact
    with pytest.raises(ConfigError, match="reencode_every=5: re-encoding needs a neural decay artifact"):
        SimConfig(artifact=str(folder), reencode_every=5)
    assert SimConfig(reencode_every=5).reencode_every == 5  # the shipped artifact is neural


def test_the_fitted_constants_are_one_group_read_from_the_packaged_file():
    from envs.fitted_constants import FITTED_FIELDS, TAOBAO_FILE, taobao

    cfg = SimConfig()
    assert set(cfg.fitted()) == set(FITTED_FIELDS)
    assert cfg.fitted() == taobao().sim_fields()
    assert TAOBAO_FILE.is_file() and "Taobao" in taobao().log
    assert taobao() is taobao()  # read once


def test_replace_reads_an_artifact_folder_once(monkeypatch):
    import decay_model.cards as cards
    from decay_model.cards import PRETRAINED

    calls = []
    real = cards.load_population
    monkeypatch.setattr(cards, "load_population", lambda folder: calls.append(folder) or real(folder))
    cfg = SimConfig(artifact=str(PRETRAINED))
    for horizon in range(5, 15):
        cfg = cfg.replace(horizon=horizon)
    assert len(calls) <= 1  # none when an earlier test already validated the folder
