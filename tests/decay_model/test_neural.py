from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from decay_model import MODELS, ConfigError, EvalTask, NeuralDecay, load_artifact, save_artifact
from decay_model.neural import (
    CHECKPOINT,
    PRESETS,
    GeneratorDropout,
    NeuralDecayConfig,
    NeuralDecayNet,
    preset,
)
from decay_model.population import check_encoded, summarize_population
from decay_model.sequences import CAND_FEATURES, EventIndex, GroupData, build_vocab, padded_groups
from decay_model.synthetic import SyntheticConfig, generate


class Interrupted(Exception):
    """Stands for a run killed in the middle of an epoch."""


@pytest.fixture(scope="module")
def task() -> EvalTask:
    return EvalTask(generate(SyntheticConfig(n_users=80, n_categories=10), seed=3).log)


@pytest.fixture(scope="module")
def fitted(task: EvalTask) -> NeuralDecay:
    return NeuralDecay(preset("tiny", epochs=2), device="cpu").fit(task)


def test_registered_and_presets() -> None:
    assert MODELS["neural"] is NeuralDecay
    assert set(PRESETS) == {"tiny", "base", "base_sessions", "large"}
    assert preset("base", seed=4).seed == 4
    with pytest.raises(ConfigError, match="unknown NeuralDecay preset"):
        preset("huge")
    with pytest.raises(ConfigError, match="must divide"):
        NeuralDecayConfig(d_model=30, n_heads=4)
    with pytest.raises(ConfigError, match="unknown keys"):
        NeuralDecay.from_config({"d_model": 32, "colour": "red"})
    with pytest.raises(ConfigError, match="linear_departures"):
        NeuralDecayConfig(linear_departures="rate+speed")
    with pytest.raises(ConfigError, match="linear_departures"):
        NeuralDecayConfig(linear_departures="rate+rate")


def test_batches_are_padded_and_use_only_the_past(task: EvalTask) -> None:
    data = GroupData.from_task(task, "valid")
    vocab = build_vocab(data.index, task.split.valid_start, 1, 100)
    batch = data.batch(np.arange(5), vocab, max_len=8, max_cat_events=4)
    b = 5
    n = int(data.cand_start[5])
    assert batch["seq_cat"].shape == (b, 8) and batch["seq_time"].shape == (b, 8, 2)
    assert batch["hist_age"].shape == (n, 4) and batch["cand_feat"].shape == (n, len(CAND_FEATURES))
    # Right-aligned: the newest event sits in the last column, padding (0) on the left.
    assert bool((batch["seq_beh"][:, -1] > 0).all())
    # Every event is strictly before the cutoff: positive ages.
    real = batch["hist_beh"] > 0
    assert bool((batch["hist_age"][real] > 0).all())
    assert bool(real[:, 0].all())  # each candidate has at least one past event
    # Labels follow the examples they came from.
    ex = task.examples("valid")
    rows = data.cand_row[batch["cand_index"].numpy()]
    np.testing.assert_array_equal(batch["label"].numpy(), ex["label"].to_numpy()[rows])


def test_every_rank_gets_an_equal_nonempty_share_of_every_batch(task: EvalTask) -> None:
    data = GroupData.from_task(task, "valid")
    vocab = build_vocab(data.index, task.split.valid_start, 1, 100)
    size, batch_groups = 3, 6
    assert data.n_groups % batch_groups  # a short last batch, as on real data
    shares = [
        [len(b["seq_cat"]) for b in data.batches(batch_groups, vocab, 8, 4, shard=(rank, size))]
        for rank in range(size)
    ]
    assert shares[0] == shares[1] == shares[2] and min(shares[0]) >= 1
    assert sum(map(sum, shares)) == padded_groups(data.n_groups, size)


def test_fit_predicts_probabilities_with_positive_rates(task: EvalTask, fitted: NeuralDecay) -> None:
    for period in ("valid", "test"):
        p = fitted.predict(task, period)
        assert p.shape == (len(task.examples(period)),)
        assert np.all(np.isfinite(p)) and p.min() > 0 and p.max() < 1
    params = fitted.decay_params(task, "test")
    assert np.all(np.isfinite(params["lam"])) and params["lam"].min() > 0
    # P is the horizon average of b + (a - b) e^{-λΔ}: between a and b.
    lo = np.minimum(params["a"], params["b"]) - 1e-6
    hi = np.maximum(params["a"], params["b"]) + 1e-6
    assert np.all((params["p"] >= lo) & (params["p"] <= hi))
    assert len(fitted.history) == 2 and "valid_log_loss" in fitted.history[0]


def test_same_seed_same_result(task: EvalTask, fitted: NeuralDecay) -> None:
    again = NeuralDecay(preset("tiny", epochs=2), device="cpu").fit(task)
    np.testing.assert_array_equal(again.predict(task, "valid"), fitted.predict(task, "valid"))
    other = NeuralDecay(preset("tiny", epochs=2, seed=1), device="cpu").fit(task)
    assert not np.array_equal(other.predict(task, "valid"), fitted.predict(task, "valid"))


def test_fit_neither_reads_nor_changes_the_global_rng(task: EvalTask) -> None:
    # Dropout on, so that masks are drawn: the same cfg.seed after two different global seeds
    # gives the same weights and metrics, and fit leaves the global state as it found it.
    config = preset("tiny", epochs=2, dropout=0.2)
    fits = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        fits.append(NeuralDecay(config, device="cpu").fit(task))
        assert torch.equal(torch.get_rng_state(), before)
    first, second = (m.net.state_dict() for m in fits if m.net is not None)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert fits[0].history == fits[1].history
    np.testing.assert_array_equal(fits[0].predict(task, "valid"), fits[1].predict(task, "valid"))


def test_initialisation_comes_from_the_generator_alone() -> None:
    config = preset("tiny", dropout=0.1, session_features=True, linear_departures="rate")
    before = torch.get_rng_state()
    nets = [NeuralDecayNet(config, 30, generator=torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    assert torch.equal(torch.get_rng_state(), before)  # built on the meta device: nothing drawn
    same, other = nets[0].state_dict(), nets[2].state_dict()
    for name, value in nets[1].state_dict().items():
        assert torch.equal(value, same[name]), name
    assert not torch.equal(same["cat_emb.weight"], other["cat_emb.weight"])
    assert not torch.equal(
        same["encoder.layers.0.self_attn.in_proj_weight"], other["encoder.layers.0.self_attn.in_proj_weight"]
    )
    # The documented distributions: padding rows, zero biases and last layer, unit LayerNorm.
    net = nets[0].requires_grad_(False)
    assert float(net.cat_emb.weight[0].abs().sum()) == 0 and 0.01 < float(net.cat_emb.weight.std()) < 0.03
    assert float(net.head[-1].weight.abs().sum()) == 0 and net.skip is not None
    assert float(net.skip.weight.abs().sum()) == 0
    assert torch.equal(net.encoder.layers[0].norm1.weight, torch.ones(config.d_model))
    assert float(net.query.bias.abs().sum()) == 0


def test_generator_dropout_masks_follow_the_generator() -> None:
    drop = GeneratorDropout(0.5)
    x = torch.ones(1000)
    with pytest.raises(RuntimeError, match="generator"):
        drop(x)
    drop.generator = torch.Generator().manual_seed(0)
    a = drop(x)
    drop.generator = torch.Generator().manual_seed(0)
    torch.testing.assert_close(drop(x), a)
    assert set(a.unique().tolist()) == {0.0, 2.0} and 400 < int((a == 0).sum()) < 600
    drop.eval()
    assert drop(x) is x


def test_encoder_matches_pytorch_layer_in_eval_mode() -> None:
    # Same parameter names and shapes as nn.TransformerEncoder(norm_first, gelu, batch_first),
    # so weights load either way (older artifacts too) and eval outputs agree.
    config = preset("tiny", n_layers=2, n_heads=4, dropout=0.1)
    d = config.d_model
    net = NeuralDecayNet(config, 10)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in net.encoder.parameters():
            param.copy_(torch.randn(param.shape, generator=g) * 0.3)
    layer = torch.nn.TransformerEncoderLayer(
        d, config.n_heads, 4 * d, config.dropout, activation="gelu", batch_first=True, norm_first=True
    )
    reference = torch.nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
    reference.load_state_dict(net.encoder.state_dict())
    net.eval()
    reference.eval()
    x = torch.randn(5, 12, d, generator=g)
    pad = torch.zeros(5, 12, dtype=torch.bool)
    pad[0, :7] = True
    pad[3, :11] = True  # right-aligned sequences: padding on the left
    with torch.no_grad():
        torch.testing.assert_close(net.encoder(x, pad), reference(x, src_key_padding_mask=pad))


@pytest.mark.parametrize(
    "extra",
    [{}, {"session_features": True, "linear_departures": "rate"}],
    ids=["transformer", "with_linear_stage"],
)
def test_resume_after_a_kill_mid_epoch_matches_uninterrupted(task: EvalTask, tmp_path, extra) -> None:
    config = preset("tiny", epochs=3, dropout=0.1, patience=5, **extra)
    full = NeuralDecay(config, device="cpu", checkpoint_dir=tmp_path / "full").fit(task)
    assert (tmp_path / "full" / CHECKPOINT).is_file()

    def kill(epoch: int, batch: int) -> None:
        if epoch == 1 and batch == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        NeuralDecay(config, device="cpu", checkpoint_dir=tmp_path / "killed", on_batch=kill).fit(task)
    resumed = NeuralDecay(config, device="cpu", checkpoint_dir=tmp_path / "killed", resume=True).fit(task)
    assert [h["valid_log_loss"] for h in resumed.history] == [h["valid_log_loss"] for h in full.history]
    np.testing.assert_array_equal(resumed.predict(task, "valid"), full.predict(task, "valid"))


def test_resume_refuses_a_checkpoint_of_another_config(task: EvalTask, tmp_path) -> None:
    from decay_model.errors import ArtifactError

    NeuralDecay(preset("tiny", epochs=1), device="cpu", checkpoint_dir=tmp_path).fit(task)
    with pytest.raises(ArtifactError, match="another run"):
        NeuralDecay(preset("tiny", epochs=1, seed=9), device="cpu", checkpoint_dir=tmp_path, resume=True).fit(
            task
        )


def test_encode_contract_and_artifact_round_trip(task: EvalTask, fitted: NeuralDecay, tmp_path) -> None:
    encoded = fitted.encode(task.log, at=task.split.valid_start, batch_groups=7)
    check_encoded(encoded)
    index = EventIndex(task.log)
    assert len(encoded) == int(
        (
            index.pair_count_before(
                np.arange(len(index.pair_start)), np.full(len(index.pair_start), task.split.valid_start)
            )
            > 0
        ).sum()
    )
    population = summarize_population(encoded)
    folder = save_artifact(
        fitted, tmp_path / "neural", log=task.log, task_config=task.config, population=population
    )
    model, card = load_artifact(folder)
    assert card["model"] == "neural" and card["config"]["preset"] == "tiny"
    np.testing.assert_allclose(model.predict(task, "test"), fitted.predict(task, "test"), rtol=1e-6)
    again = model.encode(task.log, at=task.split.valid_start)
    np.testing.assert_allclose(again["lam"], encoded["lam"], rtol=1e-6)


@pytest.mark.slow
def test_base_on_taobao_rates_agree_with_exponential(taobao_path) -> None:
    from decay_model import ExponentialDecay, load_log

    task = EvalTask(load_log(taobao_path, "taobao"))
    neural = NeuralDecay(preset("base"), device="cpu").fit(task)
    at = task.split.valid_start
    ours = neural.encode(task.log, at=at)
    exponential = neural.prior_model or ExponentialDecay().fit(task)  # the same deterministic fit
    theirs = exponential.encode(task.log, at=at)
    assert np.all(np.isfinite(ours["lam"])) and ours["lam"].min() > 0
    top = task.log.events["category_id"].value_counts().index[:20]
    for category in top:
        mine = ours.loc[ours["category_id"] == category, "lam"].median()
        ref = theirs.loc[theirs["category_id"] == category, "lam"].median()
        assert 1 / 3 < mine / ref < 3, (category, mine, ref)


def test_listwise_term_trains_and_targets_match_ranking(task: EvalTask) -> None:
    from decay_model.ranking import next_category

    data = GroupData.from_task(task, "test")
    group, target = next_category(task, "test")
    ex = task.examples("test")
    expected = (ex["category_id"].to_numpy() == target[group]).astype(float)
    np.testing.assert_array_equal(data.cand_next[np.argsort(data.cand_row)], expected)
    model = NeuralDecay(preset("tiny", epochs=1, rank_weight=0.5, exponential_prior=False), device="cpu").fit(
        task
    )
    assert np.isfinite(model.history[0]["train_loss"])


def test_pair_sessions_split_at_gaps_longer_than_an_hour() -> None:
    import pandas as pd

    hour = 3600
    # One user, category 7 at 0 h, 0.5 h (same session), 3 h, 10 h; category 8 once at 1 h.
    times = np.array([0, hour // 2, 3 * hour, 10 * hour, hour]) + 1_000_000
    events = pd.DataFrame(
        {
            "user_id": 1,
            "item_id": np.arange(5),
            "category_id": [7, 7, 7, 7, 8],
            "behavior": np.zeros(5, dtype=np.int8),
            "timestamp": times,
        }
    )
    index = EventIndex(SimpleNamespace(events=events))
    frame = pd.DataFrame({"user_id": [1, 1, 1], "category_id": [7, 7, 8], "cutoff": times[[2, 3, 3]] + 1})
    data = GroupData.from_candidates(index, frame)
    batch = data.batch(np.arange(data.n_groups), np.array([7, 8]), max_len=8, max_cat_events=8)
    feat = batch["cand_feat"].numpy()
    rows = data.cand_row[batch["cand_index"].numpy()]
    sessions = np.expm1(feat[np.argsort(rows), CAND_FEATURES.index("pair_sessions")])
    span = np.expm1(feat[np.argsort(rows), CAND_FEATURES.index("pair_span")])
    np.testing.assert_allclose(sessions, [2, 3, 1], rtol=1e-6)  # (0, 0.5) | 3 ; then | 10 ; one for 8
    np.testing.assert_allclose(span, [3 + 1 / hour, 10 + 1 / hour, 9 + 1 / hour], rtol=1e-5)


def test_exact_prior_starts_at_the_exponential(task: EvalTask) -> None:
    # A learning rate too small to move anything: the network is its initial self.
    config = preset("tiny", epochs=1, lr=1e-12, max_cat_events=64, exact_prior=True)
    model = NeuralDecay(config, device="cpu").fit(task)
    assert model.prior_model is not None
    np.testing.assert_allclose(
        model.predict(task, "valid"), model.prior_model.predict(task, "valid"), rtol=1e-4, atol=1e-6
    )


def test_linear_stage_is_epoch_zero_and_deterministic(task: EvalTask) -> None:
    config = preset("tiny", epochs=2, session_features=True, exact_prior=True, linear_departures="rate+level")
    model = NeuralDecay(config, device="cpu").fit(task)
    assert [h["epoch"] for h in model.history] == [0, 1, 2]
    assert np.isfinite(model.history[0]["train_loss"])
    assert model.net is not None and model.net.skip is not None
    assert float(model.net.skip.weight.abs().sum()) > 0  # the stage moved off the prior
    params = model.decay_params(task, "valid")
    assert np.all(np.isfinite(params["lam"])) and params["lam"].min() > 0
    again = NeuralDecay(config, device="cpu").fit(task)
    np.testing.assert_array_equal(again.predict(task, "valid"), model.predict(task, "valid"))
