"""``InterestDecayEnv``: one simulated shopper an episode, as a Gymnasium env."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from decay_model.errors import DecaygymError
from envs import rng
from envs.config import SimConfig, get_preset
from envs.dynamics import SimState, Simulator
from envs.population import Population


class ResetNeededError(DecaygymError, RuntimeError):
    """``step`` was called before ``reset`` or after the episode ended."""


def make_config(
    config: SimConfig | None = None, preset: str | None = None, artifact: str | None = None, **overrides: Any
) -> SimConfig:
    """The config an env runs on: ``config``, or the named preset, with ``artifact`` and field overrides."""
    base = config if config is not None else get_preset(preset or "default")
    if artifact is not None:
        overrides["artifact"] = str(artifact)
    return base.replace(**overrides) if overrides else base


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
    with the categories they are interested in, and discovering new ones: the system sees
    this, too); return times, browsing depth and engagement are calibrated to the Taobao
    log (``decaygym-fidelity``). The system holds K candidate items for
    the user and, for each, the agent decides to show it, reduce its exposure or retire it.
    At most M items are displayed; the user clicks and buys with probabilities driven by
    their hidden interest in the item's category, their hidden appeal for the item, its
    quality, its position (1/log2(1 + position)), item fatigue, purchase satiation and
    page crowding. Between visits interest moves as I ← b + (I - b)·e^{-λΔ} with the decay
    rate λ and floor b of a decay model fitted on real logs (``decay_model``); clicks lift
    interest, purchases satisfy it, unanswered exposures tire the item and annoy the user,
    and an annoyed, unsatisfied user leaves for good. Retiring is not free: at most R fresh
    candidates arrive per visit, and they arrive cold (the system's estimate starts from
    the category prior). The dynamics are those of ``envs.dynamics.Simulator`` with N = 1.

    ## Action Space
    ``MultiDiscrete([3] * K)``: per candidate slot, 0 = show (top positions, in slot order),
    1 = reduce (displayed below the shown items with chance ``reduce_display_prob``, if room),
    2 = retire (the slot empties for good until retrieval refills it). Actions on empty
    slots do nothing. An action outside the space raises ``ValueError``.

    ## Observation Space
    ``Box(0, 1, shape=(K*F + U,), float32)`` with F = 9 and U = 3, feature-major: block f,
    ``obs[f*K:(f+1)*K]``, holds feature f of the K candidates, so ``obs[:K*F].reshape(F, K).T``
    gives one row per candidate for a per-item network. Counts c are squashed as c/(c + s).

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
    displayed slots``. ``info`` reports ``click_reward``, ``purchase_reward`` and
    ``slot_cost`` (their sum, with the cost negated, is the reward), and ``clicks``,
    ``purchases``, ``slots_used``, ``gap_h`` (hours to the next visit), ``visit``,
    ``organic_events`` and ``organic_purchases`` (the user's own browsing, not rewarded).
    ``info["true_interest"]`` (K,) is the user's hidden interest in each candidate's
    category and ``info["true_appeal"]`` (K,) the hidden click multiplier (click_scale ·
    quality · appeal); both are for the oracle baseline only, never for learned agents.

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
    2. Truncation: ``max_episode_steps`` visits (``SimConfig.horizon``), applied by
       ``TimeLimit`` through the registry; the env itself never truncates.
    Stepping after termination raises ``ResetNeededError`` asking for ``reset()``.

    ## Arguments
    | Parameter    | Type               | Default     | Description                                       |
    |--------------|--------------------|-------------|---------------------------------------------------|
    | `preset`     | str                | `"default"` | named config in `envs.config.PRESETS`             |
    | `config`     | SimConfig \\| None | `None`      | a full config (overrides `preset`)                |
    | `artifact`   | str \\| None       | `None`      | fitted decay artifact folder to draw users from   |
    | `population` | Population \\| None| `None`      | explicit population (e.g. bootstrapped real users)|
    | `**overrides`| SimConfig fields   |             | e.g. `num_slots=10`                               |

    ```python
    >>> import gymnasium as gym, envs
    >>> env = gym.make("decaygym/InterestDecay-small-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape
    (75,)
    ```

    ## Seeding
    ``reset(seed=s)`` fixes the user: all randomness is counter-based on a key derived from
    ``s`` (``envs.rng.key_from_seed``) and the episode number; ``reset()`` without a seed
    starts the next episode of the same stream. User i of ``InterestDecayVectorEnv`` reset
    with seed s is this env reset with seed s + i.

    ## Vectorized environment
    ``envs.vector.InterestDecayVectorEnv`` runs the same step for many users in one call.

    ## Version History
    * v0: initial version (calibrated browsing, return times and pool age since the
      session-2 calibration; later, a compiled step with the same dynamics, optional
      re-encoding, the default population from the shipped ``base_sessions`` artifact, and an
      opt-in budget mode for browsing, ``engagement_budget``; ids unchanged because nothing was
      released before it).
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        preset: str | None = None,
        config: SimConfig | None = None,
        artifact: str | None = None,
        population: Population | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        self.config = make_config(config, preset, artifact, **overrides)
        self.render_mode = render_mode
        self.sim = Simulator(self.config, population)
        k = self.config.num_slots
        self.action_space = spaces.MultiDiscrete(np.full(k, 3, dtype=np.int64))
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.config.obs_size,), dtype=np.float32)
        self.state = SimState.allocate(1, self.config)
        self._obs = np.zeros((1, self.config.obs_size), np.float32)
        self._key: np.uint32 | None = None
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
            self._key, self._episode = np.uint32(self.np_random.integers(0, 2**32, dtype=np.uint64)), 0
        else:
            self._episode += 1
        self.state.key[0] = self._key
        self.state.episode[0] = self._episode
        self.sim.reset_users(self.state, self._rows)
        self.sim.observe(self.state, self._obs)
        self._done = False
        return self._obs[0].copy(), self._hidden_info()

    def step(
        self, action: NDArray[np.int64]
    ) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """One visit: see the class docstring."""
        if self._done:
            raise ResetNeededError("the episode has ended (or never started): call reset() before step()")
        act = check_action(action, (self.config.num_slots,))
        res = self.sim.step(self.state, act[None, :], obs=self._obs)
        terminated = bool(res.churned[0])
        self._done = terminated
        info = self._hidden_info()
        info.update(
            clicks=int(res.clicks[0]),
            purchases=int(res.purchases[0]),
            slots_used=int(res.slots_used[0]),
            click_reward=float(res.click_reward[0]),
            purchase_reward=float(res.purchase_reward[0]),
            slot_cost=float(res.slot_cost[0]),
            gap_h=float(res.gap_h[0]),
            organic_events=int(res.organic_events[0]),
            organic_purchases=int(res.organic_purchases[0]),
        )
        return self._obs[0].copy(), float(res.reward[0]), terminated, False, info

    def _hidden_info(self) -> dict[str, Any]:
        interest, appeal = self.sim.hidden(self.state)
        return {"visit": int(self.state.visit[0]), "true_interest": interest[0], "true_appeal": appeal[0]}
