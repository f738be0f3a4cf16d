"""NeuralDecay, the learned decay model: fit, predict, encode, and its artifact state.

The network is :mod:`decay_model.neural.network`, the training loop
:mod:`decay_model.neural.train`. Launched by torchrun, :meth:`NeuralDecay.fit` trains on every
process it started (:mod:`decay_model.neural.distributed`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import torch

from decay_model.errors import ConfigError, DataValidationError
from decay_model.exponential import ExponentialDecay
from decay_model.logs.schema import BEHAVIORS, BehaviourLog
from decay_model.metrics import auc, log_loss
from decay_model.neural.checkpoint import CHECKPOINT, load_checkpoint
from decay_model.neural.config import DEPARTURES, PRESETS, NeuralDecayConfig
from decay_model.neural.distributed import World, join
from decay_model.neural.network import NeuralDecayNet, to_device
from decay_model.neural.train import (
    fit_linear,
    make_optimizer,
    seeded_generators,
    steps_per_epoch,
    train_epochs,
)
from decay_model.sequences import CAND_FEATURES, EventIndex, GroupData, build_vocab
from decay_model.task import EvalTask


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class NeuralDecay:
    """The learned decay model; follows the DecayModel contract of decay_model.artifact.

    Args:
        config: sizes and training settings (default: the ``tiny`` preset).
        device: "cpu", "cuda", "cuda:1"...; default CUDA when present, else CPU.
        checkpoint_dir: folder for the per-epoch checkpoint; None writes none.
        resume: continue from the checkpoint in ``checkpoint_dir`` when there is one.
        show_progress: a rich progress bar with loss and validation metrics; True opens one,
            a running ``rich.progress.Progress`` gets the epochs as rows of its own.
        on_batch: test hook called after every training batch with (epoch, batch number).
        threads: torch CPU threads while fitting and predicting (restored afterwards); default 1.
            The matrices are small, so more threads buy little, and on a busy machine
            OpenMP threads oversubscribe the cores: one step of the tiny preset took
            10 ms with 1 thread and 0.95 s with 2 threads on a loaded 2-core machine.
    """

    name = "neural"

    def __init__(
        self,
        config: NeuralDecayConfig | None = None,
        *,
        device: str | torch.device | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        show_progress: bool | Any = False,
        on_batch: Callable[[int, int], None] | None = None,
        threads: int | None = 1,
    ) -> None:
        self.config = config or PRESETS["tiny"]
        self.device = torch.device(device) if device is not None else default_device()
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resume = resume
        self.show_progress = show_progress
        self.on_batch = on_batch
        self.threads = threads
        self.vocab = np.empty(0, dtype=np.int64)
        self.horizon_hours = 24.0
        self.net: NeuralDecayNet | None = None
        self.prior_model: ExponentialDecay | None = None
        self.history: list[dict[str, float]] = []
        self.fit_seconds = float("nan")
        self._index_cache: tuple[int, EventIndex] | None = None

    # -- helpers ------------------------------------------------------------------------
    def _index(self, log: BehaviourLog) -> EventIndex:
        if self._index_cache is None or self._index_cache[0] != id(log):
            self._index_cache = (id(log), EventIndex(log))
        return self._index_cache[1]

    def _autocast(self) -> Any:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        before = torch.get_num_threads()
        if self.threads is not None and self.device.type == "cpu":
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _attach_prior(self, data: GroupData) -> None:
        """Per candidate: the prior's log λ, log floor and logit level (see exponential_prior)."""
        prior = self.prior_model
        if prior is None or data.prior is not None:
            return
        frame = data.candidate_frame()
        log_lam = prior.log_rates(frame["user_id"].to_numpy(), frame["category_id"].to_numpy())
        log_floor = prior.log_b0 + prior._offsets(frame, "floor")
        level = prior.alpha + prior._offsets(frame, "level")
        if self.config.exact_prior:
            # P averages the decay sum over the horizon (a factor frac on s), the prior does not:
            # floor·frac and level − β·log frac make the untrained network predict the prior exactly.
            x = np.exp(log_lam) * self.horizon_hours
            log_frac = np.log(-np.expm1(-x) / x)
            log_floor = log_floor + log_frac
            level = level - prior.beta * log_frac
        data.prior = np.stack([log_lam, log_floor, level], axis=1)

    def _require_net(self) -> NeuralDecayNet:
        if self.net is None:
            raise ConfigError("NeuralDecay is not fitted: call fit(task) or load an artifact first")
        return self.net

    def _run(
        self,
        data: GroupData,
        key: str | None = None,
        batch_groups: int | None = None,
        groups: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Predictions (or decay parameters) for every candidate of ``data``, in ``cand_row`` order.

        ``groups`` limits them to those groups' candidates (the others are left 0).
        """
        net = self._require_net()
        net.eval()
        cfg = self.config
        keys = ("p",) if key is None else ("a", "lam", "b", "p")
        out = {k: np.zeros(data.n_candidates, dtype=np.float64) for k in keys}
        self._attach_prior(data)
        groups = np.arange(data.n_groups) if groups is None else groups
        with torch.no_grad(), self._autocast(), self._threads():
            size = batch_groups or cfg.eval_batch_groups
            for lo in range(0, len(groups), size):
                batch = data.batch(groups[lo : lo + size], self.vocab, cfg.max_len, cfg.max_cat_events)
                cand = batch.pop("cand_index").numpy()
                dec = net.decay(to_device(batch, self.device))
                rows = data.cand_row[cand]
                for k in keys:
                    out[k][rows] = dec[k].float().cpu().numpy()
        return out

    # -- fitting ------------------------------------------------------------------------
    def fit(self, task: EvalTask) -> Self:
        """Train on the training period; early stopping reads the validation period only.

        Under torchrun (``WORLD_SIZE`` > 1) every process calls this with the same task and
        config: each trains on its share of the batches, DistributedDataParallel averages the
        gradients, and every rank ends with the same weights and history; rank 0 alone writes the
        checkpoint. With a CUDA device, each process takes the GPU of its ``LOCAL_RANK``.
        """
        with self._threads():
            return self._fit(task)

    def _fit(self, task: EvalTask) -> Self:
        start_time = time.perf_counter()
        cfg = self.config
        index = self._index(task.log)
        train = GroupData.from_task(task, "train", index)
        valid = GroupData.from_task(task, "valid", index)
        self.vocab = build_vocab(index, task.split.valid_start, cfg.vocab_min_count, cfg.vocab_max_size)
        self.horizon_hours = float(task.config.horizon_hours)
        if cfg.exponential_prior:
            self.prior_model = ExponentialDecay().fit(task)
        self._attach_prior(train)
        world, self.device = join(self.device, cfg.batch_groups)
        # No draw from torch's global generator: the initial weights come from a CPU generator
        # and the dropout masks from one on the model's device, both seeded from cfg.seed (their
        # own streams, stream_seed), shuffling from a third; checkpoints save the ones still in use.
        init, dropout = seeded_generators(cfg.seed, self.device, world.rank)
        net = NeuralDecayNet(cfg, len(self.vocab), self.horizon_hours, generator=init)
        if self.prior_model is not None:
            net.init_from_prior(self.prior_model.beta, self.prior_model.log_w)
        net = net.to(self.device)
        net.set_dropout_generator(dropout)
        ckpt = self.checkpoint_dir / CHECKPOINT if self.checkpoint_dir is not None else None
        # rank 0's folder decides: the other ranks need not see it (load_checkpoint sends its bytes)
        resuming = world.from_main(self.resume and ckpt is not None and ckpt.is_file())
        linear_loss = float("nan")
        if net.skip is not None:
            if not resuming:  # a checkpoint holds the fitted linear stage already
                linear_loss = fit_linear(net, train, cfg, self.vocab, self.device)
            net.skip.requires_grad_(False)
        opt, sched = make_optimizer(net, cfg, steps_per_epoch(train, cfg, world.size) * cfg.epochs)
        shuffle = torch.Generator().manual_seed(cfg.seed)
        state = {"epoch": 0, "best": float("inf"), "best_state": None, "bad_epochs": 0, "history": []}
        self.net = net
        if resuming:
            where = ckpt or Path(CHECKPOINT)  # a rank > 0 without the folder: named in messages only
            self.vocab, state = load_checkpoint(where, cfg, net, opt, sched, shuffle, dropout, world)
        # Several ranks: DDP copies rank 0's weights (its linear stage, say) to every rank here.
        trainer = world.wrap(net, self.device)
        evaluate = functools.partial(self._valid_metrics, valid, world)
        if not resuming and net.skip is not None:
            # The linear stage alone is "epoch 0": the Transformer must beat it on validation.
            linear_loss = world.from_main(linear_loss)  # the loss of the weights DDP kept
            metrics = {"epoch": 0, "train_loss": linear_loss, **evaluate()}
            state["history"].append(metrics)
            state["best"] = metrics["valid_log_loss"]
            state["best_state"] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        train_epochs(
            net,
            train,
            cfg,
            self.vocab,
            state,
            device=self.device,
            opt=opt,
            sched=sched,
            shuffle=shuffle,
            dropout=dropout,
            autocast=self._autocast,
            evaluate=evaluate,
            checkpoint=ckpt,
            show_progress=self.show_progress,
            on_batch=self.on_batch,
            world=world,
            trainer=trainer,
        )
        if state["best_state"] is not None:
            net.load_state_dict(state["best_state"])
        self.history = state["history"]
        self.fit_seconds = time.perf_counter() - start_time
        return self

    def _valid_metrics(self, valid: GroupData, world: World | None = None) -> dict[str, float]:
        """Log-loss and AUC of the current network on the validation groups.

        On several ranks each predicts every size-th group and the predictions are summed over
        the ranks (the others' rows are 0), so every rank scores all of them; rank 0's figures
        are then sent to all, so that early stopping cannot part ranks that round differently.
        """
        world = world or World()
        groups = np.arange(world.rank, valid.n_groups, world.size)
        p_valid = world.sum(self._run(valid, groups=groups)["p"])
        y_valid = valid.label[np.argsort(valid.cand_row)]
        metrics = {"valid_log_loss": log_loss(y_valid, p_valid), "valid_auc": auc(y_valid, p_valid)}
        return dict(world.from_main(metrics))

    # -- prediction ---------------------------------------------------------------------
    def predict(self, task: EvalTask, period: str) -> np.ndarray:
        """P(re-engagement within the horizon) for every example of a period, in the examples' order."""
        return self._run(GroupData.from_task(task, period, self._index(task.log)))["p"]

    def decay_params(self, task: EvalTask, period: str) -> pd.DataFrame:
        """Per example of a period: a, λ, b and P (columns ``a, lam, b, p``), in the examples' order."""
        out = self._run(GroupData.from_task(task, period, self._index(task.log)), key="all")
        return pd.DataFrame(out)

    def encode(
        self, log: BehaviourLog, at: int | None = None, batch_groups: int | None = None
    ) -> pd.DataFrame:
        """Interest now (P), decay rate and floor of every (user, category) pair with events before ``at``.

        Batched over users on the model's device. ``at`` defaults to just after the
        last event. Columns follow decay_model.population.ENCODED_COLUMNS.
        """
        at = log.t_max + 1 if at is None else int(at)
        index = self._index(log)
        before = index.pair_count_before(np.arange(len(index.pair_start)), np.full(len(index.pair_start), at))
        keep = np.flatnonzero(before > 0)
        if not len(keep):
            raise DataValidationError(f"{log.report.path}: no events before {at}; nothing to encode")
        frame = pd.DataFrame(
            {"user_id": index.pair_user[keep], "category_id": index.pair_cat[keep], "cutoff": at}
        )
        data = GroupData.from_candidates(index, frame)
        out = self._run(data, key="all", batch_groups=batch_groups)
        return pd.DataFrame(
            {
                "user_id": frame["user_id"].to_numpy(),
                "category_id": frame["category_id"].to_numpy(),
                "interest": out["p"],
                "lam": out["lam"],
                "floor": out["b"],
                "n_events": np.minimum(before[keep], self.config.max_cat_events).astype(np.int64),
            }
        )

    # -- artifact -----------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        """Weights plus vocabulary and horizon, as CPU tensors."""
        net = self._require_net()
        out = {f"net.{k}": v.detach().cpu() for k, v in net.state_dict().items()}
        out["vocab"] = torch.as_tensor(self.vocab, dtype=torch.int64)
        out["horizon_hours"] = torch.tensor(self.horizon_hours, dtype=torch.float64)
        if self.prior_model is not None:
            out.update({f"prior.{k}": v for k, v in self.prior_model.state().items()})
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`state`; the network goes to this model's device."""
        self.vocab = state["vocab"].numpy().astype(np.int64)
        self.horizon_hours = float(state["horizon_hours"])
        prior = {k[6:]: v for k, v in state.items() if k.startswith("prior.")}
        self.prior_model = None
        if prior:
            self.prior_model = ExponentialDecay()
            self.prior_model.load_state(prior)
        net = NeuralDecayNet(self.config, len(self.vocab), self.horizon_hours)
        net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        self.net = net.to(self.device)

    def to(self, device: str | torch.device) -> Self:
        """This model, its network moved to ``device`` (predictions and encoding run there)."""
        self.device = torch.device(device)
        if self.net is not None:
            self.net = self.net.to(self.device)
        return self

    def config_dict(self) -> dict[str, Any]:
        """The config, JSON-ready."""
        return asdict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        """An unfitted model with the settings of :meth:`config_dict` (unknown keys rejected)."""
        known = {f.name for f in fields(NeuralDecayConfig)}
        unknown = set(config) - known
        if unknown:
            raise ConfigError(f"NeuralDecay config: unknown keys {sorted(unknown)}")
        return cls(NeuralDecayConfig(**config))

    def describe(self) -> dict[str, object]:
        """Readable summary for the card."""
        net = self._require_net()
        return {
            "preset": self.config.preset,
            "n_parameters": int(sum(p.numel() for p in net.parameters())),
            "vocab_size": len(self.vocab),
            "horizon_hours": self.horizon_hours,
            "lambda0_per_hour": float(torch.exp(net.log_lambda0.detach()).cpu()),
            "behavior_weights": dict(
                zip(
                    BEHAVIORS, torch.exp(net.log_w.detach()[1:]).cpu().round(decimals=4).tolist(), strict=True
                )
            ),
            "linear_departures": self._linear_summary(net),
            "history": self.history,
            "fit_seconds": None if math.isnan(self.fit_seconds) else round(self.fit_seconds, 1),
        }

    @staticmethod
    def _linear_summary(net: NeuralDecayNet) -> dict[str, dict[str, float]]:
        """The linear stage's weight per log1p-scaled feature (and bias), by departure: readable effects."""
        if net.skip is None:
            return {}
        weight = net.skip.weight.detach().cpu().numpy()
        bias = net.skip.bias.detach().cpu().numpy()
        return {
            DEPARTURES[col]: {
                **{name: round(float(w), 4) for name, w in zip(CAND_FEATURES, weight[i], strict=False)},
                "bias": round(float(bias[i]), 4),
            }
            for i, col in enumerate(net.linear_cols)
        }
