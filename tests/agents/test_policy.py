import numpy as np
import pytest

from agents.policy import (
    AlwaysShow,
    BestRulePolicy,
    Policy,
    RandomPolicy,
    RetireEverything,
    ShowNothing,
    ThresholdPolicy,
)
from decay_model.errors import ConfigError
from envs.vector import InterestDecayVectorEnv

K = 5
OBS_DIM = K * 9 + 3


def make_obs(interest, empty=None):
    """A batch of observations with block 0 = interest and block 6 = empty flags."""
    interest = np.atleast_2d(np.asarray(interest, np.float32))
    obs = np.zeros((interest.shape[0], OBS_DIM), np.float32)
    obs[:, :K] = interest
    if empty is not None:
        obs[:, 6 * K : 7 * K] = np.atleast_2d(empty)
    return obs


def test_threshold_decisions_at_and_around_the_boundaries():
    policy = ThresholdPolicy(show_above=0.5, retire_below=0.1)
    obs = make_obs([0.5, 0.4999, 0.1, 0.0999, 0.9])
    actions, state = policy.predict(obs)
    assert actions.tolist() == [[0, 1, 1, 2, 0]]
    assert actions.dtype == np.int64
    assert state is None


def test_equal_thresholds_never_reduce_and_zero_retire_never_retires():
    obs = make_obs([0.3, 0.2999, 0.0, 1.0, 0.31])
    assert ThresholdPolicy(0.3, 0.3).predict(obs)[0].tolist() == [[0, 2, 2, 0, 0]]
    assert ThresholdPolicy(0.3, 0.0).predict(obs)[0].tolist() == [[0, 1, 1, 0, 0]]


def test_empty_slots_get_action_zero():
    empty = [0, 1, 0, 1, 0]
    obs = make_obs([0.0, 0.0, 0.0, 0.0, 0.0], empty)
    assert ThresholdPolicy(0.5, 0.1).predict(obs)[0].tolist() == [[2, 0, 2, 0, 2]]
    assert ShowNothing().predict(obs)[0].tolist() == [[1, 0, 1, 0, 1]]
    assert RetireEverything().predict(obs)[0].tolist() == [[2, 0, 2, 0, 2]]
    assert (RandomPolicy(0).predict(obs)[0][:, [1, 3]] == 0).all()


@pytest.mark.parametrize(
    "policy", [ThresholdPolicy(0.3, 0.1), AlwaysShow(), ShowNothing(), RetireEverything(), RandomPolicy(1)]
)
def test_batch_and_single_shapes(policy):
    assert isinstance(policy, Policy)
    batch = make_obs(np.linspace(0, 1, 4 * K).reshape(4, K))
    actions, _ = policy.predict(batch)
    assert actions.shape == (4, K) and actions.dtype == np.int64
    assert set(np.unique(actions)) <= {0, 1, 2}
    single, _ = policy.predict(batch[2])
    assert single.shape == (K,) and single.dtype == np.int64
    if not isinstance(policy, RandomPolicy):
        assert single.tolist() == actions[2].tolist()


def test_policies_act_on_real_env_observations():
    venv = InterestDecayVectorEnv(3, preset="small")
    obs, _ = venv.reset(seed=0)
    for policy in (
        ThresholdPolicy(0.3, 0.1),
        AlwaysShow(),
        ShowNothing(),
        RetireEverything(),
        RandomPolicy(0),
    ):
        actions, _ = policy.predict(obs)
        assert venv.action_space.contains(actions)
        venv.step(actions)


def test_state_is_passed_through():
    state = (np.zeros(2),)
    _, out = ThresholdPolicy(0.3, 0.1).predict(make_obs([0.1] * K), state=state)
    assert out is state


@pytest.mark.parametrize(
    ("show_above", "retire_below"), [(0.1, 0.2), (0.0, 0.01), (float("nan"), 0.1), (0.5, float("inf"))]
)
def test_bad_thresholds_raise_config_error_naming_the_fields(show_above, retire_below):
    with pytest.raises(ConfigError) as err:
        ThresholdPolicy(show_above, retire_below)
    message = str(err.value)
    assert "show_above" in message or "retire_below" in message
    if np.isfinite(show_above) and np.isfinite(retire_below):
        assert "show_above" in message and "retire_below" in message


def test_bad_observation_shape_raises():
    with pytest.raises(ValueError, match="observation length"):
        AlwaysShow().predict(np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match="shape"):
        AlwaysShow().predict(np.zeros((2, 2, OBS_DIM), np.float32))


def test_random_policy_is_reproducible_and_uses_its_own_generator():
    obs = make_obs(np.zeros((6, K)))
    a1, _ = RandomPolicy(7).predict(obs)
    np.random.seed(123)  # noqa: NPY002  (the global generator must not matter)
    a2, _ = RandomPolicy(7).predict(obs)
    assert np.array_equal(a1, a2)
    with pytest.raises(ConfigError):
        RandomPolicy(0, probs=(0.5, 0.5, 0.5))


# -- threshold+, greedy, oracle --------------------------------------------------------------

from agents.policy import (  # noqa: E402
    GreedyPolicy,
    OraclePolicy,
    ThresholdPlusPolicy,
    unsquash,
    unsquash_count,
    uses_hidden_info,
)
from envs.config import get_preset  # noqa: E402


def set_block(obs, index, values):
    obs[:, index * K : (index + 1) * K] = np.atleast_2d(np.asarray(values, np.float32))
    return obs


def squash(c, s=5.0):
    c = np.asarray(c, np.float32)
    return c / (c + np.float32(s))


def test_unsquash_inverts_the_observation_squashing_exactly():
    counts = np.arange(0, 200)
    assert np.array_equal(unsquash_count(squash(counts)), counts)
    hours = np.array([0.0, 0.5, 24.0, 1000.0])
    assert np.allclose(unsquash(squash(hours, 24.0), 24.0), hours, rtol=1e-5)
    assert unsquash(np.float32(1.0), 5.0) == 1e6  # saturated: capped, not infinite


def test_threshold_plus_retires_bought_and_ignored_items():
    obs = make_obs([0.9, 0.9, 0.9, 0.2, 0.05])
    set_block(obs, 4, squash([1, 0, 0, 0, 0]))  # purchases
    set_block(obs, 5, squash([0, 3, 2, 7, 0]))  # exposures since the last click
    assert ThresholdPlusPolicy(0.5, 0.1, max_unanswered=3).predict(obs)[0].tolist() == [[2, 2, 0, 2, 2]]
    assert ThresholdPlusPolicy(0.5, 0.1, max_unanswered=None).predict(obs)[0].tolist() == [[2, 0, 0, 1, 2]]
    plain = ThresholdPlusPolicy(0.5, 0.1, max_unanswered=None, retire_purchased=False)
    assert plain.predict(obs)[0].tolist() == ThresholdPolicy(0.5, 0.1).predict(obs)[0].tolist()
    # exactly at the boundary: 3 unanswered exposures retire with max 3, not with max 4
    assert ThresholdPlusPolicy(0.5, 0.1, 4, False).predict(obs)[0].tolist() == [[0, 0, 0, 2, 2]]
    with pytest.raises(ConfigError, match="max_unanswered"):
        ThresholdPlusPolicy(0.5, 0.1, max_unanswered=0)


def test_greedy_shows_the_top_m_by_expected_value_and_never_retires():
    cfg = get_preset("small").replace(num_slots=K, exposure_slots=2, fresh_per_visit=2, slot_cost=0.0)
    obs = make_obs([0.5, 0.5, 0.2, 0.6, 0.0])
    set_block(obs, 8, squash([1.0, 3.0, 10.0, 0.1, 5.0], 1.0))  # item values
    policy = GreedyPolicy(cfg)
    ev = policy.expected_value(obs)[0]
    mean_q = cfg.quality_a / (cfg.quality_a + cfg.quality_b)
    expected = np.array([0.5, 0.5, 0.2, 0.6, 0.0]) * (
        cfg.click_value
        + cfg.purchase_value_scale * cfg.purchase_rate * mean_q * np.array([1.0, 3.0, 10.0, 0.1, 5.0])
    )
    assert np.allclose(ev, expected, rtol=1e-5)
    top2 = set(np.argsort(-expected)[:2])
    actions = policy.predict(obs)[0][0]
    assert {i for i in range(K) if actions[i] == 0} == top2
    assert 2 not in actions
    # an empty slot is never shown; with a high slot cost nothing is worth showing
    obs_empty = set_block(obs.copy(), 6, [0, 0, 1, 0, 0])
    assert GreedyPolicy(cfg).predict(obs_empty)[0][0, 2] == 0  # empty slots get 0 (ignored by the env)
    assert (GreedyPolicy(cfg).decide(obs_empty)[0, 2]) == 1
    assert (GreedyPolicy(cfg.replace(slot_cost=10.0)).predict(obs)[0] == 1).all()
    assert (GreedyPolicy(cfg.replace(slot_cost=10.0), cost_aware=False).predict(obs)[0] == 0).sum() == 2
    with pytest.raises(ValueError, match="K=8"):
        GreedyPolicy(get_preset("small")).predict(obs)


def test_oracle_reads_only_the_hidden_truth_it_is_given():
    obs = make_obs([0.0] * K)  # the predicted interest says retire everything
    oracle = OraclePolicy(0.3, 0.1)
    assert uses_hidden_info(oracle) and not uses_hidden_info(ThresholdPolicy(0.3, 0.1))
    with pytest.raises(RuntimeError, match="set_hidden"):
        oracle.predict(obs)
    info = {
        "true_interest": np.array([[0.9, 0.9, 0.2, 0.5, 0.05]]),
        "true_appeal": np.array([[1, 0.2, 1, 0.1, 1]]),
    }
    oracle.set_hidden(info)
    assert oracle.predict(obs)[0].tolist() == [[0, 1, 1, 2, 2]]  # interest × appeal: .9 .18 .2 .05 .05
    with pytest.raises(RuntimeError):  # the hidden truth is used once
        oracle.predict(obs)
    by_interest = OraclePolicy(0.3, 0.1, signal="interest")
    by_interest.set_hidden(info)
    assert by_interest.predict(obs)[0].tolist() == [[0, 0, 1, 0, 2]]
    single = OraclePolicy(0.3, 0.1)
    single.set_hidden({k: v[0] for k, v in info.items()})
    assert single.predict(obs[0])[0].tolist() == [0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="hidden_info=True"):
        oracle.set_hidden({"true_interest": info["true_interest"]})
    with pytest.raises(ConfigError, match="signal"):
        OraclePolicy(0.3, 0.1, signal="appeal")


@pytest.mark.parametrize(
    "policy",
    [
        ThresholdPlusPolicy(0.3, 0.1, 3),
        BestRulePolicy(0.3, 0.1, 3, dup_show_above=0.5, tries=1, z=1.0, rest_cycles=1.0),
        GreedyPolicy(get_preset("small").replace(num_slots=K, fresh_per_visit=2)),
    ],
)
def test_new_rules_keep_batch_and_single_shapes(policy):
    batch = make_obs(np.linspace(0, 1, 4 * K).reshape(4, K))
    actions, _ = policy.predict(batch)
    assert actions.shape == (4, K) and actions.dtype == np.int64
    assert policy.predict(batch[1])[0].tolist() == actions[1].tolist()


def best(**params):
    """A best rule that only shows (show_above 0.3, retire_below 0.1) unless a mechanism is switched on."""
    return BestRulePolicy(**{"show_above": 0.3, "retire_below": 0.1, "max_unanswered": None, **params})


def test_best_rule_shows_each_category_once_unless_both_clear_the_higher_bar():
    obs = make_obs([0.9, 0.6, 0.4, 0.5, 0.45])
    set_block(obs, 1, squash([5.0, 5.0, 5.0, 30.0, 30.0], 24.0))  # two categories: slots 0-2, slots 3-4
    set_block(obs, 2, squash([4, 4, 4, 4, 4]))  # all exposed: block 1 alone groups them
    assert best().predict(obs)[0].tolist() == [[0, 0, 0, 0, 0]]  # off: threshold+
    # each category's first item by p stays; slot 1 (0.6) clears the bar 0.55, 2 and 4 do not
    assert best(dup_show_above=0.55).predict(obs)[0].tolist() == [[0, 0, 1, 0, 1]]
    assert best(dup_show_above=1.01).predict(obs)[0].tolist() == [[0, 1, 1, 0, 1]]  # one per category
    # equal p: the older item (block 7) is ranked first by the platform and stays
    tie = make_obs([0.5, 0.5, 0.0, 0.0, 0.0], empty=[0, 0, 1, 1, 1])
    set_block(tie, 1, squash([5.0, 5.0, 0, 0, 0], 24.0))
    set_block(tie, 2, squash([1, 1, 0, 0, 0]))
    set_block(tie, 7, squash([10.0, 200.0, 0, 0, 0], 720.0))
    assert best(dup_show_above=1.01).predict(tie)[0].tolist() == [[1, 0, 0, 0, 0]]
    # two never-exposed items with different p have different category estimates: not merged
    cold = obs.copy()
    set_block(cold, 2, squash([0, 0, 4, 4, 4]))
    assert best(dup_show_above=1.01).predict(cold)[0].tolist() == [[0, 0, 1, 0, 1]]
    # a reduced or retired item does not crowd the page: slot 0 below the show bar frees slot 1
    low = obs.copy()
    low[:, 0] = 0.2
    assert best(dup_show_above=1.01).predict(low)[0].tolist() == [[1, 0, 1, 0, 1]]


def test_best_rule_tries_cold_items_then_judges_them_by_an_upper_confidence_signal():
    obs = make_obs([0.05, 0.05, 0.05, 0.2, 0.2])
    set_block(obs, 2, squash([0, 1, 2, 6, 6]))  # exposures
    set_block(obs, 3, squash([0, 0, 0, 0, 8]))  # clicks
    assert best().predict(obs)[0].tolist() == [[2, 2, 2, 1, 1]]
    assert best(tries=1).predict(obs)[0].tolist() == [[0, 2, 2, 1, 1]]
    assert best(tries=2).predict(obs)[0].tolist() == [[0, 0, 2, 1, 1]]
    # signal p·(1 + z/√(α + clicks)), α = 1: 0.05·(1 + 1) = 0.1 keeps the unclicked items (reduce);
    # 0.2·2 = 0.4 shows slot 3 (no clicks) but slot 4 (8 clicks) gets 0.2·(1 + 1/3) < 0.3
    assert best(z=1.0).predict(obs)[0].tolist() == [[1, 1, 1, 0, 1]]
    assert best(z=1.0, prior_clicks=4.0).predict(obs)[0].tolist() == [[2, 2, 2, 1, 1]]  # 0.05·1.5 < 0.1
    assert np.allclose(best(z=1.0).signal(obs)[0], [0.1, 0.1, 0.1, 0.4, 0.2 * (1 + 1 / 3)])
    # a try never outlives max_unanswered
    set_block(obs, 5, squash([0, 1, 2, 6, 0]))
    assert best(tries=2, max_unanswered=1).predict(obs)[0].tolist() == [[0, 2, 2, 2, 1]]


def test_best_rule_rests_a_bought_item_for_the_repurchase_cycle_or_retires_it():
    obs = make_obs([0.05, 0.05, 0.5, 0.5, 0.5])
    set_block(obs, 4, squash([1, 1, 1, 1, 0]))  # purchases
    set_block(obs, 1, squash([10.0, 400.0, 10.0, 400.0, 10.0], 24.0))  # hours since the category engaged
    assert best().predict(obs)[0].tolist() == [[2, 2, 2, 2, 0]]  # None: retired for good (threshold+)
    # one cycle (168 h): rest (reduce) while < 168 h, then the rule on the (satiated) estimate
    assert best(rest_cycles=1.0).predict(obs)[0].tolist() == [[1, 2, 1, 0, 0]]
    assert best(rest_cycles=1.0, repurchase_cycle_h=500.0).predict(obs)[0].tolist() == [[1, 1, 1, 1, 0]]
    assert best(rest_cycles=0.0).predict(obs)[0].tolist() == [[2, 2, 0, 0, 0]]  # the estimate alone


def test_best_rule_parameters_round_trip_and_bad_ones_are_named():
    rule = BestRulePolicy(0.3, 0.1, 3, dup_show_above=0.5, tries=1, z=0.5, rest_cycles=1.0)
    assert BestRulePolicy(**rule.to_dict()).to_dict() == rule.to_dict()
    assert "dup_show_above=0.5" in repr(rule) and "prior_clicks=1.0" in repr(rule)
    cfg = get_preset("small").replace(estimate_prior_clicks=3.0, repurchase_cycle_h=50.0)
    built = BestRulePolicy.from_config(cfg, **rule.to_dict())
    assert (built.prior_clicks, built.repurchase_cycle_h) == (3.0, 50.0)
    for field, value in (
        ("dup_show_above", -0.1),
        ("tries", -1),
        ("tries", 1.5),
        ("z", float("nan")),
        ("rest_cycles", -1.0),
        ("prior_clicks", 0.0),
        ("repurchase_cycle_h", 0.0),
        ("max_unanswered", 0),
        ("show_above", float("inf")),
    ):
        with pytest.raises(ConfigError, match=field):
            best(**{field: value})
