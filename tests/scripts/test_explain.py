import contextlib
import io
import json

import pytest

from agents.tree_policy import TreeArrays, TreePolicy
from agents.tuning import TUNED_FORMAT, TUNED_VERSION
from scripts import evaluate, explain

SHOW, RETIRE = 0.3, 0.1


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    path = tmp_path_factory.mktemp("tuned") / "tuned.json"
    params = {"show_above": SHOW, "retire_below": RETIRE}
    path.write_text(
        json.dumps(
            {
                "format": TUNED_FORMAT,
                "version": TUNED_VERSION,
                "preset": "small",
                "tuned": {"threshold": params, "oracle": params},
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def run(tuned, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = explain.main(
            [
                "--policy", "threshold", "--preset", "small", "--tuned", str(tuned), "--train-users", "60",
                "--check-users", "60", "--n-boot", "100", "--out", str(out),
            ]
        )  # fmt: skip
    assert code == 0
    return out, printed.getvalue()


def test_distilling_the_threshold_rule_recovers_it(run):
    run, out = run
    summary = json.loads((run / "explain.json").read_text())
    assert summary["agreement"] > 0.995 and summary["fit_agreement"] > 0.995
    tree = TreeArrays.from_dict(json.loads((run / "tree.json").read_text())["tree"])
    # every split is on the predicted interest, at thresholds next to the rule's
    splits = tree.threshold[tree.left >= 0]
    assert (tree.feature[tree.left >= 0] == 0).all()
    assert any(abs(t - SHOW) < 0.02 for t in splits) and any(abs(t - RETIRE) < 0.02 for t in splits)
    rules = (run / "rules.txt").read_text()
    assert "retire when predicted interest ≤ 0.1" in rules
    assert "show when predicted interest > 0.3" in rules
    assert "agreement" in out and "reduce when 0.1 < predicted interest ≤ 0.3" in out
    ret = summary["returns_on_check_users"]
    assert ret["tree"] == pytest.approx(ret["policy"], abs=0.02)


def test_the_tree_is_one_more_policy_for_evaluate(run, tuned, tmp_path):
    run, _ = run
    assert isinstance(TreePolicy.load(run), TreePolicy)
    out = tmp_path / "eval"
    code = evaluate.main(
        [
            "--preset", "small", "--eval-users", "16", "--n-boot", "50", "--tuned", str(tuned),
            "--policies", str(run / "tree.json"), "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["policies"]) == {"run", "threshold", "oracle"}
    assert summary["policies"]["run"]["policy"].startswith("TreePolicy")


def test_unknown_policy_ends_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        explain.cli(["--policy", "nonsense", "--preset", "small", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("decaygym-explain: error: unknown policy") and "\n" not in err


def test_the_module_runs_as_a_command(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.explain",
            "--policy",
            "greedy",
            "--preset",
            "tiny",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "decaygym-explain: error: unknown preset 'tiny'; known: "
        "small, default, large, independent_browsing"
    )
