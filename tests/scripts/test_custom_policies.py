import json
import re
from pathlib import Path

import pandas as pd
import pytest

from agents.custom import CustomSpec, resolve
from agents.policy import GreedyPolicy
from decay_model.errors import ConfigError
from envs.config import get_preset
from scripts import benchmark, evaluate

GRID = ["--grid", "0.2,0.4", "0,0.1", "--max-unanswered", "none,3"]
SMALL = ["--preset", "small", "--train-users", "16", "--eval-users", "24", "--n-boot", "100"]
TUNED_SPEC = "custom_rules:Cutoff"
FIXED_SPEC = 'custom_rules:Cutoff{"cutoff": 0.2}'
POLICIES = ["threshold_plus", TUNED_SPEC, FIXED_SPEC, "custom_rules:myopic"]
INTERVAL = re.compile(r"^-?\d+\.\d{3} \[-?\d+\.\d{3}, -?\d+\.\d{3}\]$")


@pytest.fixture(scope="module", autouse=True)
def rules_on_path():
    # custom_rules.py lies beside this file; the scripts import it by module path like any team's module
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(Path(__file__).resolve().parent))
        yield


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("custom") / "run"
    assert evaluate.main([*SMALL, *GRID, "--policies", *POLICIES, "--out", str(out)]) == 0
    return out


def table_rows(markdown: str) -> dict[str, dict[str, str]]:
    """The first table of a table.md as label -> column -> cell."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(head):
            break  # the lifecycle table starts
        rows[cells[0]] = dict(zip(head, cells, strict=True))
    return rows


def test_spec_parsing_labels_and_canonical_form():
    spec = CustomSpec.parse('pkg.rules:Rule{"b": 1, "a": "x"}')
    assert (spec.module, spec.name, spec.kwargs) == ("pkg.rules", "Rule", {"b": 1, "a": "x"})
    assert spec.canonical == 'pkg.rules:Rule{"a": "x", "b": 1}'
    assert CustomSpec.parse('pkg.rules:Rule{"a":"x","b":1}').canonical == spec.canonical
    assert spec.label == 'Rule(a="x", b=1)' and CustomSpec.parse("m:Rule").label == "Rule"
    factory = resolve(TUNED_SPEC)
    assert factory.grid == {"cutoff": [0.6, 0.05, 0.3]} and factory.points()[0] == {"cutoff": 0.6}
    assert not resolve(FIXED_SPEC).tunable  # the spec fixes the one tuned parameter


def test_config_and_seed_are_passed_when_the_signature_names_them():
    config = get_preset("small")
    policy = resolve("custom_rules:myopic").build(config, seed=3)
    assert isinstance(policy, GreedyPolicy) and policy.config is config and not policy.cost_aware
    assert resolve("custom_rules:seeded").build(config, seed=7).seed == 7
    assert resolve('custom_rules:seeded{"seed": 2}').build(config, seed=7).seed == 2


def test_custom_rules_are_compared_with_threshold_and_threshold_plus(run):
    records = pd.read_parquet(run / "records.parquet")
    labels = ["threshold_plus", "Cutoff", "Cutoff(cutoff=0.2)", "myopic", "threshold", "oracle"]
    assert records["policy"].unique().tolist() == labels
    assert records.groupby("policy")["seed"].apply(lambda s: tuple(sorted(s))).nunique() == 1
    rows = table_rows((run / "table.md").read_text())
    for label in ("Cutoff", "Cutoff(cutoff=0.2)", "myopic"):
        assert INTERVAL.match(rows[label]["return − threshold (paired)"]), rows[label]
        assert INTERVAL.match(rows[label]["return − threshold+ (paired)"]), rows[label]
    assert rows["threshold_plus"]["return − threshold+ (paired)"] == "-"
    table = pd.read_csv(run / "table.csv").set_index("policy")
    assert {"diff_return_vs_threshold_mean", "diff_return_vs_threshold_plus_ci_low"} <= set(table.columns)
    policies = json.loads((run / "summary.json").read_text())["policies"]
    assert policies["Cutoff(cutoff=0.2)"]["spec"] == FIXED_SPEC
    assert policies["Cutoff(cutoff=0.2)"]["params"] == {"cutoff": 0.2}
    assert (
        policies["myopic"]["spec"] == "custom_rules:myopic" and "GreedyPolicy" in policies["myopic"]["policy"]
    )
    returns = records.pivot(index="seed", columns="policy", values="return")
    for label in ("Cutoff", "myopic"):
        for ref in ("threshold", "threshold_plus"):
            diff = policies[label][f"diff_vs_{ref}"]["return"]
            assert diff["ci_low"] <= diff["mean"] <= diff["ci_high"]
            assert diff["mean"] == pytest.approx((returns[label] - returns[ref]).mean())
            assert table.loc[label, f"diff_return_vs_{ref}_mean"] == pytest.approx(diff["mean"])


def test_a_rule_with_a_tuning_grid_is_tuned_on_the_training_users(run, tmp_path):
    tuned = json.loads((run / "tuned.json").read_text())
    assert list(tuned["custom"]) == [TUNED_SPEC]  # the spec that fixes the cutoff is not tuned
    entry = tuned["custom"][TUNED_SPEC]
    grid = pd.read_csv(run / "tuning_grid.csv")
    rows = grid[grid["family"] == TUNED_SPEC]
    assert rows["cutoff"].tolist() == [0.6, 0.05, 0.3] and entry["grid"] == {"cutoff": [0.6, 0.05, 0.3]}
    best = rows.loc[rows["return"].idxmax()]
    assert entry["tuned"] == {"cutoff": best["cutoff"]}
    assert entry["train_return"] == pytest.approx(best["return"])
    policies = json.loads((run / "summary.json").read_text())["policies"]
    assert policies["Cutoff"]["tuned_params"] == entry["tuned"]
    assert policies["Cutoff"]["policy"] == f"Cutoff(cutoff={float(best['cutoff'])!r})"
    assert policies["Cutoff(cutoff=0.2)"]["tuned_params"] is None
    # a rerun on the recorded tuned.json resolves the spec again and gets the same users' results
    out = tmp_path / "again"
    argv = [*SMALL, "--tuned", str(run / "tuned.json"), "--policies", TUNED_SPEC, "--out", str(out)]
    assert evaluate.main(argv) == 0
    first, again = (pd.read_parquet(d / "records.parquet") for d in (run, out))
    pd.testing.assert_frame_equal(
        first[first["policy"] == "Cutoff"].reset_index(drop=True),
        again[again["policy"] == "Cutoff"].reset_index(drop=True),
    )
    # a tuned.json without the rule's choice is refused rather than silently untuned
    del tuned["custom"]
    (tmp_path / "baselines_only.json").write_text(json.dumps(tuned))
    argv = [*SMALL, "--tuned", str(tmp_path / "baselines_only.json"), "--policies", TUNED_SPEC]
    with pytest.raises(ConfigError, match=r"no tuned parameters for custom_rules:Cutoff \(leave out --tuned"):
        evaluate.main([*argv, "--out", str(tmp_path / "refused")])
    assert not (tmp_path / "refused").exists()  # before any work


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "nope_pkg.rules:Rule",
            "policy 'nope_pkg.rules:Rule': cannot import module 'nope_pkg.rules' "
            "(No module named 'nope_pkg'); is its folder on PYTHONPATH?",
        ),
        (
            "custom_rules:Missing",
            "policy 'custom_rules:Missing': module 'custom_rules' has no attribute 'Missing'",
        ),
        (
            "custom_rules:NoPredict",
            "policy 'custom_rules:NoPredict': got a NoPredict object without "
            "predict(observation, state=None, episode_start=None, deterministic=True)",
        ),
        ("custom_rules:OldPredict", "OldPredict.predict does not take predict(observation, state=None"),
        ("custom_rules:NOT_CALLABLE", "NOT_CALLABLE is a int, not a class or a function"),
        (
            "custom_rules:Cutoff{cutoff: 0.4}",
            "policy 'custom_rules:Cutoff{cutoff: 0.4}': keyword arguments are not valid JSON",
        ),
        ("custom_rules:Cutoff[0.4]", "policy 'custom_rules:Cutoff[0.4]': expected module.path:Name"),
        (
            'custom_rules:Cutoff{"cutof": 0.4}',
            "Cutoff does not take these arguments: got an unexpected keyword",
        ),
        ('custom_rules:Cutoff{"cutoff": 4}', "Cutoff(...) failed: cutoff=4 is not in [0, 1]"),
        (
            'agents.policy:OraclePolicy{"retire_below": 0.1, "show_above": 0.3}',
            "asks for the simulator's hidden state",
        ),
    ],
)
def test_a_wrong_custom_policy_ends_with_one_line(spec, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.cli(["--preset", "small", "--policies", spec, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("decaygym-evaluate: error:") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_the_benchmark_tunes_and_reports_custom_rules(tmp_path):
    out = tmp_path / "bench"
    argv = ["--level", "smoke", "--preset", "small", "--out", str(out), "--policies", TUNED_SPEC, FIXED_SPEC]
    with pytest.raises(ConfigError, match="no attribute 'Missing'"):  # before any training
        benchmark.main([*argv, "custom_rules:Missing"])
    assert not (out / "train").exists()
    assert benchmark.main(argv) == 0
    tuned = json.loads((out / "tuned.json").read_text())
    assert list(tuned["custom"]) == [TUNED_SPEC] and tuned["custom"][TUNED_SPEC]["tuned"]["cutoff"] in (
        0.6,
        0.05,
        0.3,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tuned"]["custom"] == tuned["custom"]
    assert summary["policies"]["Cutoff"]["spec"] == TUNED_SPEC
    assert summary["policies"]["Cutoff"]["tuned_params"] == tuned["custom"][TUNED_SPEC]["tuned"]
    rows = table_rows((out / "table.md").read_text())
    for label in ("Cutoff", "Cutoff(cutoff=0.2)", "ppo_seed0"):
        assert INTERVAL.match(rows[label]["return − threshold (paired)"]), rows[label]
        assert INTERVAL.match(rows[label]["return − threshold+ (paired)"]), rows[label]
    # the same rules again (written another way): tuning and evaluation are reused, not redone
    stamps = [(out / p).stat().st_mtime_ns for p in ("tuned.json", "evaluate/summary.json")]
    assert benchmark.main([*argv[:-1], 'custom_rules:Cutoff{"cutoff":0.2}']) == 0
    assert [(out / p).stat().st_mtime_ns for p in ("tuned.json", "evaluate/summary.json")] == stamps
