"""scripts.calibrate: the run folder and tables on a small synthetic log, and bad arguments."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

import envs.calibration as calibration
import scripts.calibrate as script
from decay_model.synthetic import SyntheticConfig

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_script_writes_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stub_decay
) -> None:
    monkeypatch.setattr(
        "decay_model.synthetic.SyntheticConfig",
        functools.partial(SyntheticConfig, n_users=40, n_categories=6),
    )
    monkeypatch.setattr(calibration, "fit_decay", lambda *args, **kwargs: stub_decay())
    run = tmp_path / "run"
    argv = ["--out", str(run), "--preset", "small", "--sim-seeds", "0", "--scale", "0.4", "0.8"]
    argv += ["--gap-power", "0.2", "--lift", "0.3", "0.4", "--engagement-budget", "1.0"]
    assert script.main(argv) == 0
    result = json.loads((run / "calibration.json").read_text())
    assert len(result["points"]) == 4 and result["groups"] == [20, 20]
    assert set(result["chosen"]) == {"engagement_scale", "engagement_gap_power", "engagement_lift"}
    assert result["chosen"] == {k: result["points"][0][k] for k in result["chosen"]}
    assert len(result["folds"]) == 2 and len(result["noise_floor"]) == 2
    assert set(result["cross_validated_score"]) == {"chosen", "shipped"}
    table = (run / "table.md").read_text()
    assert "| rank | κ | β | lift | score g0 | score g1 | mean | worst |" in table
    assert "| shipped | 0.65 | 0.2 | 0.35 |" in table  # the small preset's own constants
    assert (run / "score_map.png").read_bytes().startswith(PNG_SIGNATURE)
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["sim_config"]["engagement_budget"] == 1.0  # budget mode reaches every point
    assert config["command"].startswith("python -m scripts.calibrate") and "versions" in config
    out = capsys.readouterr().out
    assert "cross-validated score" in out and "noise floor" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--folds", "1"], "--folds must be at least 2"),
        (["--lift", "1.5"], "--lift: values must be finite"),
        (["--scale", "-1"], "--scale: values must be finite"),
        (["--session-gap-h", "0"], "--session-gap-h must be a positive"),
    ],
)
def test_bad_arguments_say_which(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        script.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_script_on_taobao(taobao_path: Path, tmp_path: Path) -> None:
    """Two grid points on the real log: the folds, the noise floor and the shipped row are all there."""
    run = tmp_path / "run"
    argv = ["--logs", str(taobao_path), "--source", "taobao", "--out", str(run), "--sim-seeds", "0"]
    argv += ["--scale", "0.65", "0.75", "--gap-power", "0.2", "--lift", "0.35"]
    assert script.main(argv) == 0
    result = json.loads((run / "calibration.json").read_text())
    assert sum(result["groups"]) > 800  # the cohort: users with history before the test period
    shipped = result["shipped"]
    same = next(p for p in result["points"] if p["engagement_scale"] == 0.65)
    assert shipped["mean_over_target"] == same["mean_over_target"]
    for floor in result["noise_floor"]:
        assert all(value is not None and value >= 0 for value in floor.values())
        # two halves of the real users differ by far less in time between visits than the 0.1 target
        assert floor["time_between_visits_h"] < 0.05
