import numpy as np
import pytest

from agents.evaluation import evaluate
from agents.policy import ThresholdPlusPolicy, ThresholdPolicy
from agents.tree_policy import (
    FEATURE_NAMES,
    TreeArrays,
    TreePolicy,
    collect_decisions,
    describe_condition,
    feature_table,
    fit_tree,
    is_tree_file,
    save_tree,
    tree_rules,
)
from agents.tuning import evaluation_seeds, tuning_seeds
from decay_model.errors import ArtifactError
from envs.config import get_preset

CFG = get_preset("small")
K = CFG.num_slots


def squash(c, s):
    c = np.asarray(c, np.float32)
    return c / (c + np.float32(s))


def test_features_are_in_natural_units():
    obs = np.zeros((1, K * 9 + 3), np.float32)
    obs[0, 0:K] = 0.25  # predicted interest
    obs[0, K : 2 * K] = squash(np.arange(K) * 3.0, 24)  # hours since engagement
    obs[0, 2 * K : 6 * K] = np.repeat(squash([4, 2, 1, 3], 5), K)  # exposures, clicks, purchases, since click
    obs[0, 7 * K : 8 * K] = squash(np.full(K, 36.0), 720)  # age
    obs[0, 8 * K : 9 * K] = squash(np.full(K, 2.5), 1)  # value
    obs[0, 9 * K :] = [squash(7, CFG.horizon), squash(1.5, CFG.exposure_slots), 0.25]
    x = feature_table(obs, CFG.horizon, CFG.exposure_slots)
    assert x.shape == (1, K, len(FEATURE_NAMES)) and x.dtype == np.float32
    row = x[0, 2]
    assert row[0] == pytest.approx(0.25)
    assert row[1] == pytest.approx(6.0, rel=1e-5)
    assert row[2:6].tolist() == [4, 2, 1, 3]
    assert row[6] == pytest.approx(36.0, rel=1e-5) and row[7] == pytest.approx(2.5, rel=1e-5)
    assert row[8] == 7 and row[9] == pytest.approx(1.5, rel=1e-5) and row[10] == pytest.approx(0.25)


@pytest.fixture(scope="module")
def distilled():
    policy = ThresholdPlusPolicy(0.3, 0.1, max_unanswered=3, retire_purchased=True)
    fit = collect_decisions(policy, CFG, tuning_seeds(0, 60))
    check = collect_decisions(policy, CFG, evaluation_seeds(0, 60))
    return policy, fit_tree(fit, max_depth=4, min_samples_leaf=5), fit, check


def test_decisions_cover_every_non_empty_slot(distilled):
    policy, _, fit, _ = distilled
    rec = evaluate(policy, preset="small", seeds=tuning_seeds(0, 60))
    assert len(fit.actions) == rec["decisions"].sum()
    assert np.bincount(fit.actions, minlength=3).tolist() == [
        int(rec.filter(regex=f"^n_age_.*_{a}$").to_numpy().sum()) for a in ("show", "reduce", "retire")
    ]
    assert set(np.unique(fit.seeds)) <= set(tuning_seeds(0, 60))


def test_tree_arrays_apply_like_scikit_learn_and_agree_with_the_rule(distilled):
    _, tree, _, check = distilled
    arrays = TreeArrays.from_sklearn(tree)
    assert np.array_equal(arrays.apply(check.features), tree.predict(check.features))
    assert (arrays.apply(check.features) == check.actions).mean() > 0.99
    rules = tree_rules(arrays)
    assert sum(r.share for r in rules) == pytest.approx(1.0)
    text = " ".join(str(r) for r in rules)
    assert "predicted interest" in text and "exposures since the last click" in text


def test_tree_policy_round_trips_and_acts_like_the_tree(distilled, tmp_path):
    policy, tree, _, _ = distilled
    paths = save_tree(tmp_path, tree, CFG, "rules")
    assert is_tree_file(tmp_path) and is_tree_file(paths["json"]) and not is_tree_file(paths["rules"])
    loaded = TreePolicy.load(tmp_path)
    seeds = evaluation_seeds(0, 30)
    tree_rec = evaluate(loaded, preset="small", seeds=seeds)
    rule_rec = evaluate(policy, preset="small", seeds=seeds)
    # the tree agrees with the rule on > 99 % of decisions, so the returns are (nearly) the same
    assert abs(tree_rec["return"].mean() - rule_rec["return"].mean()) < 0.05
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ArtifactError, match="not a decaygym-tree-policy"):
        TreePolicy.load(tmp_path / "bad.json")


def test_conditions_read_in_natural_units():
    assert describe_condition(4, 0.5, None) == "purchases ≥ 1"
    assert describe_condition(4, None, 0.5) == "purchases = 0"
    assert describe_condition(5, 1.5, 4.5) == "exposures since the last click 2-4"
    assert describe_condition(0, None, 0.0812) == "predicted interest ≤ 0.0812"
    assert describe_condition(0, 0.1, 0.3) == "0.1 < predicted interest ≤ 0.3"
    assert describe_condition(1, 5e5, None) == "the category was never engaged this episode"
    assert describe_condition(1, None, 5e5) == "the category was engaged this episode"


def test_distilling_a_single_action_gives_one_rule():
    d = collect_decisions(ThresholdPolicy(1.01, 1.01), CFG, tuning_seeds(0, 5))
    rules = tree_rules(TreeArrays.from_sklearn(fit_tree(d)))
    assert len(rules) == 1 and rules[0].action == 2 and rules[0].conditions == ()
    assert str(rules[0]).startswith("retire when always")
