"""``InterestDecayEnv``: one simulated shopper an episode, as a Gymnasium env."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from decay_model.errors import ConfigError, DecaygymError
from envs import rng
from envs.config import SimConfig, get_preset
from envs.dynamics import SimState, Simulator, StepResult
from envs.population import Population

#: what ``info`` holds after every step, in the single env (scalars) as in the vector env (arrays (N,))
STEP_INFO_KEYS = (
    "visit",
    "clicks",
    "purchases",
    "slots_used",
    "click_reward",
    "purchase_reward",
    "slot_cost",
    "gap_h",
    "organic_events",
    "organic_purchases",
)
#: the hidden truth, added to ``info`` (of ``reset`` and ``step``) only with ``hidden_info=True``
HIDDEN_INFO_KEYS = ("true_interest", "true_appeal")
_INT_INFO = frozenset({"visit", "clicks", "purchases", "slots_used", "organic_events", "organic_purchases"})


class ResetNeededError(DecaygymError, RuntimeError):
    """``step`` was called before ``reset`` or after the episode ended."""


def make_config(
    config: SimConfig | None = None,
    preset: str | None = None,
    artifact: str | None = None,
    sim: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> SimConfig:
    """The config an env runs on: ``config``, folder ``sim`` or the preset, with ``artifact`` and overrides.

    ``sim`` replaces the preset, so ``gymnasium.make("decaygym/InterestDecay-v1", sim=DIR)`` (whose
    registration passes the ``default`` preset) runs on the folder; any other preset or a ``config``
    with it is refused: which one was meant cannot be told.
    """
    if sim is not None:
        if config is not None or preset not in (None, "default"):
            given = "config" if config is not None else f"preset {preset!r}"
            raise ConfigError(
                f"sim={str(sim)!r} replaces the preset; it cannot be combined with {given} "
                "(use decaygym/InterestDecay-v1 or the env classes with sim= alone)"
            )
        from envs.simulator_folder import load_sim

        base = load_sim(sim)
    else:
        base = config if config is not None else get_preset(preset or "default")
    if artifact is not None:
        overrides["artifact"] = str(artifact)
    return base.replace(**overrides) if overrides else base


def check_time_limit(max_episode_steps: int | None, config: SimConfig) -> int:
    """The vector env's episode length: ``config.horizon``, or a shorter ``max_episode_steps``.

    Episodes end at ``horizon`` (so that ``gymnasium.make_vec(id, horizon=5)`` gives 5-visit
    episodes); a longer time limit could never be reached, so it is an error, not a silent no-op.
    """
    if max_episode_steps is None:
        return config.horizon
    if not isinstance(max_episode_steps, int | np.integer) or max_episode_steps < 1:
        raise ConfigError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
    if max_episode_steps > config.horizon:
        raise ConfigError(
            f"max_episode_steps={max_episode_steps} exceeds the config's horizon={config.horizon}: "
            f"episodes end at the horizon, so pass horizon={max_episode_steps} instead"
        )
    return int(max_episode_steps)


def step_info(res: StepResult, visit: NDArray[np.uint64]) -> dict[str, NDArray[Any]]:
    """The info of a visit as arrays of shape (N,) (``STEP_INFO_KEYS``, without the hidden truth)."""
    return {
        "visit": visit.astype(np.int64),
        "clicks": res.clicks.astype(np.int64),
        "purchases": res.purchases.astype(np.int64),
        "slots_used": res.slots_used.astype(np.int64),
        "click_reward": res.click_reward.astype(np.float64),
        "purchase_reward": res.purchase_reward.astype(np.float64),
        "slot_cost": res.slot_cost.astype(np.float64),
        "gap_h": res.gap_h.astype(np.float64),
        "organic_events": res.organic_events.astype(np.int64),
        "organic_purchases": res.organic_purchases.astype(np.int64),
    }


def check_action(action: Any, shape: tuple[int, ...]) -> NDArray[np.int64]:
    """The action as an int64 array of ``shape`` with values in {0, 1, 2}; ValueError otherwise."""
    arr = np.asarray(action)
    if arr.shape != shape:
        raise ValueError(
            f"action must have shape {shape} (one of 0 show, 1 reduce, 2 retire per slot), "
            f"got shape {arr.shape}"
        )
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind not in "fb" or not np.all(np.mod(arr, 1) == 0):
            raise ValueError(f"action must hold integers 0, 1 or 2, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > 2):
        raise ValueError(
            f"action values must be 0 (show), 1 (reduce) or 2 (retire), got min {arr.min()} "
            f"and max {arr.max()}"
        )
    return arr.astype(np.int64, copy=False)


class InterestDecayEnv(gym.Env[NDArray[np.float32], NDArray[np.int64]]):
    r"""A shopper whose interest in each category fades with time and over-exposure.

    ## Description
    Each step is one visit of one simulated user. The user browses on their own (engaging
    with about their own number of known categories a visit, interest deciding which, and
    discovering new ones: the system sees this, too); return times, browsing depth and
    engagement are calibrated to the Taobao log (``decaygym-fidelity``). The system holds K
    candidate items for the user and, for each, the agent decides its exposure: show it,
    reduce it or retire it. The platform then ranks the page by its own estimate (the shown
    items first, then the reduced ones that won their draw) and displays at most M. The user
    clicks and buys with probabilities driven by their hidden interest in the item's
    category, their hidden appeal for the item, its quality, its position
    (1/log2(1 + position)), item fatigue, purchase satiation and page crowding. Between
    visits interest moves as I ← b + (I - b)·e^{-λΔ} with the decay rate λ and floor b of a
    decay model fitted on real logs (``decay_model``); clicks lift interest, purchases
    satisfy it, unanswered exposures tire the item and annoy the user, and an annoyed,
    unsatisfied user leaves for good. Retiring is not free: at most R fresh candidates arrive
    per visit, and they arrive cold (the system's estimate starts from the category prior).
    The dynamics are those of ``envs.dynamics.Simulator`` with N = 1.

    ## Action Space
    ``MultiDiscrete([3] * K)``: per candidate slot, 0 = show, 1 = reduce (eligible for the page
    with chance ``reduce_display_prob``, below every shown item), 2 = retire (the slot empties
    for good until retrieval refills it). Actions on empty slots do nothing. An action outside
    the space raises ``ValueError``.

    ## The page
    The policy decides each candidate's exposure (its lifecycle); the platform decides the
    order, as a ranking layer after an eligibility layer does in real systems. The shown
    candidates are ordered by the system's estimate (observation block 0 before its cap at 1;
    ties: the candidate that arrived first), then the reduced candidates that won their draw
    in the same order, and the first M take positions 1..M; the rest are not displayed. Every
    random draw of a candidate is keyed by the candidate (the order in which it arrived),
    not by its slot, so permuting the slots of a state and its actions alike permutes the
    outcome and changes nothing else: a slot-symmetric (per-item) policy loses nothing.

    ## Observation Space
    ``Box(0, 1, shape=(K*F + U,), float32)`` with F = 9 and U = 3 (``envs.layout``), feature-major:
    block f, ``obs[f*K:(f+1)*K]``, holds feature f of the K candidates, so
    ``obs[:K*F].reshape(F, K).T`` gives one row per candidate for a per-item network. Counts c
    are squashed as c/(c + s).

    | Block | Observation (per candidate)                                   | Min | Max | Scale s     |
    |-------|---------------------------------------------------------------|-----|-----|-------------|
    | 0     | predicted interest (the system's estimate, aware of purchases)| 0   | 1   | -           |
    | 1     | hours since the user last engaged with the item's category    | 0   | 1   | 24 h        |
    | 2     | exposures of the item so far                                  | 0   | 1   | 5           |
    | 3     | clicks on the item so far                                     | 0   | 1   | 5           |
    | 4     | purchases of the item so far                                  | 0   | 1   | 5           |
    | 5     | exposures since the item's last click                         | 0   | 1   | 5           |
    | 6     | empty-slot flag (1 = no candidate in this slot)               | 0   | 1   | -           |
    | 7     | item age: hours since it entered the user's candidate pool    | 0   | 1   | 720 h       |
    | 8     | item value (purchase margin)                                  | 0   | 1   | 1           |

    | Index     | Observation (per user)                                    | Min | Max | Scale s     |
    |-----------|-----------------------------------------------------------|-----|-----|-------------|
    | K*F       | visit index                                               | 0   | 1   | horizon     |
    | K*F + 1   | recent unanswered exposures (halving average per visit)   | 0   | 1   | M           |
    | K*F + 2   | fraction of empty slots                                   | 0   | 1   | -           |

    Empty slots read 0 in every block except the empty flag. The true interest is never
    in the observation.

    ## Rewards
    ``click_value · clicks + purchase_value_scale · Σ value of purchased items - slot_cost ·
    displayed slots``. Every chance behind it is a probability by construction: P(click) =
    1 - e^{-x} with x the product of interest, appeal, quality, position bias, fatigue,
    satiation and crowding (≈ x when small, below 1 however large the appeal), P(purchase |
    click) = purchase_rate · quality · (1 - satiation), P(churn) a logistic.

    ## Info
    After every step (``envs.env.STEP_INFO_KEYS``, the same keys as the vector env's arrays):
    ``visit`` (visits done in this episode: the observation's visit index), and of the visit
    just taken ``clicks``, ``purchases``, ``slots_used``, ``click_reward``, ``purchase_reward``,
    ``slot_cost`` (the reward is the first two minus the third), ``gap_h`` (hours to the next
    visit), ``organic_events`` and ``organic_purchases`` (the user's own browsing, not
    rewarded). With ``hidden_info=True``, ``reset`` and ``step`` add ``true_interest`` (K,),
    the user's hidden interest in each candidate's category, and ``true_appeal`` (K,), the
    hidden click multiplier (click_scale · quality · appeal), both of the candidates in the
    returned observation: for the oracle baseline only, never for learned agents.

    ## Starting State
    A user drawn from the population (``SimConfig.artifact``'s summary, the built-in
    default, or real users bootstrapped with ``population=Population.from_encoded(...)``)
    with K fresh candidates, visit 0, no annoyance or satisfaction.

    ## Dynamic adjustment
    With ``reencode_every=k`` (a ``SimConfig`` field; 0 = off) the simulator keeps each user's
    recent simulated events (``reencode_history``) and, every k visits, the neural decay model
    (``artifact``, or the shipped one) re-encodes them into a fresh interest, λ and floor for
    the user's categories (``envs.reencode``), on the model's device. The decay model then reads
    what the simulated user did, as it would a real user's log. Re-encoding runs the model on a
    batch, so a user's numbers may differ in the last float bits between batch sizes.

    ## Episode End
    1. Termination: the user leaves for good (churn).
    2. Truncation: after ``horizon`` visits (a ``SimConfig`` field, so ``gymnasium.make(id,
       horizon=5)`` gives 5-visit episodes); the env truncates itself. As Gymnasium's
       ``TimeLimit`` does, ``truncated`` is True on the horizon's visit even when the user also
       churned on it: a learner must bootstrap only where ``truncated and not terminated``.
       ``gymnasium.make(..., max_episode_steps=n)`` wraps the env in ``TimeLimit``, which can
       only end episodes earlier: for longer ones pass ``horizon=n`` (the env cannot see the
       wrapper; the vector env, which takes ``max_episode_steps`` itself, refuses one beyond
       the horizon).
    Stepping after the end raises ``ResetNeededError`` asking for ``reset()``.

    ## Arguments
    | Parameter     | Type               | Default     | Description                                      |
    |---------------|--------------------|-------------|--------------------------------------------------|
    | `preset`      | str                | `"default"` | named config in `envs.config.PRESETS`            |
    | `config`      | SimConfig \\| None | `None`      | a full config (overrides `preset`)               |
    | `artifact`    | str \\| None       | `None`      | fitted decay artifact folder to draw users from  |
    | `sim`         | str \\| None       | `None`      | simulator folder (decaygym-build-sim), not `preset` |
    | `population`  | Population \\| None| `None`      | explicit population (e.g. bootstrapped real users)|
    | `hidden_info` | bool               | `False`     | add the hidden truth to `info` (oracle only)     |
    | `**overrides` | SimConfig fields   |             | e.g. `num_slots=10`, `horizon=5`                 |

    ```python
    >>> import gymnasium as gym, envs
    >>> env = gym.make("decaygym/InterestDecay-small-v1")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape
    (75,)
    ```

    ## Seeding
    ``reset(seed=s)`` fixes the user: all randomness is counter-based on a 64-bit key derived
    from ``s`` (``envs.rng.key_from_seed``) and the episode number; ``reset()`` without a seed
    starts the next episode of the same stream. User i of ``InterestDecayVectorEnv`` reset
    with seed s is this env reset with seed s + i.

    ## Vectorized environment
    ``envs.vector.InterestDecayVectorEnv`` runs the same step for many users in one call.

    ## Version History
    * v1: the page is ranked by the system's estimate (the policy decides exposure, not
      order) and every draw is keyed by the candidate, not its slot; a click converts at the
      Taobao log's view-to-buy rate (``purchase_rate`` 0.0294: 1.5 % over clicked items, where
      it was 15 %), and a purchase is worth 10 × the item's value (``purchase_value_scale``),
      so a click's expected purchase value stays about what it was; P(click) = 1 - e^{-x}
      (a probability however large the appeal; configs whose appeal has no finite mean are
      refused); crowding counts the displayed items of the item's true category (orphans no
      longer crowd each other); 64-bit random streams (no two (user, visit, purpose) streams
      coincide); budget mode is the default browsing model (``engagement_budget`` 0.979 and
      its between-user sd 0.588, as fitted on the Taobao log; the previous model is the
      ``independent_browsing`` preset); the env truncates itself at ``horizon`` (overrides
      are honoured); ``hidden_info`` in the single env too, and one info schema for both envs.
    * v0: initial version (calibrated browsing, return times and pool age; a compiled step;
      optional re-encoding; the default population from the shipped ``base_sessions``
      artifact; opt-in budget mode).
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        preset: str | None = None,
        config: SimConfig | None = None,
        artifact: str | None = None,
        population: Population | None = None,
        render_mode: str | None = None,
        hidden_info: bool = False,
        sim: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> None:
        self.config = make_config(config, preset, artifact, sim, **overrides)
        self.render_mode = render_mode
        self.hidden_info = bool(hidden_info)
        self.sim = Simulator(self.config, population)
        k = self.config.num_slots
        self.action_space = spaces.MultiDiscrete(np.full(k, 3, dtype=np.int64))
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.config.obs_size,), dtype=np.float32)
        self.state = SimState.allocate(1, self.config)
        self._obs = np.zeros((1, self.config.obs_size), np.float32)
        self._key: np.uint64 | None = None
        self._episode = 0
        self._done = True
        self._rows = np.zeros(1, np.intp)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Start an episode: a new user for a new seed, else the next episode of the current stream."""
        super().reset(seed=seed)
        if seed is not None:
            self._key, self._episode = rng.key_from_seed(seed), 0
        elif self._key is None:
            self._key, self._episode = np.uint64(self.np_random.integers(0, 2**64, dtype=np.uint64)), 0
        else:
            self._episode += 1
        self.state.key[0] = self._key
        self.state.episode[0] = self._episode
        self.sim.reset_users(self.state, self._rows)
        self.sim.observe(self.state, self._obs)
        self._done = False
        info: dict[str, Any] = {"visit": 0}
        self._add_hidden(info)
        return self._obs[0].copy(), info

    def step(
        self, action: NDArray[np.int64]
    ) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """One visit: see the class docstring."""
        if self._done:
            raise ResetNeededError("the episode has ended (or never started): call reset() before step()")
        act = check_action(action, (self.config.num_slots,))
        res = self.sim.step(self.state, act[None, :], obs=self._obs)
        terminated = bool(res.churned[0])
        truncated = int(self.state.visit[0]) >= self.config.horizon  # as TimeLimit: also when terminated
        self._done = terminated or truncated
        info: dict[str, Any] = {
            key: (int(v[0]) if key in _INT_INFO else float(v[0]))
            for key, v in step_info(res, self.state.visit).items()
        }
        self._add_hidden(info)
        return self._obs[0].copy(), float(res.reward[0]), terminated, truncated, info

    def _add_hidden(self, info: dict[str, Any]) -> None:
        if self.hidden_info:
            interest, appeal = self.sim.hidden(self.state)
            info["true_interest"], info["true_appeal"] = interest[0], appeal[0]
