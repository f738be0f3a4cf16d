"""decaygym-build-sim and --sim: a folder built from a small log, then used by the other commands."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from decay_model.logs import BEHAVIORS
from decay_model.synthetic import SyntheticConfig, generate
from scripts import build_sim, evaluate, fidelity, throughput, tune_threshold

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ONE_POINT = ["--scale", "0.65", "--gap-power", "0.2", "--lift", "0.35", "--sim-seeds", "0", "--quick-fit"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(log, simulator folder, printed output) of a build on a 60-user synthetic log."""
    tmp = tmp_path_factory.mktemp("build_sim")
    events = generate(SyntheticConfig(n_users=60, n_categories=6), seed=0).log.events.copy()
    events["behavior"] = [BEHAVIORS[b] for b in events["behavior"]]
    logs = tmp / "log.csv"
    events.to_csv(logs, index=False)
    out = tmp / "mysim"
    assert build_sim.main(["--logs", str(logs), "--out", str(out), *ONE_POINT]) == 0
    return logs, out, (out / "fidelity" / "table.md").read_text()


def test_the_command_writes_the_folder_with_report_and_plots(built: tuple[Path, Path, str]) -> None:
    logs, out, table = built
    assert table.startswith("| statistic | simulated | real | distance | target | pass |")
    for name in ("time_between_visits.png", "events_per_user.png", "reengagement.png"):
        assert (out / "fidelity" / name).read_bytes().startswith(PNG_SIGNATURE), name
    card = json.loads((out / "card.json").read_text())
    assert card["command"].startswith(f"decaygym-build-sim --logs {logs}")
    assert {"python", "decaygym", "torch", "numpy"} <= set(card["versions"])
    assert card["data"]["name"] == "log.csv" and len(card["data"]["sha256"]) == 64


def test_a_rerun_resumes_and_says_so(
    built: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    logs, out, _ = built
    assert build_sim.main(["--logs", str(logs), "--out", str(out), *ONE_POINT]) == 0
    captured = capsys.readouterr()
    assert "reused: decay, activity, calibration, fidelity" in captured.err.replace("\n", " ")
    assert "| time between visits" in captured.out


def test_commands_run_on_the_folder_and_record_its_fingerprint(
    built: tuple[Path, Path, str], tmp_path: Path
) -> None:
    _, sim, _ = built
    fingerprint = json.loads((sim / "card.json").read_text())["fingerprint"]
    run = tmp_path / "tune"
    argv = ["--sim", str(sim), "--train-users", "8", "--eval-users", "8", "--n-boot", "20"]
    assert tune_threshold.main([*argv, "--grid", "0.2", "0.1", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["simulator"]["sim"]["fingerprint"] == fingerprint
    assert config["sim_config"]["artifact"] == str(sim / "decay")
    tuned = json.loads((run / "tuned.json").read_text())
    assert tuned["simulator"]["sim"]["fingerprint"] == fingerprint
    run = tmp_path / "eval"
    argv = ["--sim", str(sim), "--train-users", "8", "--eval-users", "8", "--n-boot", "20"]
    argv += ["--grid", "0.2", "0.1", "--max-unanswered", "none", "--policies", "always_show"]
    assert evaluate.main([*argv, "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["simulator"]["sim"]["fingerprint"] == fingerprint
    tuned = json.loads((run / "tuned.json").read_text())
    assert tuned["simulator"]["sim"]["fingerprint"] == fingerprint
    out = tmp_path / "throughput.json"
    argv = [
        "--sim",
        str(sim),
        "--sizes",
        "2",
        "--seconds",
        "0.02",
        "--reencode-size",
        "2",
        "--json",
        str(out),
    ]
    assert throughput.main(argv) == 0  # an exponential-only folder: the re-encoding row is skipped, said why
    result = json.loads(out.read_text())
    assert result["simulator"]["sim"]["fingerprint"] == fingerprint
    assert result["reencode"] is None and "neural" in result["reencode_skipped"]


def test_tuned_parameters_of_another_simulator_are_refused(
    built: tuple[Path, Path, str], tmp_path: Path
) -> None:
    _, sim, _ = built
    run = tmp_path / "tune"
    argv = ["--preset", "default", "--train-users", "4", "--eval-users", "4", "--n-boot", "10"]
    argv += ["--grid", "0.2", "0.1", "--max-unanswered", "none", "--policies", "always_show"]
    assert evaluate.main([*argv, "--out", str(run)]) == 0
    argv = ["--sim", str(sim), "--eval-users", "4", "--n-boot", "10", "--policies", "always_show"]
    with pytest.raises(Exception, match=r"were tuned on preset 'default', not on simulator folder"):
        evaluate.main([*argv, "--tuned", str(run / "tuned.json"), "--out", str(tmp_path / "e")])


def test_preset_and_sim_are_exclusive(built: tuple[Path, Path, str]) -> None:
    _, sim, _ = built
    with pytest.raises(SystemExit) as info:
        fidelity.parse_args(["--preset", "small", "--sim", str(sim)])
    assert info.value.code == 2


def test_a_broken_folder_is_one_line_naming_the_part(
    built: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    _, sim, _ = built
    broken = tmp_path / "broken"
    shutil.copytree(sim, broken)
    (broken / "sim_config.json").unlink()
    with pytest.raises(SystemExit) as info:
        tune_threshold.cli(["--sim", str(broken), "--out", str(tmp_path / "t")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"decaygym-tune-threshold: error: simulator folder {broken}: sim_config.json is missing "
        "(the calibrated simulator config); rebuild it with decaygym-build-sim"
    )


def test_a_log_without_purchases_stops_the_command_with_one_line(
    built: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    logs, _, _ = built
    events = pd.read_csv(logs)
    events.loc[events["behavior"] == "buy", "behavior"] = "view"
    no_buys = tmp_path / "no_buys.csv"
    events.to_csv(no_buys, index=False)
    with pytest.raises(SystemExit) as info:
        build_sim.cli(["--logs", str(no_buys), "--out", str(tmp_path / "sim"), *ONE_POINT])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "purchase rate (SimConfig.purchase_rate, organic_purchase_rate)" in err[0]


def test_without_logs_the_build_runs_on_the_built_in_synthetic_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = functools.partial(SyntheticConfig, n_users=60, n_categories=6)
    monkeypatch.setattr("decay_model.synthetic.SyntheticConfig", small)
    out = tmp_path / "synthetic_sim"
    assert build_sim.main(["--out", str(out), "--seed", "3", *ONE_POINT]) == 0
    written = (out / "synthetic_log.csv").read_bytes()
    card = json.loads((out / "card.json").read_text())
    assert card["data"]["name"] == "synthetic_log.csv" and card["synthetic"]["seed"] == 3
    assert card["synthetic"]["generator"] == "decay_model.synthetic"
    assert build_sim.main(["--out", str(out), "--seed", "3", *ONE_POINT]) == 0  # same log, every stage reused
    assert (out / "synthetic_log.csv").read_bytes() == written
    assert json.loads((out / "card.json").read_text())["fingerprint"] == card["fingerprint"]
