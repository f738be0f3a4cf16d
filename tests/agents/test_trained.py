import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.vec_env import VecNormalize

import envs
from agents.evaluation import evaluate
from agents.per_item_policy import (
    AttentionEncoder,
    PerItemActorCriticPolicy,
    PerItemMaskablePolicy,
    PerItemRecurrentPolicy,
)
from agents.policy import Policy
from agents.sb3_vec_env import InterestDecaySB3VecEnv
from agents.trained import ALGOS, ZOO_NAMES, algo_of_zip, env_id, load_hyperparams, load_policy
from agents.wrappers import OneAtATimeVecEnv, one_at_a_time_predict
from decay_model.errors import ArtifactError, ConfigError
from envs.layout import EMPTY_BLOCK
from envs.vector import InterestDecayVectorEnv

K = 8  # the small preset
TINY = {"net_arch": [16]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(algo):
    if algo == "dqn":
        env = OneAtATimeVecEnv(8, preset="small")
        return DQN(
            "MlpPolicy", env, learning_starts=32, buffer_size=500, policy_kwargs=TINY, seed=0, device="cpu"
        )
    env = InterestDecaySB3VecEnv(16, preset="small")
    policy = {
        "maskable_ppo": PerItemMaskablePolicy,
        "recurrent_ppo": PerItemRecurrentPolicy,
    }.get(algo, PerItemActorCriticPolicy)
    kwargs = {"n_steps": 8} if algo == "a2c" else {"n_steps": 8, "batch_size": 64, "n_epochs": 1}
    return ALGOS[algo](policy, env, policy_kwargs=TINY, seed=0, device="cpu", **kwargs)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny trained model per algorithm, in a run folder as decaygym-train writes it."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for algo in ALGOS:
        model = build(algo).learn(128)
        run = root / algo
        run.mkdir()
        model.save(run / "model.zip")
        (run / "config.json").write_text(json.dumps({"config": {"algo": algo, "preset": "small"}}))
        out[algo] = (run, model)
    torch.set_num_threads(threads)
    return out


def test_hyperparams_exist_for_every_algorithm_and_preset():
    for algo in ALGOS:
        for preset in envs.PRESETS:
            params = load_hyperparams(algo, preset)
            assert params.env_id == env_id(preset) and params.n_envs >= 1 and params.n_timesteps >= 1
            if algo != "dqn":
                assert params.policy_class().__module__ == "agents.per_item_policy"
            assert "n_envs" not in params.algo_kwargs and "policy" not in params.algo_kwargs
    assert env_id("default") == "decaygym/InterestDecay-v1" and set(ZOO_NAMES) == set(ALGOS)
    # DQN's per-decision gamma discounts a visit by about 0.99
    for preset in envs.PRESETS:
        gamma = load_hyperparams("dqn", preset).algo_kwargs["gamma"]
        assert gamma ** envs.PRESETS[preset].num_slots == pytest.approx(0.99, abs=2e-3)


def test_bad_hyperparameter_files_raise(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset"):
        load_hyperparams("ppo", "tiny")
    with pytest.raises(ConfigError, match="unknown algorithm"):
        load_hyperparams("sac", "small")
    path = tmp_path / "h.yml"
    path.write_text(
        "decaygym/InterestDecay-small-v1:\n  n_envs: 4\n  n_timesteps: 100\n  policy: MlpPolicy\n"
    )
    assert load_hyperparams("ppo", "small", path).algo_kwargs == {}
    with pytest.raises(ConfigError, match="no entry for decaygym/InterestDecay-v1"):
        load_hyperparams("ppo", "default", path)
    path.write_text("decaygym/InterestDecay-small-v1:\n  n_envs: 4\n  policy: MlpPolicy\n")
    with pytest.raises(ConfigError, match="missing n_timesteps"):
        load_hyperparams("ppo", "small", path)
    path.write_text(
        "decaygym/InterestDecay-small-v1:\n  n_envs: 4\n  n_timesteps: 9\n  policy: MlpPolicy\n"
        "  learning_rate: lin_0.001\n"
    )
    with pytest.raises(ConfigError, match="learning_rate must be numbers"):
        load_hyperparams("ppo", "small", path)
    path.write_text(
        "decaygym/InterestDecay-small-v1:\n  n_envs: 4\n  n_timesteps: 9\n  policy: MlpPolicy\n"
        "  policy_kwargs: dict(net_arch=[8])\n"
    )
    with pytest.raises(ConfigError, match="YAML mapping"):
        load_hyperparams("ppo", "small", path)


ATTENTION_ENTRY = """decaygym/InterestDecay-small-v1:
  n_envs: 4
  n_timesteps: 100
  policy: agents.per_item_policy.{policy}
  policy_kwargs:
    net_arch: {{pi: [16, 16], vf: [16, 16]}}
    encoder: {encoder}
    attention_heads: {heads}
    attention_layers: 1
"""


@pytest.mark.parametrize(
    ("algo", "policy"),
    [
        ("ppo", "PerItemActorCriticPolicy"),
        ("maskable_ppo", "PerItemMaskablePolicy"),
        ("recurrent_ppo", "PerItemRecurrentPolicy"),
    ],
)
def test_the_attention_encoder_is_chosen_in_the_yaml(algo, policy, tmp_path):
    path = tmp_path / "h.yml"
    path.write_text(ATTENTION_ENTRY.format(policy=policy, encoder="attention", heads=2))
    params = load_hyperparams(algo, "small", path)
    assert params.policy_kwargs["encoder"] == "attention"
    model = ALGOS[algo](
        params.policy_class(),
        InterestDecaySB3VecEnv(params.n_envs, preset="small"),
        policy_kwargs=params.policy_kwargs,
        n_steps=4,
        batch_size=16,
        device="cpu",
    )
    assert isinstance(model.policy.mlp_extractor.actor_pool, AttentionEncoder)
    path.write_text(ATTENTION_ENTRY.format(policy=policy, encoder="transformer", heads=2))
    with pytest.raises(ConfigError, match="policy_kwargs encoder='transformer': unknown"):
        load_hyperparams(algo, "small", path)
    path.write_text(ATTENTION_ENTRY.format(policy=policy, encoder="attention", heads=3))
    with pytest.raises(ConfigError, match="attention_heads=3 must divide"):
        load_hyperparams(algo, "small", path)


def test_the_packaged_entries_keep_the_pool_encoder():
    # results measured with them stay reproducible: the attention encoder is opt-in
    for algo in ALGOS:
        for preset in envs.PRESETS:
            assert load_hyperparams(algo, preset).policy_kwargs.get("encoder", "pool") == "pool"


@pytest.mark.parametrize("algo", list(ALGOS))
def test_load_policy_predicts_k_actions_for_every_algorithm(runs, algo):
    run, model = runs[algo]
    policy = load_policy(run)
    assert isinstance(policy, Policy) and policy.algo == algo
    venv = InterestDecayVectorEnv(6, preset="small")
    obs, _ = venv.reset(seed=3)
    obs, *_ = venv.step(np.full((6, K), 2))  # leaves empty slots
    actions, state = policy.predict(obs, episode_start=np.ones(6, bool))
    assert actions.shape == (6, K) and actions.dtype == np.int64
    assert np.all(actions[obs[:, EMPTY_BLOCK * K : (EMPTY_BLOCK + 1) * K] > 0.5] == 0)
    assert (state is not None) == (algo == "recurrent_ppo")
    single, _ = policy.predict(obs[0], episode_start=np.ones(1, bool))
    assert single.shape == (K,)
    if algo == "ppo":  # the same as the model itself, where the slot is not empty
        direct, _ = model.predict(obs, deterministic=True)
        full = obs[:, EMPTY_BLOCK * K : (EMPTY_BLOCK + 1) * K] < 0.5
        np.testing.assert_array_equal(actions[full], direct[full])
    if algo == "dqn":
        direct = one_at_a_time_predict(lambda d, det: model.predict(d, deterministic=det)[0], obs)
        np.testing.assert_array_equal(actions, direct)
    records = evaluate(policy, preset="small", seeds=range(100, 108))
    assert len(records) == 8 and np.isfinite(records["return"]).all()


def test_a_bare_zip_knows_its_algorithm(runs, tmp_path):
    for algo, (run, _) in runs.items():
        bare = tmp_path / f"{algo}.zip"
        shutil.copy(run / "model.zip", bare)
        assert algo_of_zip(bare) == algo
        assert load_policy(bare, "small").algo == algo
    assert load_policy(tmp_path / "ppo.zip").num_slots == K  # no preset: the model's own shape


def test_wrong_preset_or_missing_file_gives_a_one_line_error(runs, tmp_path):
    run, _ = runs["ppo"]
    with pytest.raises(ArtifactError) as err:
        load_policy(run, preset="default")
    message = str(err.value)
    assert "model.zip" in message and "(75,)" in message and "(183,)" in message and "\n" not in message
    with pytest.raises(ArtifactError, match="trained on preset 'small'"):
        load_policy(runs["dqn"][0], preset="default")
    with pytest.raises(ArtifactError, match="no such model file"):
        load_policy(tmp_path / "nothing")
    with pytest.raises(ArtifactError, match=r"no model\.zip"):
        load_policy(tmp_path)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="not a readable SB3 model"):
        load_policy(junk)
    with pytest.raises(ConfigError, match="unknown preset"):
        load_policy(run, preset="tiny")


def test_vec_normalize_statistics_beside_the_model_are_applied(runs, tmp_path):
    run, model = runs["ppo"]
    shutil.copy(run / "model.zip", tmp_path / "model.zip")
    venv = InterestDecaySB3VecEnv(8, preset="small")
    norm = VecNormalize(venv, norm_reward=False)
    norm.reset()
    for _ in range(5):
        norm.step(np.zeros((8, K), np.int64))
    (tmp_path / "vecnormalize.pkl").write_bytes(pickle.dumps(norm))
    policy = load_policy(tmp_path / "model.zip", "small")
    assert policy.vec_normalize is not None
    obs, _ = InterestDecayVectorEnv(8, preset="small").reset(seed=0)
    actions, _ = policy.predict(obs)
    direct, _ = model.predict(norm.normalize_obs(obs), deterministic=True)
    full = obs[:, EMPTY_BLOCK * K : (EMPTY_BLOCK + 1) * K] < 0.5
    np.testing.assert_array_equal(actions[full], direct[full])


def test_recurrent_policy_state_flows_through_evaluate(runs):
    policy = load_policy(runs["recurrent_ppo"][0])
    assert isinstance(policy.model, RecurrentPPO)
    obs, _ = InterestDecayVectorEnv(4, preset="small").reset(seed=0)
    _, state = policy.predict(obs, episode_start=np.ones(4, bool))
    assert state[0].shape == (1, 4, policy.model.policy.lstm_actor.hidden_size)
    assert isinstance(load_policy(runs["maskable_ppo"][0]).model, MaskablePPO)
    assert isinstance(load_policy(runs["a2c"][0]).model, A2C)
    assert isinstance(load_policy(runs["ppo"][0]).model, PPO)
