"""The network of NeuralDecay: event encoder, candidate attention and the explicit decay head.

The formulas are in the :mod:`decay_model.neural` docstring. No random number comes from
torch's global generator: initial weights and dropout masks come from generators passed in.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from decay_model.errors import ConfigError
from decay_model.logs.schema import BEHAVIORS
from decay_model.neural.config import DEPARTURES, NeuralDecayConfig
from decay_model.sequences import CAND_FEATURES

#: log1p of: the pair's events before T, hours since its newest, the user's events before T,
#: hours since the user's newest event (any category), the user's events in the last day.
N_CAND_FEATURES = 5
LAMBDA_RANGE = (1e-4, 10.0)


class GeneratorDropout(nn.Module):
    """Dropout whose mask comes from an explicit ``torch.Generator``, never torch's global one.

    In training, each element is kept when ``torch.rand(..., generator=g) >= p`` and scaled by
    1/(1 - p); in eval mode (or with p = 0) the input passes unchanged. ``generator`` must live on
    the input's device and is set by :meth:`NeuralDecayNet.set_dropout_generator`.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with dropped elements zeroed and the rest scaled (training), else ``x``."""
        if not self.training or self.p == 0:
            return x
        if self.generator is None:
            raise RuntimeError("GeneratorDropout in training needs a generator: call set_dropout_generator")
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.p
        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        """The rate, in the module's repr."""
        return f"p={self.p}"


class _SelfAttention(nn.Module):
    """Multi-head self-attention with a key padding mask and generator dropout on its weights.

    The parameters are those of ``nn.MultiheadAttention`` (``in_proj_weight``, ``in_proj_bias``,
    ``out_proj``), with the same names and shapes, and so is the eval-mode output.
    """

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * d))
        self.out_proj = nn.Linear(d, d)
        self.dropout = GeneratorDropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Attend over the sequence: ``x`` [B, L, d], ``pad`` [B, L] (True: never attended to)."""
        b, n, d = x.shape
        h = self.n_heads
        qkv = nn.functional.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)  # each [B, H, L, d/h]
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // h)
        scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))
        return self.out_proj((weights @ v).transpose(1, 2).reshape(b, n, d))


class _EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer with GELU, batch-first, every dropout from a generator.

    The computation, parameter names and shapes of ``nn.TransformerEncoderLayer(d, n_heads, 4 d,
    dropout, activation="gelu", batch_first=True, norm_first=True)``:
    x + dropout1(attention(norm1(x))), then x + dropout2(linear2(dropout(gelu(linear1(norm2(x)))))).
    """

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = _SelfAttention(d, n_heads, dropout)
        self.linear1 = nn.Linear(d, 4 * d)
        self.dropout = GeneratorDropout(dropout)
        self.linear2 = nn.Linear(4 * d, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout1 = GeneratorDropout(dropout)
        self.dropout2 = GeneratorDropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout1(self.self_attn(self.norm1(x), pad))
        ff = self.linear2(self.dropout(nn.functional.gelu(self.linear1(self.norm2(x)))))
        return x + self.dropout2(ff)


class _Encoder(nn.Module):
    """A stack of :class:`_EncoderLayer` (state-dict keys ``layers.<i>.*``, as ``nn.TransformerEncoder``)."""

    def __init__(self, d: int, n_heads: int, dropout: float, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_EncoderLayer(d, n_heads, dropout) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, pad)
        return x


class NeuralDecayNet(nn.Module):
    """The network: event encoder, candidate attention and the decay head (nanoGPT-style module).

    No random number comes from torch's global generator: the modules are built on the meta
    device (nothing drawn), materialised on the CPU and initialised by :meth:`reset_parameters`
    from ``generator`` (default: a fresh one seeded 0); dropout draws its masks from the generator
    given to :meth:`set_dropout_generator`. Move the network with ``.to(device)`` afterwards.
    """

    def __init__(
        self,
        config: NeuralDecayConfig,
        n_vocab: int,
        horizon_hours: float = 24.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.horizon_hours = float(horizon_hours)
        self.rank_weight = float(config.rank_weight)
        d = config.d_model
        n_beh = len(BEHAVIORS) + 1  # 0 is padding
        with torch.device("meta"):
            self.cat_emb = nn.Embedding(n_vocab + 2, d, padding_idx=0)  # 0 padding, 1 OOV
            self.beh_emb = nn.Embedding(n_beh, d, padding_idx=0)
            self.time_proj = nn.Sequential(nn.Linear(2, d), nn.GELU(), nn.Linear(d, d))
            self.pos_emb = nn.Embedding(config.max_len, d)
            self.encoder = _Encoder(d, config.n_heads, config.dropout, config.n_layers)
            self.norm = nn.LayerNorm(d)
            self.n_feat = len(CAND_FEATURES) if config.session_features else N_CAND_FEATURES
            self.cand_proj = nn.Linear(self.n_feat, d)
            kinds = [k for k in config.linear_departures.split("+") if k]
            self.linear_cols = [DEPARTURES.index(k) for k in kinds]
            self.skip = nn.Linear(self.n_feat, len(kinds)) if kinds else None
            self.query = nn.Linear(d, d)
            self.key = nn.Linear(d, d)
            self.head = nn.Sequential(
                nn.Linear(4 * d, 2 * d), nn.GELU(), GeneratorDropout(config.dropout), nn.Linear(2 * d, 3)
            )
            # Interpretable scalars of the decay sum; added to the prior's offsets when there is one.
            self.log_lambda0 = nn.Parameter(torch.empty(()))
            self.log_b0 = nn.Parameter(torch.empty(()))
            self.alpha = nn.Parameter(torch.empty(()))
            self.log_beta = nn.Parameter(torch.empty(()))
            self.log_w = nn.Parameter(torch.empty(n_beh))
        self.to_empty(device="cpu")
        self.reset_parameters(generator if generator is not None else torch.Generator().manual_seed(0))

    def init_from_prior(self, beta: float, log_w: np.ndarray) -> None:
        """Start at the prior: its offsets carry λ_0, b_0 and α; take its link slope and weights."""
        with torch.no_grad():
            self.log_lambda0.zero_()
            self.log_b0.zero_()
            self.alpha.zero_()
            self.log_beta.fill_(math.log(max(beta, 1e-3)))
            self.log_w[1:] = torch.as_tensor(log_w, dtype=self.log_w.dtype)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise every parameter, the random ones from ``generator`` (a CPU generator).

        The draws follow ``named_modules()`` order (registration order: cat_emb, beh_emb,
        time_proj, pos_emb, encoder layers, norm, cand_proj, skip, query, key, head), and within a
        module its own parameters in registration order, so a seed gives one set of weights:

        - Embedding: N(0, 0.02²), the padding row 0;
        - Linear: weight N(0, 0.02²), bias 0;
        - attention ``in_proj_weight``: Xavier uniform, ``in_proj_bias`` 0 (nn.MultiheadAttention's);
        - LayerNorm: weight 1, bias 0;
        - the head's last layer and the linear stage's weight 0 (training starts at the prior);
        - the decay scalars: λ_0 = 0.05/hour, b_0 = 0.1, α = −1, β = 0.7, behaviour weights 1.
        """
        g = generator
        if g.device.type != "cpu":
            raise ConfigError(f"NeuralDecayNet.reset_parameters needs a CPU generator, got {g.device}")
        done: set[int] = set()
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02, generator=g)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02, generator=g)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, _SelfAttention):
                nn.init.xavier_uniform_(module.in_proj_weight, generator=g)
                nn.init.zeros_(module.in_proj_bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            else:
                continue
            done.update(id(p) for p in module.parameters(recurse=False))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        if self.skip is not None:
            nn.init.zeros_(self.skip.weight)
        self.log_lambda0.fill_(math.log(0.05))
        self.log_b0.fill_(math.log(0.1))
        self.alpha.fill_(-1.0)
        self.log_beta.fill_(math.log(0.7))
        self.log_w.zero_()
        scalars = (self.log_lambda0, self.log_b0, self.alpha, self.log_beta, self.log_w)
        missed = [n for n, p in self.named_parameters() if id(p) not in done | {id(q) for q in scalars}]
        if missed:  # a module type added without an initialisation rule
            raise ConfigError(f"NeuralDecayNet.reset_parameters: no rule for {missed}")

    def set_dropout_generator(self, generator: torch.Generator) -> None:
        """Every dropout of the network draws its masks from ``generator`` (on the network's device)."""
        for module in self.modules():
            if isinstance(module, GeneratorDropout):
                module.generator = generator

    def decay(self, batch: dict[str, torch.Tensor], context: bool = True) -> dict[str, torch.Tensor]:
        """Per candidate: current interest a, decay rate λ (1/hour) and floor b.

        ``context=False`` skips the Transformer (its departures taken as 0): the linear stage's
        view, which needs only the ``cand_*``, ``hist_*`` and ``prior`` entries of the batch.
        Shapes: seq_* [B, L(, 2)], cand_* [N(, 3)], hist_* [N, K]; outputs [N].
        """
        feat = batch["cand_feat"][:, : self.n_feat]
        if context:
            out = self._context(batch, feat)
        else:
            out = torch.zeros(len(feat), 3, device=feat.device)
        if self.skip is not None:
            out = out.clone()
            out[:, self.linear_cols] += self.skip(feat).float()
        return self._explicit(batch, out)

    def _context(self, batch: dict[str, torch.Tensor], feat: torch.Tensor) -> torch.Tensor:
        """The Transformer's departures [N, 3] (log λ, level, log floor) of each candidate."""
        seq_cat, seq_beh, seq_time = batch["seq_cat"], batch["seq_beh"], batch["seq_time"]
        pad = seq_beh == 0  # [B, L]
        pos = torch.arange(seq_cat.shape[1], device=seq_cat.device)
        x = self.cat_emb(seq_cat) + self.beh_emb(seq_beh) + self.time_proj(seq_time) + self.pos_emb(pos)
        # A group always has >= 1 event (it has a candidate), so no row is fully masked.
        h = self.norm(self.encoder(x, pad))  # [B, L, d]
        g = batch["cand_group"]  # [N]
        q = self.cat_emb(batch["cand_cat"]) + self.cand_proj(feat)  # [N, d]
        keys = self.key(h)[g]  # [N, L, d]
        scores = torch.einsum("nd,nld->nl", self.query(q), keys) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(pad[g], float("-inf"))
        ctx = torch.einsum("nl,nld->nd", torch.softmax(scores, dim=-1), h[g])  # [N, d]
        last = h[:, -1][g]  # newest event's state (sequences are right-aligned)
        return self.head(torch.cat([q, ctx, q * ctx, last], dim=-1)).float()  # [N, 3]

    def _explicit(self, batch: dict[str, torch.Tensor], out: torch.Tensor) -> dict[str, torch.Tensor]:
        """a, λ, b and P from the departures ``out`` [N, 3] and the pair's own decay sum."""
        lo, hi = LAMBDA_RANGE
        prior = batch["prior"]  # [N, 3]: log λ, log floor, logit level of the prior (or 0)
        lam = torch.exp(self.log_lambda0 + prior[:, 0] + out[:, 0]).clamp(lo, hi)
        floor = torch.exp((self.log_b0 + prior[:, 1] + out[:, 2]).clamp(-12, 5))  # interest scale
        age, beh = batch["hist_age"], batch["hist_beh"]
        weight = torch.exp(self.log_w.clamp(-8, 8))[beh] * (beh > 0)
        s = (weight * torch.exp(-lam[:, None] * age)).sum(dim=1)  # what the history adds now
        x = lam * self.horizon_hours
        frac = -torch.expm1(-x) / x  # (1 - e^{-λh}) / (λh): horizon average of e^{-λΔ}
        level = self.alpha + prior[:, 2] + out[:, 1]
        beta = torch.exp(self.log_beta)
        return {
            "a": torch.sigmoid(level + beta * torch.log(floor + s)),
            "lam": lam,
            "b": torch.sigmoid(level + beta * torch.log(floor)),
            "p": torch.sigmoid(level + beta * torch.log(floor + s * frac)),
        }

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """P(re-engagement within the horizon) per candidate [N], and the mean NLL when labels are given."""
        p = self.decay(batch)["p"].clamp(1e-6, 1 - 1e-6)
        y = batch.get("label")
        if y is None or torch.isnan(y).any():
            return p, None
        loss = -(y * torch.log(p) + (1 - y) * torch.log1p(-p)).mean()
        is_next = batch.get("is_next")
        if self.rank_weight > 0 and is_next is not None:
            loss = loss + self.rank_weight * _group_softmax_loss(torch.logit(p), is_next, batch["cand_group"])
        return p, loss


def _group_softmax_loss(score: torch.Tensor, is_next: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Mean over groups with a target of -log softmax(score within the group)[target]; 0 if none."""
    n = int(group.max()) + 1 if len(group) else 0
    top = torch.full((n,), float("-inf"), device=score.device, dtype=score.dtype)
    top = top.scatter_reduce(0, group, score.detach(), reduce="amax", include_self=True)
    total = torch.zeros(n, device=score.device, dtype=score.dtype).index_add(
        0, group, torch.exp(score - top[group])
    )
    lse = top + torch.log(total)
    has = torch.zeros(n, device=score.device, dtype=score.dtype).index_add(0, group, is_next.to(score.dtype))
    target = torch.zeros(n, device=score.device, dtype=score.dtype).index_add(0, group, score * is_next)
    return ((lse - target) * has).sum() / has.sum().clamp(min=1.0)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch with every tensor on ``device`` (copies that need not wait where it can)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
