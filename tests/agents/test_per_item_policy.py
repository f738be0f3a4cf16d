import numpy as np
import pytest
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, PPO
from torch import nn

from agents.per_item_policy import (
    AttentionEncoder,
    PerItemActorCriticPolicy,
    PerItemMaskablePolicy,
    PerItemRecurrentPolicy,
    PoolEncoder,
    split_observation,
)
from agents.sb3_vec_env import InterestDecaySB3VecEnv
from agents.wrappers import action_masks
from decay_model.errors import ConfigError
from envs.layout import EMPTY_BLOCK, NUM_ITEM_FEATURES
from envs.vector import InterestDecayVectorEnv

K = 8  # the small preset
OBS_DIM = K * NUM_ITEM_FEATURES + 3
POLICIES = [PerItemActorCriticPolicy, PerItemMaskablePolicy, PerItemRecurrentPolicy]
ENCODERS = ["pool", "attention"]
ATTENTION = {"encoder": "attention", "attention_heads": 2, "attention_layers": 2}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def spaces_k(k=K):
    obs = spaces.Box(0.0, 1.0, shape=(k * NUM_ITEM_FEATURES + 3,), dtype=np.float32)
    return obs, spaces.MultiDiscrete([3] * k)


def make_policy(cls, **kwargs):
    obs_space, act_space = spaces_k()
    return cls(obs_space, act_space, lambda _: 3e-4, net_arch=[16, 16], **kwargs)


def random_obs(n, seed=0, k=K):
    """Observations laid out as the env's: feature-major, empty slots zero but for the flag."""
    gen = np.random.default_rng(seed)
    items = gen.random((n, NUM_ITEM_FEATURES, k), dtype=np.float32)
    empty = gen.random((n, k)) < 0.3
    empty[0] = True  # a user whose pool is empty
    empty[1] = False  # and one whose pool is full
    items[:, EMPTY_BLOCK, :] = empty
    items = np.where(
        empty[:, None, :] & (np.arange(NUM_ITEM_FEATURES) != EMPTY_BLOCK)[None, :, None], 0, items
    )
    user = gen.random((n, 3), dtype=np.float32)
    return np.concatenate([items.reshape(n, -1), user], axis=1).astype(np.float32)


def permute_slots(obs, perm, k=K):
    n = obs.shape[0]
    items = obs[:, : k * NUM_ITEM_FEATURES].reshape(n, NUM_ITEM_FEATURES, k)[:, :, perm]
    return np.concatenate([items.reshape(n, -1), obs[:, k * NUM_ITEM_FEATURES :]], axis=1)


def logits_and_value(policy, obs):
    x = torch.as_tensor(obs)
    with torch.no_grad():
        if isinstance(policy, PerItemRecurrentPolicy):
            n = x.shape[0]
            zeros = torch.zeros(1, n, policy.lstm_actor.hidden_size)
            starts = torch.zeros(n)
            latent_pi, _ = policy._process_sequence(x, (zeros, zeros), starts, policy.lstm_actor)
            latent_vf, _ = policy._process_sequence(x, (zeros, zeros), starts, policy.lstm_critic)
            logits = policy.mlp_extractor.forward_actor(latent_pi)
            value = policy.value_net(policy.mlp_extractor.forward_critic(latent_vf))
        else:
            latent_pi, latent_vf = policy.mlp_extractor(policy.extract_features(x))
            logits, value = policy.action_net(latent_pi), policy.value_net(latent_vf)
    return logits.numpy().reshape(x.shape[0], K, 3), value.numpy()[:, 0]


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("cls", POLICIES)
def test_permuting_candidates_permutes_logits_and_keeps_the_value(cls, encoder):
    # larger weights than the 0.01 output gain
    policy = make_policy(cls, ortho_init=False, encoder=encoder, attention_layers=2)
    obs = random_obs(16)
    perm = np.random.default_rng(1).permutation(K)
    logits, value = logits_and_value(policy, obs)
    logits_p, value_p = logits_and_value(policy, permute_slots(obs, perm))
    np.testing.assert_allclose(logits_p, logits[:, perm], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value_p, value, rtol=1e-5, atol=1e-6)
    assert np.ptp(logits[1], axis=0).max() > 1e-4  # candidates are scored differently


def test_logits_are_slot_major_as_multidiscrete_expects():
    policy = make_policy(PerItemActorCriticPolicy, ortho_init=False)
    obs = random_obs(4)
    logits, _ = logits_and_value(policy, obs)
    with torch.no_grad():
        dist = policy.get_distribution(torch.as_tensor(obs))
    for j, cat in enumerate(dist.distribution):
        np.testing.assert_allclose(
            cat.probs.numpy(), torch.softmax(torch.as_tensor(logits[:, j]), -1), atol=1e-6
        )


def test_one_network_for_every_slot_count():
    # the same weights score pools of any size: parameters do not depend on K
    small = make_policy(PerItemActorCriticPolicy)
    obs_space, act_space = spaces_k(20)
    default = PerItemActorCriticPolicy(obs_space, act_space, lambda _: 3e-4, net_arch=[16, 16])
    shapes = lambda p: [tuple(v.shape) for v in p.state_dict().values()]  # noqa: E731
    assert shapes(small) == shapes(default)


def test_empty_pool_pools_to_zero():
    obs = random_obs(3)
    _, _, empty = split_observation(torch.as_tensor(obs), K)
    assert empty[0].all() and not empty[1].any()
    policy = make_policy(PerItemActorCriticPolicy)
    with torch.no_grad():
        _, pooled, _ = policy.mlp_extractor.actor_pool(torch.as_tensor(obs))
    assert torch.all(pooled[0] == 0) and torch.isfinite(pooled).all()


def scramble_empty_slots(obs, seed=2, k=K):
    """New features for the empty slots (the empty flag kept): a masked slot must not matter."""
    n = obs.shape[0]
    items = obs[:, : k * NUM_ITEM_FEATURES].reshape(n, NUM_ITEM_FEATURES, k).copy()
    empty = items[:, EMPTY_BLOCK, :] > 0.5
    noise = np.random.default_rng(seed).random(items.shape, dtype=np.float32) * 3
    noise[:, EMPTY_BLOCK, :] = items[:, EMPTY_BLOCK, :]
    items = np.where(empty[:, None, :], noise, items)
    return np.concatenate([items.reshape(n, -1), obs[:, k * NUM_ITEM_FEATURES :]], axis=1), empty


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("cls", POLICIES)
def test_empty_slots_change_no_other_slot_and_not_the_value(cls, encoder):
    policy = make_policy(cls, ortho_init=False, encoder=encoder)
    obs = random_obs(16)
    scrambled, empty = scramble_empty_slots(obs)
    assert empty.any() and not np.allclose(scrambled, obs)
    logits, value = logits_and_value(policy, obs)
    logits_s, value_s = logits_and_value(policy, scrambled)
    np.testing.assert_allclose(logits_s[~empty], logits[~empty], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(value_s, value, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", POLICIES)
def test_attention_with_an_all_empty_pool_is_finite(cls):
    policy = make_policy(cls, ortho_init=False, **ATTENTION)
    obs = random_obs(6)
    obs[:, EMPTY_BLOCK * K : (EMPTY_BLOCK + 1) * K] = 1.0  # every user's pool empty
    logits, value = logits_and_value(policy, obs)
    assert np.isfinite(logits).all() and np.isfinite(value).all()
    mixed = random_obs(6)  # user 0 empty, the others not, in one batch
    logits, value = logits_and_value(policy, mixed)
    assert np.isfinite(logits).all() and np.isfinite(value).all()
    with torch.no_grad():
        emb, summary, _ = policy.mlp_extractor.critic_pool(torch.as_tensor(mixed))
    assert emb.shape == (6, K, 16) and summary.shape == (6, 32)
    assert torch.all(summary[0, 16:] == 0)  # no candidates: their mean is zero; the user token is not
    assert torch.any(summary[0, :16] != 0)


@pytest.mark.parametrize("cls", POLICIES)
def test_the_encoder_kwarg_builds_the_encoder_and_pool_stays_the_default(cls):
    pool, attention = make_policy(cls), make_policy(cls, **ATTENTION)
    assert isinstance(pool.mlp_extractor.actor_pool, PoolEncoder)
    assert isinstance(pool.mlp_extractor.critic_pool, PoolEncoder)
    assert isinstance(attention.mlp_extractor.actor_pool, AttentionEncoder)
    assert isinstance(attention.mlp_extractor.critic_pool, AttentionEncoder)
    assert len(attention.mlp_extractor.actor_pool.blocks) == 2
    if cls is PerItemRecurrentPolicy:
        assert isinstance(pool.actor_summary, PoolEncoder)
        assert isinstance(attention.actor_summary, AttentionEncoder)
        assert isinstance(attention.critic_summary, AttentionEncoder)
    # the pool model's parameters are named as before the encoder became a choice
    assert "mlp_extractor.actor_pool.embed.0.weight" in pool.state_dict()
    assert pool._get_constructor_parameters()["encoder"] == "pool"
    assert attention._get_constructor_parameters()["attention_layers"] == 2


def test_attention_computes_the_same_in_train_and_eval_mode():
    # SB3 collects rollouts in eval mode and updates in train mode
    policy = make_policy(PerItemActorCriticPolicy, ortho_init=False, **ATTENTION)
    obs = random_obs(16)
    policy.set_training_mode(True)
    train_logits, train_value = logits_and_value(policy, obs)
    policy.set_training_mode(False)
    eval_logits, eval_value = logits_and_value(policy, obs)
    np.testing.assert_array_equal(train_logits, eval_logits)
    np.testing.assert_array_equal(train_value, eval_value)


def test_policy_save_and_load_keeps_the_attention_encoder(tmp_path):
    policy = make_policy(PerItemActorCriticPolicy, **ATTENTION)
    policy.save(tmp_path / "policy.pt")
    loaded = PerItemActorCriticPolicy.load(tmp_path / "policy.pt", device="cpu")
    assert isinstance(loaded.mlp_extractor.actor_pool, AttentionEncoder)
    obs = random_obs(8)
    np.testing.assert_array_equal(logits_and_value(loaded, obs)[0], logits_and_value(policy, obs)[0])


def test_bad_configurations_raise():
    obs_space, act_space = spaces_k()
    with pytest.raises(ConfigError, match="MultiDiscrete"):
        PerItemActorCriticPolicy(obs_space, spaces.MultiDiscrete([2] * K), lambda _: 1e-3)
    with pytest.raises(ConfigError, match="K\\*9 \\+ 3"):
        PerItemActorCriticPolicy(spaces.Box(0, 1, (10,)), act_space, lambda _: 1e-3)
    with pytest.raises(ConfigError, match="net_arch"):
        PerItemActorCriticPolicy(obs_space, act_space, lambda _: 1e-3, net_arch=[])
    with pytest.raises(ConfigError, match="activation_fn"):
        PerItemActorCriticPolicy(obs_space, act_space, lambda _: 1e-3, activation_fn="swish")
    with pytest.raises(ConfigError, match="critic"):
        PerItemRecurrentPolicy(obs_space, act_space, lambda _: 1e-3, enable_critic_lstm=False)
    with pytest.raises(ConfigError, match="encoder='transformer'"):
        PerItemActorCriticPolicy(obs_space, act_space, lambda _: 1e-3, encoder="transformer")
    with pytest.raises(ConfigError, match="attention_heads=3 must divide"):
        PerItemMaskablePolicy(obs_space, act_space, lambda _: 1e-3, encoder="attention", attention_heads=3)
    with pytest.raises(ConfigError, match="attention_layers=0"):
        PerItemRecurrentPolicy(obs_space, act_space, lambda _: 1e-3, encoder="attention", attention_layers=0)
    relu = PerItemActorCriticPolicy(obs_space, act_space, lambda _: 1e-3, activation_fn="relu")
    assert relu.activation_fn is nn.ReLU


def adapter(n=32, seed=0):
    venv = InterestDecaySB3VecEnv(n, preset="small")
    venv.seed(seed)
    return venv


PPO_KWARGS = {"n_steps": 8, "batch_size": 128, "n_epochs": 2}
ON_POLICY = [
    (PPO, PerItemActorCriticPolicy, PPO_KWARGS, "pool"),
    (A2C, PerItemActorCriticPolicy, {"n_steps": 8}, "pool"),
    (MaskablePPO, PerItemMaskablePolicy, PPO_KWARGS, "pool"),
    (RecurrentPPO, PerItemRecurrentPolicy, PPO_KWARGS, "pool"),
    (PPO, PerItemActorCriticPolicy, PPO_KWARGS, "attention"),
    (MaskablePPO, PerItemMaskablePolicy, PPO_KWARGS, "attention"),
    (RecurrentPPO, PerItemRecurrentPolicy, PPO_KWARGS, "attention"),
]


@pytest.mark.parametrize(
    ("algo", "policy", "kwargs", "encoder"), ON_POLICY, ids=lambda v: getattr(v, "__name__", v)
)
def test_each_algorithm_trains_on_the_small_preset(algo, policy, kwargs, encoder, tmp_path):
    venv = adapter()
    policy_kwargs = {"net_arch": [16, 16], "encoder": encoder, "attention_heads": 2, "attention_layers": 1}
    model = algo(policy, venv, seed=0, device="cpu", policy_kwargs=policy_kwargs, **kwargs)
    model.learn(512)
    assert model.num_timesteps >= 512
    obs = venv.reset()
    predict_kwargs = {"action_masks": action_masks(obs)} if algo is MaskablePPO else {}
    actions, _ = model.predict(obs, deterministic=True, **predict_kwargs)
    assert actions.shape == (32, K)
    model.save(tmp_path / "m.zip")
    loaded = algo.load(tmp_path / "m.zip", device="cpu")
    expected = AttentionEncoder if encoder == "attention" else PoolEncoder
    assert isinstance(loaded.policy.mlp_extractor.actor_pool, expected)
    again, _ = loaded.predict(obs, deterministic=True, **predict_kwargs)
    np.testing.assert_array_equal(actions, again)


def test_maskable_ppo_never_reduces_or_retires_an_empty_slot():
    venv = adapter(64)
    model = MaskablePPO(PerItemMaskablePolicy, venv, n_steps=8, batch_size=256, seed=0, device="cpu")
    model.learn(512)
    raw = InterestDecayVectorEnv(64, preset="small")
    obs, _ = raw.reset(seed=5)
    checked = 0
    for _ in range(10):
        actions, _ = model.predict(obs, deterministic=False, action_masks=action_masks(obs))
        empty = obs[:, EMPTY_BLOCK * K : (EMPTY_BLOCK + 1) * K] > 0.5
        assert np.all(actions[empty] == 0)
        checked += empty.sum()
        obs, *_ = raw.step(np.where(np.arange(K) < 3, 2, actions))  # retire slots 0-2: they empty
    assert checked > 0
