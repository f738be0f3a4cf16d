"""A policy distilled into a shallow decision tree over readable features: what it does, in words.

Distillation (:func:`collect_decisions`, :func:`fit_tree`): roll the policy out on some users,
keep one row per (visit, non-empty slot) with the item's and the user's features and the
action the policy took, and fit a scikit-learn ``DecisionTreeClassifier`` of small depth. The
features are the observation's blocks in natural units (``feature_table``): the c/(c + s)
squashing is inverted exactly, so counts read as counts, times as hours, and the tree's
thresholds read directly ("purchases ≥ 1", "item age > 48 h"). A tree is invariant to such
monotone maps, so fitting on natural units loses nothing. The empty-slot flag is left out
(empty slots are not decisions).

:func:`tree_rules` prints the tree as rules in words (one per leaf, subtrees that take one
action merged), :class:`TreePolicy` applies it per item as one more policy (from its JSON, no
pickle needed), :func:`save_tree` writes the tree as JSON + text (+ the scikit-learn object with
joblib for those who want it).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.evaluation import act, hidden_of
from agents.policy import (
    ACTION_NAMES,
    Policy,
    RulePolicy,
    block,
    num_slots,
    unsquash,
    unsquash_count,
    uses_hidden_info,
)
from decay_model.atomic import atomic_write_bytes, atomic_write_json
from decay_model.errors import ArtifactError
from envs.config import SimConfig
from envs.layout import (
    AGE_BLOCK,
    AGE_SCALE,
    CLICKS_BLOCK,
    COUNT_SCALE,
    EMPTY_BLOCK,
    EMPTY_SHARE_FEATURE,
    EXPOSURES_BLOCK,
    HOURS_SCALE,
    HOURS_SINCE_ENGAGEMENT_BLOCK,
    NUM_ITEM_FEATURES,
    PREDICTED_INTEREST_BLOCK,
    PURCHASES_BLOCK,
    UNANSWERED_BLOCK,
    UNANSWERED_USER_FEATURE,
    VALUE_BLOCK,
    VALUE_SCALE,
    VISIT_FEATURE,
)
from envs.vector import InterestDecayVectorEnv

#: the tree's features, in column order: (name, kind), kind "count" (an integer), "hours", "value" or
#: "engaged" (hours since the category was engaged; about 1e6 when it never was this episode)
FEATURES: tuple[tuple[str, str], ...] = (
    ("predicted interest", "value"),
    ("hours since the category was last engaged", "engaged"),
    ("exposures", "count"),
    ("clicks", "count"),
    ("purchases", "count"),
    ("exposures since the last click", "count"),
    ("item age (h)", "hours"),
    ("item value", "value"),
    ("visit index", "count"),
    ("recent unanswered exposures (per visit)", "value"),
    ("share of empty slots", "value"),
)
FEATURE_NAMES = tuple(name for name, _ in FEATURES)
#: hours since engagement above this mean "never engaged in this episode" (the env uses ~1e6 h)
NEVER_ENGAGED_H = 1e5
TREE_FORMAT = "decaygym-tree-policy"
TREE_VERSION = 1


def feature_table(obs: NDArray[np.float32], horizon: int, exposure_slots: int) -> NDArray[np.float32]:
    """Per-slot features in natural units, shape (N, K, len(FEATURES)), float32 (as scikit-learn sees them).

    Args:
        obs: batch of observations (N, K·9 + 3).
        horizon: ``SimConfig.horizon`` (the visit index is squashed with it).
        exposure_slots: M (the recent unanswered exposures are squashed with it).
    """
    n, k = obs.shape[0], num_slots(obs.shape[1])
    user = obs[:, k * NUM_ITEM_FEATURES :]
    cols = [
        block(obs, PREDICTED_INTEREST_BLOCK).astype(np.float64),
        unsquash(block(obs, HOURS_SINCE_ENGAGEMENT_BLOCK), HOURS_SCALE),
        unsquash_count(block(obs, EXPOSURES_BLOCK), COUNT_SCALE),
        unsquash_count(block(obs, CLICKS_BLOCK), COUNT_SCALE),
        unsquash_count(block(obs, PURCHASES_BLOCK), COUNT_SCALE),
        unsquash_count(block(obs, UNANSWERED_BLOCK), COUNT_SCALE),
        unsquash(block(obs, AGE_BLOCK), AGE_SCALE),
        unsquash(block(obs, VALUE_BLOCK), VALUE_SCALE),
        np.broadcast_to(unsquash_count(user[:, VISIT_FEATURE : VISIT_FEATURE + 1], horizon), (n, k)),
        np.broadcast_to(
            unsquash(user[:, UNANSWERED_USER_FEATURE : UNANSWERED_USER_FEATURE + 1], exposure_slots), (n, k)
        ),
        np.broadcast_to(user[:, EMPTY_SHARE_FEATURE : EMPTY_SHARE_FEATURE + 1].astype(np.float64), (n, k)),
    ]
    return np.stack(cols, axis=-1).astype(np.float32)


@dataclass
class Decisions:
    """What a policy did: one row per (user visit, non-empty slot)."""

    features: NDArray[np.float32]
    """(rows, len(FEATURES)) natural-unit features."""
    actions: NDArray[np.int64]
    """(rows,) the action taken, 0 show, 1 reduce, 2 retire."""
    seeds: NDArray[np.int64]
    """(rows,) the user seed of each row."""


def collect_decisions(
    policy: Policy,
    config: SimConfig,
    seeds: list[int],
    *,
    batch: int = 2048,
    deterministic: bool = True,
) -> Decisions:
    """Roll ``policy`` out for one episode per user seed and record every decision on a non-empty slot.

    Args:
        policy: the policy to explain (the oracle gets its hidden truth, as in ``evaluate``).
        config: the simulator config (preset with overrides).
        seeds: user seeds, one episode each.
        batch: users stepped together.
        deterministic: passed to ``predict``.
    """
    feats, acts, users = [], [], []
    oracle = uses_hidden_info(policy)
    for start in range(0, len(seeds), batch):
        chunk = [int(s) for s in seeds[start : start + batch]]
        venv = InterestDecayVectorEnv(len(chunk), config=config, hidden_info=oracle)
        obs, info = venv.reset(seed=chunk)
        hidden = hidden_of(info) if oracle else None
        active = np.ones(len(chunk), bool)
        episode_start = np.ones(len(chunk), bool)
        state = None
        seed_arr = np.asarray(chunk, np.int64)
        while active.any():
            actions, state = act(policy, obs, hidden, state, episode_start, deterministic)
            keep = (block(obs, EMPTY_BLOCK) < 0.5) & active[:, None]
            feats.append(feature_table(obs, config.horizon, config.exposure_slots)[keep])
            acts.append(actions[keep])
            users.append(np.broadcast_to(seed_arr[:, None], keep.shape)[keep])
            obs, _, terminated, truncated, info = venv.step(actions)
            if oracle:
                hidden = hidden_of(info)
            active &= ~(terminated | truncated)
            episode_start = terminated | truncated
    return Decisions(np.concatenate(feats), np.concatenate(acts).astype(np.int64), np.concatenate(users))


def fit_tree(
    decisions: Decisions,
    *,
    max_depth: int = 3,
    min_samples_leaf: int = 20,
    seed: int = 0,
    weights: NDArray[np.float64] | None = None,
) -> Any:
    """A ``DecisionTreeClassifier`` that predicts the policy's action from the features.

    ``weights`` (one per row) make some decisions count more (``agents.viper``).

    Returns:
        The fitted scikit-learn tree (its ``feature_names_in_`` are not set: columns are ``FEATURES``).
    """
    from sklearn.tree import DecisionTreeClassifier

    if len(decisions.actions) == 0:
        raise ValueError("no decisions to distil (every slot was empty?)")
    tree = DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=min_samples_leaf, random_state=seed)
    return tree.fit(decisions.features, decisions.actions, sample_weight=weights)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"


def describe_condition(feature: int, low: float | None, high: float | None) -> str:
    """One feature's bounds (low < x <= high) in words, in natural units."""
    name, kind = FEATURES[feature]
    if kind == "engaged":
        if low is not None and low >= NEVER_ENGAGED_H:
            return "the category was never engaged this episode"
        if high is not None and high >= NEVER_ENGAGED_H:
            if low is None:
                return "the category was engaged this episode"
            return f"the category was engaged more than {_fmt(low)} h ago"
    if kind == "count":
        lo = None if low is None else int(np.floor(low)) + 1  # x > low  <=>  x >= floor(low) + 1
        hi = None if high is None else int(np.floor(high))  # x <= high <=>  x <= floor(high)
        if lo is not None and hi is not None:
            return f"{name} = {lo}" if lo == hi else f"{name} {lo}-{hi}"
        if hi is not None:
            return f"{name} = 0" if hi == 0 else f"{name} ≤ {hi}"
        return f"{name} ≥ {lo}"
    if low is not None and high is not None:
        return f"{_fmt(low)} < {name} ≤ {_fmt(high)}"
    if high is not None:
        return f"{name} ≤ {_fmt(high)}"
    return f"{name} > {_fmt(low)}"  # type: ignore[arg-type]


@dataclass(frozen=True)
class TreeArrays:
    """A fitted tree as plain arrays (scikit-learn's ``tree_`` layout), enough to apply and print it."""

    left: NDArray[np.int64]
    right: NDArray[np.int64]
    feature: NDArray[np.int64]
    threshold: NDArray[np.float64]
    counts: NDArray[np.float64]
    """(nodes, 3) decisions of each action reaching the node (training rows)."""

    @classmethod
    def from_sklearn(cls, tree: Any) -> TreeArrays:
        """From a fitted ``DecisionTreeClassifier``; classes are mapped back to actions 0/1/2."""
        t = tree.tree_
        fractions = t.value[:, 0, :] / t.value[:, 0, :].sum(axis=1, keepdims=True)
        counts = np.zeros((t.node_count, 3))
        counts[:, np.asarray(tree.classes_, np.int64)] = fractions * t.n_node_samples[:, None]
        return cls(
            np.asarray(t.children_left, np.int64),
            np.asarray(t.children_right, np.int64),
            np.asarray(t.feature, np.int64),
            np.asarray(t.threshold, np.float64),
            np.rint(counts),
        )

    @property
    def action(self) -> NDArray[np.int64]:
        """The action of each node: the most frequent one (ties to the lower action)."""
        return np.argmax(self.counts, axis=1).astype(np.int64)

    @functools.cached_property
    def depth(self) -> int:
        """Number of splits on the longest path."""
        depth = np.zeros(len(self.left), np.int64)
        for node in range(len(self.left)):  # parents come before children in scikit-learn's order
            for child in (self.left[node], self.right[node]):
                if child >= 0:
                    depth[child] = depth[node] + 1
        return int(depth.max())

    def apply(self, x: NDArray[np.float32]) -> NDArray[np.int64]:
        """The action per row of natural-unit features (rows, len(FEATURES)); left when x <= threshold."""
        node = np.zeros(len(x), np.int64)
        rows = np.arange(len(x))
        for _ in range(self.depth):
            leaf = self.left[node] < 0
            value = x[rows, np.maximum(self.feature[node], 0)].astype(np.float64)
            node = np.where(
                leaf, node, np.where(value <= self.threshold[node], self.left[node], self.right[node])
            )
        return self.action[node]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "children_left": self.left.tolist(),
            "children_right": self.right.tolist(),
            "feature": self.feature.tolist(),
            "threshold": self.threshold.tolist(),
            "counts": self.counts.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TreeArrays:
        """Inverse of :meth:`to_dict`."""
        return cls(
            np.asarray(data["children_left"], np.int64),
            np.asarray(data["children_right"], np.int64),
            np.asarray(data["feature"], np.int64),
            np.asarray(data["threshold"], np.float64),
            np.asarray(data["counts"], np.float64),
        )


@dataclass(frozen=True)
class Rule:
    """One leaf (or merged subtree) of the tree: take ``action`` when all ``conditions`` hold."""

    action: int
    conditions: tuple[str, ...]
    share: float
    """Share of all training decisions that reach this rule."""
    purity: float
    """Share of those decisions on which the policy took ``action``."""

    def __str__(self) -> str:
        when = " and ".join(self.conditions) if self.conditions else "always"
        return (
            f"{ACTION_NAMES[self.action]} when {when}  "
            f"({100 * self.share:.1f} % of decisions, the policy agrees on {100 * self.purity:.1f} %)"
        )


def tree_rules(tree: TreeArrays) -> list[Rule]:
    """One rule per leaf, with subtrees whose leaves all take the same action merged into one rule."""
    total = tree.counts[0].sum()
    leaf_actions: dict[int, set[int]] = {}

    def actions_below(node: int) -> set[int]:
        if node not in leaf_actions:
            if tree.left[node] < 0:
                leaf_actions[node] = {int(tree.action[node])}
            else:
                leaf_actions[node] = actions_below(int(tree.left[node])) | actions_below(
                    int(tree.right[node])
                )
        return leaf_actions[node]

    rules: list[Rule] = []

    def walk(node: int, bounds: dict[int, list[float | None]]) -> None:
        below = actions_below(node)
        if tree.left[node] < 0 or len(below) == 1:
            counts = tree.counts[node]
            action = next(iter(below)) if len(below) == 1 else int(tree.action[node])
            conditions = tuple(describe_condition(f, lo, hi) for f, (lo, hi) in sorted(bounds.items()))
            n = counts.sum()
            rules.append(Rule(action, conditions, n / total, counts[action] / n if n else float("nan")))
            return
        f, t = int(tree.feature[node]), float(tree.threshold[node])
        lo, hi = bounds.get(f, [None, None])
        left = {**bounds, f: [lo, t if hi is None else min(hi, t)]}
        right = {**bounds, f: [t if lo is None else max(lo, t), hi]}
        walk(int(tree.left[node]), left)
        walk(int(tree.right[node]), right)

    walk(0, {})
    return sorted(rules, key=lambda r: (r.action, -r.share))


def rules_text(rules: list[Rule], title: str) -> str:
    """The rules as a block of text, grouped by action."""
    lines = [title]
    for action, name in enumerate(ACTION_NAMES):
        mine = [r for r in rules if r.action == action]
        if mine:
            lines.append(f"{name} ({100 * sum(r.share for r in mine):.1f} % of decisions):")
            lines.extend(f"  - {r}" for r in mine)
    return "\n".join(lines)


class TreePolicy(RulePolicy):
    """A distilled tree applied per item: one more policy for the evaluation and the benchmark.

    Args:
        tree: the tree as arrays.
        horizon: ``SimConfig.horizon`` of the env it acts in (to read the visit index).
        exposure_slots: M of that env (to read the recent unanswered exposures).
    """

    def __init__(self, tree: TreeArrays, horizon: int, exposure_slots: int) -> None:
        self.tree = tree
        self.horizon = int(horizon)
        self.exposure_slots = int(exposure_slots)

    def decide(self, obs: NDArray[np.float32]) -> NDArray[np.integer]:
        """The tree's action for every slot."""
        x = feature_table(obs, self.horizon, self.exposure_slots)
        return self.tree.apply(x.reshape(-1, x.shape[-1])).reshape(x.shape[:2])

    @classmethod
    def load(cls, path: Path | str, config: SimConfig | None = None) -> TreePolicy:
        """From ``tree.json`` (or a folder holding it) written by :func:`save_tree`.

        Args:
            path: the JSON file or its folder.
            config: the config of the env it will act in (default: the one it was distilled on).

        Raises:
            ArtifactError: missing or not a tree-policy file.
        """
        path = Path(path)
        if path.is_dir():
            path = path / "tree.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"tree policy {path}: not readable ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != TREE_FORMAT:
            raise ArtifactError(
                f"tree policy {path}: not a {TREE_FORMAT} file (write one with decaygym-explain)"
            )
        if data.get("version") != TREE_VERSION or list(data.get("features", [])) != list(FEATURE_NAMES):
            raise ArtifactError(
                f"tree policy {path}: version {data.get('version')!r} or its features differ from this "
                f"decaygym's (version {TREE_VERSION}); distil it again"
            )
        horizon = config.horizon if config is not None else data["horizon"]
        slots = config.exposure_slots if config is not None else data["exposure_slots"]
        return cls(TreeArrays.from_dict(data["tree"]), horizon, slots)

    def __repr__(self) -> str:
        return f"TreePolicy(depth={self.tree.depth}, leaves={int((self.tree.left < 0).sum())})"


def is_tree_file(path: Path | str) -> bool:
    """Whether ``path`` is a tree-policy JSON, or a folder holding one (cheap check, for dispatch)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tree.json"
    if not path.is_file() or path.suffix != ".json":
        return False
    try:
        return json.loads(path.read_text()).get("format") == TREE_FORMAT
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def save_tree(
    out: Path, tree: Any, config: SimConfig, rules: str, extra: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Write ``tree.json`` (what :class:`TreePolicy` loads), ``rules.txt`` and ``tree.joblib``, atomically.

    Returns:
        name -> path of each file written.
    """
    import io

    import joblib

    out = Path(out)
    arrays = TreeArrays.from_sklearn(tree)
    paths = {"json": out / "tree.json", "rules": out / "rules.txt", "joblib": out / "tree.joblib"}
    atomic_write_json(
        paths["json"],
        {
            "format": TREE_FORMAT,
            "version": TREE_VERSION,
            "features": list(FEATURE_NAMES),
            "actions": list(ACTION_NAMES),
            "horizon": config.horizon,
            "exposure_slots": config.exposure_slots,
            "tree": arrays.to_dict(),
            **(extra or {}),
        },
    )
    atomic_write_bytes(paths["rules"], (rules + "\n").encode())
    buffer = io.BytesIO()
    joblib.dump(tree, buffer)
    atomic_write_bytes(paths["joblib"], buffer.getvalue())
    return paths
