import json

from agents.provenance import make_run_dir, versions, write_provenance


def test_a_run_folder_records_what_reruns_it(tmp_path):
    run = make_run_dir(str(tmp_path / "run"), "evaluate", "small", 3)
    assert run.is_dir()
    write_provenance(run, {"preset": "small"}, 3, "scripts.evaluate", ["--seed", "3"])
    record = json.loads((run / "config.json").read_text())
    assert record["config"] == {"preset": "small"} and record["seed"] == 3
    assert record["command"] == "python -m scripts.evaluate --seed 3"
    assert {"python", "numpy", "torch"} <= set(record["versions"])
    assert set(versions(["no-such-package-here"]).values()) >= {"not installed"}


def test_without_out_the_folder_is_named_after_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = make_run_dir(None, "explain", "default", 0)
    assert run.parent.name == "runs" and run.name.startswith("explain__default__seed0__")
