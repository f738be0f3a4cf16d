"""DAgger-style distillation of a trained agent into a tree (VIPER: Bastani, Pu and Solar-Lezama, 2018).

Behaviour cloning (``agents.distillation.distill``) fits the tree on the states the *agent*
visits; once the tree acts, its own mistakes lead it to states the agent never showed it, and
its return falls far below the agent's even at high agreement. VIPER closes that loop:

1. roll the agent out on fitting users and label every decision with the agent's action;
2. fit a tree on all rows so far, each weighted by how much the agent cares about that
   decision;
3. roll the *tree* out on fresh fitting users, label the states it reaches with the agent's
   actions, add them to the rows, and go back to 2;
4. keep the tree (over iterations and depths) with the highest mean return on selection users.

The weight stands in for VIPER's Q-gap V(s) - min_a Q(s, a), which an actor-critic does not
give per candidate. The agent's per-candidate log-probabilities do: under entropy-regularised
policy gradients, log π(a|s) is the advantage A(s, a) over a temperature plus a constant, so
``max_a log π - min_a log π`` is the candidate's advantage gap in those units (capped at
:data:`MAX_WEIGHT`, so a few saturated candidates do not swamp the rest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch as th
from numpy.typing import NDArray

from agents.policy import Policy, block
from agents.seeds import UserSeeds
from agents.simulator import Simulator
from agents.trained import TrainedPolicy
from agents.tree_policy import Decisions, TreeArrays, TreePolicy, feature_table, fit_tree
from decay_model.errors import ConfigError
from envs.config import SimConfig
from envs.layout import EMPTY_BLOCK
from envs.vector import InterestDecayVectorEnv

MAX_WEIGHT = 10.0
"""Cap of a decision's weight (its log-probability gap)."""


def expert_labels(
    expert: TrainedPolicy, obs: NDArray[np.float32]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The agent's deterministic action per candidate and the weight of that decision, (N, K) each."""
    if not isinstance(expert, TrainedPolicy) or expert.algo not in ("ppo", "a2c", "maskable_ppo"):
        raise ConfigError(
            f"VIPER needs a trained feed-forward actor-critic agent (ppo, a2c, maskable_ppo), got {expert!r}"
        )
    policy = expert.model.policy
    tensor, _ = policy.obs_to_tensor(expert._model_obs(obs))
    with th.no_grad():
        distribution = policy.get_distribution(tensor)
        logp = th.stack([d.logits for d in distribution.distribution], dim=1).cpu().numpy()  # (N, K, 3)
    actions = logp.argmax(-1).astype(np.int64)
    weights = np.minimum(logp.max(-1) - logp.min(-1), MAX_WEIGHT).astype(np.float64)
    return actions, weights


@dataclass
class LabelledRows:
    """Decisions labelled with the agent's action and weight, gathered over iterations."""

    features: list[NDArray[np.float32]] = field(default_factory=list)
    actions: list[NDArray[np.int64]] = field(default_factory=list)
    weights: list[NDArray[np.float64]] = field(default_factory=list)
    seeds: list[NDArray[np.int64]] = field(default_factory=list)

    def decisions(self) -> Decisions:
        """All rows so far (features, the agent's actions, user seeds)."""
        return Decisions(
            np.concatenate(self.features), np.concatenate(self.actions), np.concatenate(self.seeds)
        )

    def weight(self) -> NDArray[np.float64]:
        """The rows' weights, in the order of :meth:`decisions`."""
        return np.concatenate(self.weights)


def rollout_labelled(
    driver: Policy | None,
    expert: TrainedPolicy,
    config: SimConfig,
    seeds: list[int],
    rows: LabelledRows,
    batch: int,
) -> tuple[float, float]:
    """Run ``driver`` (the agent itself when None) one episode per user, labelling as it goes.

    Every non-empty slot is added to ``rows`` with the agent's action and weight.

    Returns:
        The share of the driver's decisions the agent would take too, and the driver's mean return
        per user (the same users and seeds as ``agents.evaluation.evaluate``).
    """
    agree, total, returns = 0, 0, 0.0
    for start in range(0, len(seeds), batch):
        chunk = [int(s) for s in seeds[start : start + batch]]
        venv = InterestDecayVectorEnv(len(chunk), config=config)
        obs, _ = venv.reset(seed=chunk)
        active = np.ones(len(chunk), bool)
        seed_arr = np.asarray(chunk, np.int64)
        while active.any():
            labels, weights = expert_labels(expert, obs)
            actions = labels if driver is None else np.asarray(driver.predict(obs)[0], np.int64)
            keep = (block(obs, EMPTY_BLOCK) < 0.5) & active[:, None]
            rows.features.append(feature_table(obs, config.horizon, config.exposure_slots)[keep])
            rows.actions.append(labels[keep])
            rows.weights.append(weights[keep])
            rows.seeds.append(np.broadcast_to(seed_arr[:, None], keep.shape)[keep])
            agree += int((actions[keep] == labels[keep]).sum())
            total += int(keep.sum())
            obs, reward, terminated, truncated, _ = venv.step(actions)
            returns += float(reward[active].sum())
            active &= ~(terminated | truncated)
    return agree / max(total, 1), returns / max(len(seeds), 1)


@dataclass(frozen=True)
class ViperStep:
    """One fitted tree of the search: its depth, iteration and how it did on the selection users."""

    depth: int
    iteration: int
    rows: int
    """Rows it was fitted on."""
    selection_return: float
    """Mean return of the tree on the selection users."""
    selection_agreement: float
    """Share of the tree's decisions on the states it reached that the agent would take too."""


@dataclass(frozen=True)
class ViperResult:
    """The chosen tree, the rows it was fitted on and every step of the search."""

    tree: Any
    """The chosen scikit-learn ``DecisionTreeClassifier``."""
    depth: int
    rows: Decisions
    steps: list[ViperStep]
    agent_selection_return: float
    """The agent's own mean return on the selection users, for scale."""

    @property
    def chosen(self) -> ViperStep:
        """The step of the chosen tree."""
        return max(self.steps, key=lambda s: s.selection_return)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the steps, the chosen one and the agent's return on the selection users."""
        return {
            "steps": [vars(s) for s in self.steps],
            "chosen": vars(self.chosen),
            "agent_selection_return": self.agent_selection_return,
        }


def viper(
    make_expert: Callable[[], TrainedPolicy],
    sim: Simulator,
    fit_users: UserSeeds,
    select_users: UserSeeds,
    *,
    depths: Sequence[int],
    iterations: int,
    min_samples_leaf: int,
    seed: int,
    batch: int,
    advance: Callable[[], None] = lambda: None,
) -> ViperResult:
    """Distil the agent by VIPER at each depth; keep the tree with the best selection-user return.

    Iteration i rolls out on the fitting users shifted by i × their count, so every iteration
    meets fresh users of the same range (``agents.seeds``). ``advance`` is called after each
    fitted tree (``len(depths) * (iterations + 1)`` times).
    """
    if iterations < 0 or not depths or min(depths) < 1:
        raise ConfigError(f"VIPER needs iterations >= 0 and depths >= 1, got {iterations} and {list(depths)}")
    config = sim.config
    expert = make_expert()
    _, agent_return = rollout_labelled(None, expert, config, select_users.seeds(), LabelledRows(), batch)
    first = LabelledRows()
    rollout_labelled(None, expert, config, fit_users.seeds(), first, batch)
    steps: list[ViperStep] = []
    best: tuple[float, Any, int, Decisions] | None = None
    for depth in depths:
        rows = LabelledRows(list(first.features), list(first.actions), list(first.weights), list(first.seeds))
        for iteration in range(iterations + 1):
            decisions = rows.decisions()
            tree = fit_tree(
                decisions,
                max_depth=depth,
                min_samples_leaf=min_samples_leaf,
                seed=seed,
                weights=rows.weight(),
            )
            policy = TreePolicy(TreeArrays.from_sklearn(tree), config.horizon, config.exposure_slots)
            agreement, value = rollout_labelled(
                policy, expert, config, select_users.seeds(), LabelledRows(), batch
            )
            steps.append(ViperStep(depth, iteration, len(decisions.actions), value, agreement))
            if best is None or value > best[0]:
                best = (value, tree, depth, decisions)
            if iteration < iterations:
                shifted = UserSeeds(fit_users.start + (iteration + 1) * fit_users.count, fit_users.count)
                rollout_labelled(policy, expert, config, shifted.seeds(), rows, batch)
            advance()
    assert best is not None
    return ViperResult(best[1], best[2], best[3], steps, agent_return)
