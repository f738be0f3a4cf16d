import importlib.util
import json
import math
import os
import sys

import optuna
import pandas as pd
import pytest

from agents.engines import RayEngine, Unit
from decay_model.errors import ConfigError
from scripts import benchmark
from scripts import search as search_script

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray is not installed: pip install -e '.[ray]'"
)


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance on two CPUs for the module (an engine uses one already started)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def numbers(value, path=""):
    """Every number of a JSON document, by its path (NaN as the string "nan", so that it equals itself)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in numbers(item, f"{path}/{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in numbers(item, f"{path}[{i}]").items()}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {path: "nan" if value != value else value}
    return {}


@needs_ray
@pytest.mark.usefixtures("one_torch_thread")
def test_the_ray_benchmark_gives_the_local_engines_numbers(ray_instance, tmp_path):
    argv = ["--level", "smoke", "--preset", "small"]
    assert benchmark.main([*argv, "--out", str(tmp_path / "local")]) == 0
    assert benchmark.main([*argv, "--engine", "ray", "--out", str(tmp_path / "ray")]) == 0
    local = numbers(json.loads((tmp_path / "local" / "summary.json").read_text()))
    ray = numbers(json.loads((tmp_path / "ray" / "summary.json").read_text()))
    assert len(local) > 1000 and ray == local
    assert json.loads((tmp_path / "ray" / "summary.json").read_text())["failed_units"] == []


@needs_ray
def test_a_ray_task_runs_in_the_callers_folder(ray_instance, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # after Ray started its workers elsewhere
    assert RayEngine().run_one("demo", Unit("cwd", os.getcwd)) == str(tmp_path)


@needs_ray
def test_a_failed_ray_task_is_reported_and_the_others_finish(ray_instance):
    engine = RayEngine()
    ok, bad = engine.run(
        "demo", [Unit("ok", math.sqrt, (4.0,)), Unit("bad", math.sqrt, (-1.0,), labels={"seed": 3})]
    )
    assert ok.value == 2.0 and bad.error == "ValueError: math domain error"
    assert engine.failures == [
        {"stage": "demo", "unit": "bad", "seed": 3, "error": "ValueError: math domain error"}
    ]
    with pytest.raises(ValueError, match="math domain error"):
        engine.run_one("demo", Unit("again", math.sqrt, (-1.0,)))
    with pytest.raises(ConfigError, match=r"gpu asks Ray for 1 GPU\(s\): no node"):  # not queued for ever
        engine.run("demo", [Unit("gpu", math.sqrt, (1.0,), num_gpus=1)])
    engine.close()
    assert ray_instance.is_initialized()  # an instance the engine did not start is left running


@needs_ray
def test_a_ray_search_runs_trials_side_by_side_and_writes_its_results(ray_instance, tmp_path):
    out = tmp_path / "search"
    tiny = ["--preset", "small", "--trials", "2", "--timesteps", "1024", "--valid-users", "8"]
    tiny += ["--search-users", "8", "--evaluations", "2", "--out", str(out)]
    assert search_script.main([*tiny, "--engine", "ray", "--parallel", "2"]) == 0
    table = pd.read_csv(out / "trials.csv")
    assert sorted(table["trial"]) == [0, 1] and set(table["state"]) <= {"complete", "pruned"}
    assert (out / "best.yml").read_text().startswith("# Found by: decaygym-search --preset small")
    assert table["learning_rate"].nunique() == 2  # the two trials were drawn apart
    first, second = optuna.load_study(study_name="decaygym", storage=f"sqlite:///{out / 'study.db'}").trials
    assert second.datetime_start < first.datetime_complete  # both were under way at once


def test_the_ray_engine_without_ray_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[ray\]'"):
        benchmark.main(
            ["--level", "smoke", "--preset", "small", "--engine", "ray", "--out", str(tmp_path / "b")]
        )
    assert not (tmp_path / "b").exists()
    with pytest.raises(ConfigError, match="need --engine ray"):
        search_script.main(["--preset", "small", "--parallel", "2", "--out", str(tmp_path / "s")])


def test_a_ray_task_refuses_a_run_folder_its_node_does_not_have(tmp_path):
    from agents.engines import _run_unit

    with pytest.raises(ConfigError, match=r"no such folder on node .*file system every node shares"):
        _run_unit(print, (), 1, str(tmp_path / "elsewhere"), None, "unit")
    assert _run_unit(os.getcwd, (), 1, str(tmp_path), None, "unit") == str(tmp_path)
