import json

import pytest

from agents import reproduction
from decay_model.errors import ConfigError
from scripts import train as train_command


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A tiny training run with four validations, and its record."""
    folder = tmp_path_factory.mktemp("published")
    argv = ["--algo", "ppo", "--preset", "small", "--seed", "3", "--timesteps", "2048", "--n-envs", "16"]
    argv += ["--eval-users", "8", "--eval-freq", "512", "--torch-threads", "1", "--out", str(folder / "run")]
    assert train_command.main(argv) == 0
    assert reproduction.main(["record", str(folder / "run"), str(folder / "record.json")]) == 0
    return folder / "record.json"


def test_a_record_holds_the_runs_settings_and_one_hash_per_validation(published):
    record = json.loads(published.read_text())
    assert record["settings"]["torch_threads"] == 1 and record["settings"]["seed"] == 3
    assert [v["timesteps"] for v in record["validations"]] == [512, 1024, 1536, 2048]
    assert len({v["sha256"] for v in record["validations"]}) == 4
    assert record["machine"]["cpus"] >= 1 and record["versions"]["torch"]


def test_a_rerun_of_the_first_validations_is_identical(published, tmp_path, capsys):
    assert (
        reproduction.main(["check", str(published), "--validations", "2", "--out", str(tmp_path / "r")]) == 0
    )
    assert "2 validations identical" in capsys.readouterr().out


def test_a_changed_number_or_thread_count_is_reported_as_a_difference(published, tmp_path, capsys):
    record = json.loads(published.read_text())
    record["validations"][0]["sha256"] = "0" * 64
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(record))
    assert reproduction.main(["check", str(changed), "--validations", "1"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS" in out and "same versions and CPU as the record: a difference here is a" in out
    record["versions"]["torch"], record["machine"]["cpu"] = "2.0.0", "Another CPU"
    changed.write_text(json.dumps(record))
    assert reproduction.main(["check", str(changed), "--validations", "1"]) == 1
    assert "differs from the record's in torch: 2.0.0 -> " in capsys.readouterr().out
    assert reproduction.provenance_differences(record)[-1].startswith("cpu: Another CPU -> ")
    assert reproduction.provenance_differences({**record, "machine": None})[-1] == "cpu: not recorded"
    record = json.loads(published.read_text())
    record["settings"]["torch_threads"] = 0
    changed.write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="--torch-threads must be >= 1"):
        reproduction.main(["check", str(changed)])
    with pytest.raises(ConfigError, match=r"--validations must be in 1\.\.4"):
        reproduction.main(["check", str(published), "--validations", "5"])


def test_a_run_that_does_not_record_its_thread_count_needs_it_said(published, tmp_path):
    import shutil

    run = tmp_path / "old_run"
    shutil.copytree(published.parent / "run", run)
    config = json.loads((run / "config.json").read_text())
    del config["config"]["settings"]["torch_threads"]
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="records no torch thread count; give --torch-threads N"):
        reproduction.main(["record", str(run), str(tmp_path / "r.json")])
    assert reproduction.main(["record", str(run), str(tmp_path / "r.json"), "--torch-threads", "1"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["settings"]["torch_threads"] == 1
