"""scripts.position_bias: the run folder, one-line errors, the module as a command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import scripts.position_bias as pb

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OUTPUTS = ("position_ctr.csv", "position_ctr.md", "position_ctr.json", "position_ctr.png", "config.json")
COUNTS = {1: (1000, 20), 2: (1000, 10), 3: (500, 5)}


@pytest.mark.parametrize("column", ["propensity_score", "click", "position"])
def test_missing_column_is_one_line(write_obd, tmp_path: Path, column: str, capsys) -> None:
    path = write_obd(tmp_path / "bts" / "all" / "all.csv", COUNTS, drop=column)
    with pytest.raises(SystemExit) as exit_info:
        pb.cli(["--files", str(path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("decaygym-position-bias: error:") and str(path) in err and column in err
    assert "\n" not in err


def test_run_folder(write_obd, tmp_path: Path, capsys) -> None:
    random = write_obd(tmp_path / "data" / "random" / "all" / "all.csv", COUNTS)
    bts = write_obd(
        tmp_path / "data" / "bts" / "all" / "all.csv", {1: (900, 4), 2: (800, 6)}, propensity=None
    )
    out = tmp_path / "run"
    assert pb.main(["--data", str(tmp_path / "data"), "--out", str(out)]) == 0
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    assert (out / "position_ctr.png").read_bytes().startswith(PNG_SIGNATURE)
    report = json.loads((out / "position_ctr.json").read_text())
    assert report["prior"] == "1/log2(1 + position)" and "clicks / Σ_p impressions_p" in report["scaling"]
    assert set(report["policies"]) == {"random", "bts"}
    assert report["policies"]["random"]["uniform_logging"] is True
    assert report["policies"]["bts"]["uniform_logging"] is False
    assert "no IPS correction" in report["policies"]["random"]["note"]
    assert [r["position"] for r in report["policies"]["bts"]["positions"]] == [1, 2]
    table = pd.read_csv(out / "position_ctr.csv")
    assert len(table) == 5 and {"ctr", "ctr_low", "ctr_high", "prior_ctr", "prior_inside"} <= set(
        table.columns
    )
    md = (out / "position_ctr.md").read_text()
    assert "| policy | position | impressions |" in md and "Verdicts:" in md
    config = json.loads((out / "config.json").read_text())
    assert config["command"].startswith("python -m scripts.position_bias")
    assert [f["path"] for f in config["config"]["files"]] == [str(random), str(bts)]
    assert "can the data tell the prior" in capsys.readouterr().out.lower()


@pytest.mark.slow
def test_the_module_runs_as_a_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.position_bias",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("decaygym-position-bias: error:")
    assert "file not found" in result.stderr
