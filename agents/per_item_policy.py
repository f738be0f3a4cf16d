"""The per-item policy network, as SB3 custom policies for PPO, A2C, MaskablePPO and RecurrentPPO.

Why per item: the env's observation is K candidates × 9 features (feature-major, see
``envs.InterestDecayEnv``) then 3 user features, and its action is one of show / reduce /
retire per candidate. SB3's default flat MLP learns one output per *slot*, so the same item
must be learned again in every slot it can sit in; on a prototype of this problem it reached
about half the threshold rule's return. Here one small network, shared by all candidates,
scores each candidate from

* its own 9 features and the 3 user features (embedded by a shared layer),
* a pooled summary of the pool: mean and max of the embeddings over non-empty candidates
  (observation block 6 is the empty flag), so it knows what else is on offer,
* the user features again and, for the recurrent policy, the LSTM's memory,

and outputs 3 logits per candidate, laid out slot-major (slot 0's show/reduce/retire, then
slot 1's ...), which is exactly SB3's ``MultiDiscrete([3] * K)`` distribution. Permuting the
candidates permutes the logits (slot-permutation equivariance). The value head reads the
pooled embeddings of its own encoder and the user features.

``net_arch`` keeps SB3's meaning and defaults (``dict(pi=[64, 64], vf=[64, 64])``, or one list
for both): ``pi[0]`` is the width of the item embedding and ``pi[1:]`` the hidden layers of the
scorer; ``vf[0]`` the width of the critic's item embedding and ``vf[1:]`` the value MLP. So RL
Zoo's Optuna samplers, which set ``net_arch`` and ``activation_fn``, tune this network too.
``activation_fn`` may also be a name (``"relu"``, ``"tanh"``, ...) so that YAML files can set it.

RecurrentPPO: the LSTMs read a slot-order-free summary of the observation (pooled item
embeddings + user features), not the flat observation, and the per-item scorer gets the LSTM
output as extra context; the whole policy stays equivariant.

Encoders (policy kwarg ``encoder``): ``"pool"`` (the default, :class:`PoolEncoder`) sees the rest
of the pool only through its mean and max; ``"attention"`` (:class:`AttentionEncoder`) lets the
candidates attend to each other and to a user token in ``attention_layers`` pre-norm Transformer
layers of ``attention_heads`` heads, without positional encoding (so the policy stays
equivariant) and with empty slots masked out as keys. Both give every candidate a ``pi[0]``-wide
embedding and the pool a ``2 * pi[0]``-wide summary, which the scorer, the critic and the LSTMs
read in the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import nn
from torch.nn import functional as F

from agents.policy import num_slots
from decay_model.errors import ConfigError
from envs.layout import EMPTY_BLOCK, NUM_ITEM_FEATURES, NUM_USER_FEATURES

NUM_ACTIONS = 3
#: the ``encoder`` policy kwarg: how candidates see each other (see the module docstring)
ENCODERS = ("pool", "attention")
DEFAULT_ATTENTION_HEADS = 2
DEFAULT_ATTENTION_LAYERS = 1
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
}


def activation_class(activation: type[nn.Module] | str) -> type[nn.Module]:
    """An activation class from a class or a name in :data:`ACTIVATIONS` (YAML files can only hold names)."""
    if isinstance(activation, str):
        try:
            return ACTIVATIONS[activation.lower()]
        except KeyError:
            raise ConfigError(
                f"activation_fn={activation!r}: unknown; known: {', '.join(ACTIVATIONS)}"
            ) from None
    return activation


def split_arch(net_arch: list[int] | dict[str, list[int]] | None) -> tuple[list[int], list[int]]:
    """(pi, vf) widths from SB3's ``net_arch`` (one list for both, or a dict); SB3's default if None."""
    if net_arch is None:
        return [64, 64], [64, 64]
    if isinstance(net_arch, dict):
        pi, vf = list(net_arch.get("pi", [])), list(net_arch.get("vf", []))
    else:
        pi, vf = list(net_arch), list(net_arch)
    for name, widths in (("pi", pi), ("vf", vf)):
        if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ConfigError(
                f"net_arch {name}={widths!r}: the per-item network needs at least one positive width "
                "(the first is the item embedding)"
            )
    return pi, vf


def split_observation(obs: th.Tensor, k: int) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """Items (N, K, 9), user features (N, 3) and the empty mask (N, K) of flat observations (N, K·9 + 3)."""
    n = obs.shape[0]
    items = obs[:, : k * NUM_ITEM_FEATURES].reshape(n, NUM_ITEM_FEATURES, k).transpose(1, 2)  # (N, K, F)
    user = obs[:, k * NUM_ITEM_FEATURES :]  # (N, U)
    empty = items[..., EMPTY_BLOCK] > 0.5  # (N, K)
    return items, user, empty


def _mlp(in_dim: int, widths: list[int], activation: type[nn.Module]) -> tuple[nn.Sequential, int]:
    """Linear + activation per width; returns the module and its output width."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(in_dim, width), activation()]
        in_dim = width
    return nn.Sequential(*layers), in_dim


class PoolEncoder(nn.Module):
    """Embeds every candidate with one shared layer and pools the embeddings over non-empty slots.

    Returns the per-item embeddings (N, K, w), the pooled summary [mean, max] (N, 2w), zeros
    for a user whose pool is empty, and the user features (N, 3).
    """

    def __init__(self, k: int, width: int, activation: type[nn.Module]) -> None:
        super().__init__()
        self.k = k
        self.width = width
        self.embed = nn.Sequential(nn.Linear(NUM_ITEM_FEATURES + NUM_USER_FEATURES, width), activation())

    def forward(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """See the class docstring."""
        items, user, empty = split_observation(obs, self.k)
        x = th.cat([items, user.unsqueeze(1).expand(-1, self.k, -1)], dim=-1)  # (N, K, F + U)
        emb = self.embed(x)  # (N, K, w)
        keep = (~empty).unsqueeze(-1).to(emb.dtype)  # (N, K, 1)
        count = keep.sum(dim=1)  # (N, 1)
        mean = (emb * keep).sum(dim=1) / count.clamp(min=1.0)  # (N, w)
        low = th.finfo(emb.dtype).min
        mx = emb.masked_fill(empty.unsqueeze(-1), low).amax(dim=1)  # (N, w)
        mx = th.where(count > 0, mx, th.zeros_like(mx))
        return emb, th.cat([mean, mx], dim=-1), user

    @property
    def summary_dim(self) -> int:
        """Width of [pooled mean, pooled max, user features]."""
        return 2 * self.width + NUM_USER_FEATURES


class AttentionBlock(nn.Module):
    """One pre-norm Transformer encoder layer without dropout: x + attention(norm(x)), x + ff(norm(x)).

    Written out rather than ``nn.TransformerEncoderLayer``, which switches to a fused kernel in
    eval mode: SB3 collects rollouts in eval mode and updates in train mode, and both must compute
    the same function.
    """

    def __init__(self, width: int, heads: int, activation: type[nn.Module]) -> None:
        super().__init__()
        self.heads = heads
        self.norm_attention = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), activation(), nn.Linear(2 * width, width))

    def forward(self, x: th.Tensor, keep: th.Tensor) -> th.Tensor:
        """Tokens x (N, T, w) -> (N, T, w); every token attends to the tokens where ``keep`` (N, T) holds."""
        n, t, w = x.shape
        q, k, v = self.qkv(self.norm_attention(x)).reshape(n, t, 3, self.heads, w // self.heads).unbind(2)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=keep[:, None, None, :]
        )  # (N, heads, T, w / heads)
        x = x + self.out(attended.transpose(1, 2).reshape(n, t, w))
        return x + self.ff(self.norm_ff(x))


class AttentionEncoder(nn.Module):
    """Embeds every candidate as :class:`PoolEncoder` does, then runs self-attention over the pool.

    The tokens are the K candidate embeddings and one user token (a layer over the 3 user
    features); there is no positional encoding, so permuting the candidates permutes their
    output tokens. Empty slots are masked as keys: nothing attends to them, so their features
    change no other token; the user token is never masked, so every query has a key even when
    the pool is empty. Returns the candidates' output tokens (N, K, w), the summary [user token,
    mean of the candidate tokens over non-empty slots] (N, 2w), the mean zero for an empty pool,
    and the user features (N, 3).
    """

    def __init__(self, k: int, width: int, activation: type[nn.Module], heads: int, layers: int) -> None:
        super().__init__()
        self.k = k
        self.width = width
        self.embed = nn.Sequential(nn.Linear(NUM_ITEM_FEATURES + NUM_USER_FEATURES, width), activation())
        self.embed_user = nn.Sequential(nn.Linear(NUM_USER_FEATURES, width), activation())
        self.blocks = nn.ModuleList(AttentionBlock(width, heads, activation) for _ in range(layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """See the class docstring."""
        items, user, empty = split_observation(obs, self.k)
        x = th.cat([items, user.unsqueeze(1).expand(-1, self.k, -1)], dim=-1)  # (N, K, F + U)
        tokens = th.cat([self.embed_user(user).unsqueeze(1), self.embed(x)], dim=1)  # (N, 1 + K, w)
        keep = th.cat([th.ones_like(empty[:, :1]), ~empty], dim=1)  # (N, 1 + K)
        for block in self.blocks:
            tokens = block(tokens, keep)
        tokens = self.norm(tokens)
        user_token, emb = tokens[:, 0], tokens[:, 1:]
        weights = (~empty).unsqueeze(-1).to(emb.dtype)  # (N, K, 1)
        mean = (emb * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # (N, w)
        return emb, th.cat([user_token, mean], dim=-1), user

    @property
    def summary_dim(self) -> int:
        """Width of [user token, mean candidate token, user features]."""
        return 2 * self.width + NUM_USER_FEATURES


def check_encoder(
    encoder: str, attention_heads: int, attention_layers: int, widths: Sequence[int] = ()
) -> None:
    """ConfigError, naming the policy kwarg, when the encoder settings cannot build a network.

    Args:
        encoder: a name in :data:`ENCODERS`.
        attention_heads: heads per attention layer; must divide every embedding width.
        attention_layers: attention layers (at least 1).
        widths: the embedding widths (``pi[0]``, ``vf[0]``) the heads must divide.
    """
    if encoder not in ENCODERS:
        raise ConfigError(f"encoder={encoder!r}: unknown; known: {', '.join(ENCODERS)}")
    if encoder != "attention":
        return
    for name, value in (("attention_heads", attention_heads), ("attention_layers", attention_layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}={value!r}: must be a positive integer")
    bad = [w for w in widths if w % attention_heads]
    if bad:
        raise ConfigError(
            f"attention_heads={attention_heads} must divide the item embedding widths (net_arch pi[0] "
            f"and vf[0]), got {list(widths)}"
        )


def make_encoder(
    encoder: str,
    k: int,
    width: int,
    activation: type[nn.Module],
    attention_heads: int = DEFAULT_ATTENTION_HEADS,
    attention_layers: int = DEFAULT_ATTENTION_LAYERS,
) -> PoolEncoder | AttentionEncoder:
    """The encoder named ``encoder`` (:data:`ENCODERS`) for K slots and embedding width ``width``."""
    check_encoder(encoder, attention_heads, attention_layers, (width,))
    if encoder == "attention":
        return AttentionEncoder(k, width, activation, attention_heads, attention_layers)
    return PoolEncoder(k, width, activation)


class PerItemNetwork(nn.Module):
    """SB3's ``mlp_extractor`` slot: latent_pi = per-candidate logits (N, 3K), latent_vf = value features.

    Input: the flat observation (N, obs_dim), followed by ``context_dim`` context features
    (the LSTM output of the recurrent policy; none otherwise). ``actor_pool`` and ``critic_pool``
    hold the encoders whichever kind they are (:func:`make_encoder`), so the parameter names of
    pool-encoder models stay as they were.
    """

    def __init__(
        self,
        obs_dim: int,
        net_arch: list[int] | dict[str, list[int]] | None,
        activation_fn: type[nn.Module],
        context_dim: int = 0,
        encoder: str = "pool",
        attention_heads: int = DEFAULT_ATTENTION_HEADS,
        attention_layers: int = DEFAULT_ATTENTION_LAYERS,
    ) -> None:
        super().__init__()
        pi, vf = split_arch(net_arch)
        check_encoder(encoder, attention_heads, attention_layers, (pi[0], vf[0]))
        self.k = num_slots(obs_dim)
        self.obs_dim = obs_dim
        self.context_dim = context_dim
        attention = {"attention_heads": attention_heads, "attention_layers": attention_layers}
        self.actor_pool = make_encoder(encoder, self.k, pi[0], activation_fn, **attention)
        scorer_in = pi[0] + 2 * pi[0] + NUM_USER_FEATURES + context_dim
        self.scorer, scorer_out = _mlp(scorer_in, pi[1:], activation_fn)
        self.logits = nn.Linear(scorer_out, NUM_ACTIONS)
        self.critic_pool = make_encoder(encoder, self.k, vf[0], activation_fn, **attention)
        self.value, value_out = _mlp(self.critic_pool.summary_dim + context_dim, vf[1:], activation_fn)
        self.latent_dim_pi = NUM_ACTIONS * self.k
        self.latent_dim_vf = value_out

    def _split(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return features[:, : self.obs_dim], features[:, self.obs_dim :]

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        """Logits (N, 3K), slot-major: [slot 0: show, reduce, retire, slot 1: ...]."""
        obs, context = self._split(features)
        emb, pooled, user = self.actor_pool(obs)
        n, k = emb.shape[0], self.k
        parts = [emb, pooled.unsqueeze(1).expand(-1, k, -1), user.unsqueeze(1).expand(-1, k, -1)]
        if self.context_dim:
            parts.append(context.unsqueeze(1).expand(-1, k, -1))
        logits = self.logits(self.scorer(th.cat(parts, dim=-1)))  # (N, K, 3)
        return logits.reshape(n, NUM_ACTIONS * k)

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        """Value features (N, latent_dim_vf) from the pooled critic embeddings, user features and context."""
        obs, context = self._split(features)
        _, pooled, user = self.critic_pool(obs)
        return self.value(th.cat([pooled, user, context], dim=-1))

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """(latent_pi, latent_vf), as SB3's ``MlpExtractor``."""
        return self.forward_actor(features), self.forward_critic(features)


def _check_space(observation_space: spaces.Space, action_space: spaces.Space) -> int:
    """The flat observation length; ConfigError when the spaces are not InterestDecayEnv's."""
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
        raise ConfigError(
            f"the per-item policy needs a flat Box observation (K*9 + 3,), got {observation_space}"
        )
    obs_dim = int(observation_space.shape[0])
    try:
        k = num_slots(obs_dim)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    nvec = getattr(action_space, "nvec", None)
    if not isinstance(action_space, spaces.MultiDiscrete) or list(nvec) != [NUM_ACTIONS] * k:  # type: ignore[arg-type]
        raise ConfigError(f"the per-item policy needs MultiDiscrete([3] * {k}) actions, got {action_space}")
    return obs_dim


class _PerItemMixin:
    """Puts :class:`PerItemNetwork` in SB3's ``mlp_extractor`` slot and drops SB3's action layer.

    SB3 builds ``action_net`` as one Linear from latent_pi to all K·3 logits; the per-item network
    already outputs the logits, so ``action_net`` becomes the identity. The scorer's last layer gets
    SB3's small output gain (0.01) when ``ortho_init`` is on, and the optimizer is rebuilt over the
    final parameters.
    """

    context_dim: int = 0
    encoder: str = "pool"
    attention_heads: int = DEFAULT_ATTENTION_HEADS
    attention_layers: int = DEFAULT_ATTENTION_LAYERS

    def _set_encoder(self, encoder: str, attention_heads: int, attention_layers: int, net_arch: Any) -> None:
        """Check and keep the encoder settings (before SB3's constructor, which builds the network)."""
        pi, vf = split_arch(net_arch)
        check_encoder(encoder, attention_heads, attention_layers, (pi[0], vf[0]))
        self.encoder = encoder
        self.attention_heads = attention_heads
        self.attention_layers = attention_layers

    def _encoder_kwargs(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "attention_heads": self.attention_heads,
            "attention_layers": self.attention_layers,
        }

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = PerItemNetwork(
            self.observation_space.shape[0],  # type: ignore[attr-defined]
            self.net_arch,  # type: ignore[attr-defined]
            self.activation_fn,  # type: ignore[attr-defined]
            context_dim=self.context_dim,
            **self._encoder_kwargs(),
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        """SB3's, plus the encoder settings, so that ``policy.save`` / ``load`` rebuild the same network."""
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(self._encoder_kwargs())
        return data

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        self.action_net = nn.Identity()
        if self.ortho_init:  # type: ignore[attr-defined]
            nn.init.orthogonal_(self.mlp_extractor.logits.weight, gain=0.01)
            nn.init.zeros_(self.mlp_extractor.logits.bias)
        self.optimizer = self.optimizer_class(  # type: ignore[attr-defined]
            self.parameters(),  # type: ignore[attr-defined]
            lr=lr_schedule(1),
            **self.optimizer_kwargs,  # type: ignore[attr-defined]
        )


def _check_extractor(kwargs: dict[str, Any]) -> None:
    cls = kwargs.get("features_extractor_class", FlattenExtractor)
    if cls is not FlattenExtractor:
        raise ConfigError(
            f"the per-item policy reads the flat observation itself; features_extractor_class={cls!r} "
            "is not supported"
        )


class _PerItemInit(_PerItemMixin):
    """The constructor PPO's, A2C's and MaskablePPO's per-item policies share: checks, then SB3's."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] | str = nn.Tanh,
        encoder: str = "pool",
        attention_heads: int = DEFAULT_ATTENTION_HEADS,
        attention_layers: int = DEFAULT_ATTENTION_LAYERS,
        **kwargs: Any,
    ) -> None:
        _check_space(observation_space, action_space)
        _check_extractor(kwargs)
        self._set_encoder(encoder, attention_heads, attention_layers, net_arch)
        super().__init__(  # type: ignore[call-arg]
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_class(activation_fn),
            **kwargs,
        )


class PerItemActorCriticPolicy(_PerItemInit, ActorCriticPolicy):
    """Per-item policy for PPO and A2C (see the module docstring)."""


class PerItemMaskablePolicy(_PerItemInit, MaskableActorCriticPolicy):
    """Per-item policy for MaskablePPO: the masks (``agents.wrappers.action_masks``) act on its logits."""


class PerItemRecurrentPolicy(_PerItemMixin, RecurrentActorCriticPolicy):
    """Per-item policy for RecurrentPPO: LSTM memory over a slot-order-free summary, per-item scoring.

    Each LSTM (actor, and critic unless shared) reads the summary and user features of its own
    encoder (of the policy's ``encoder`` kind); its output is appended to the observation and the per-item
    network uses it as context. A critic without any LSTM (``enable_critic_lstm=False`` and
    ``shared_lstm=False``) is not supported: SB3 would feed it a linear map of the flat
    observation, which has no per-item structure.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] | str = nn.Tanh,
        lstm_hidden_size: int = 64,
        n_lstm_layers: int = 1,
        shared_lstm: bool = False,
        enable_critic_lstm: bool = True,
        lstm_kwargs: dict[str, Any] | None = None,
        encoder: str = "pool",
        attention_heads: int = DEFAULT_ATTENTION_HEADS,
        attention_layers: int = DEFAULT_ATTENTION_LAYERS,
        **kwargs: Any,
    ) -> None:
        obs_dim = _check_space(observation_space, action_space)
        _check_extractor(kwargs)
        self._set_encoder(encoder, attention_heads, attention_layers, net_arch)
        if not (shared_lstm or enable_critic_lstm):
            raise ConfigError(
                "PerItemRecurrentPolicy needs an LSTM for the critic: set enable_critic_lstm=True "
                "or shared_lstm=True"
            )
        self.context_dim = lstm_hidden_size
        activation = activation_class(activation_fn)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation,
            lstm_hidden_size=lstm_hidden_size,
            n_lstm_layers=n_lstm_layers,
            shared_lstm=shared_lstm,
            enable_critic_lstm=enable_critic_lstm,
            lstm_kwargs=lstm_kwargs,
            **kwargs,
        )
        # Replace SB3's LSTMs over the flat observation by LSTMs over the pooled summary.
        pi, vf = split_arch(net_arch)
        k = num_slots(obs_dim)
        attention = {"attention_heads": attention_heads, "attention_layers": attention_layers}
        self.actor_summary = make_encoder(encoder, k, pi[0], activation, **attention)
        self.lstm_actor = nn.LSTM(
            self.actor_summary.summary_dim, lstm_hidden_size, num_layers=n_lstm_layers, **self.lstm_kwargs
        )
        self.critic_summary: PoolEncoder | AttentionEncoder | None = None
        if self.lstm_critic is not None:
            self.critic_summary = make_encoder(encoder, k, vf[0], activation, **attention)
            self.lstm_critic = nn.LSTM(
                self.critic_summary.summary_dim,
                lstm_hidden_size,
                num_layers=n_lstm_layers,
                **self.lstm_kwargs,
            )
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _process_sequence(  # type: ignore[override]
        self,
        features: th.Tensor,
        lstm_states: tuple[th.Tensor, th.Tensor],
        episode_starts: th.Tensor,
        lstm: nn.LSTM,
    ) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
        """Run ``lstm`` over the pooled summary; return [observation, LSTM output] and the new states."""
        encoder = self.critic_summary if lstm is self.lstm_critic else self.actor_summary
        assert encoder is not None  # a critic LSTM always has its summary encoder
        _, pooled, user = encoder(features)
        summary = th.cat([pooled, user], dim=-1)
        out, states = RecurrentActorCriticPolicy._process_sequence(summary, lstm_states, episode_starts, lstm)
        return th.cat([features, out], dim=-1), states
