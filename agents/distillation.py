"""Distil a policy into a shallow decision tree and measure how well the tree stands in for it.

Protocol (``decaygym-explain``): the policy runs one episode for each fitting user; every
decision on a non-empty slot is one row (``agents.tree_policy.collect_decisions``) and a
depth-limited tree is fitted to those rows (``fit_tree``). A fresh copy of the policy then runs
on the checking users (never seen by the fit): the tree's agreement with its decisions is
measured there, overall, per action and as a confusion matrix, and both the policy and the tree
run as policies on those users (mean return of each, paired difference).

Rows hold the item's and the user's features in natural units (counts, hours, interest;
``agents.tree_policy.FEATURES``); the tree is scikit-learn's ``DecisionTreeClassifier``, printed
as one rule per leaf. What ``decaygym-explain`` writes: ``tree.json`` (what ``TreePolicy`` and
``decaygym-evaluate`` load), ``rules.txt``, ``tree.joblib`` (the scikit-learn object),
``explain.json`` (agreement overall, per action and the confusion matrix; returns) and
``config.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from agents import seeds
from agents.evaluation import evaluate, paired_difference
from agents.policy import ACTION_NAMES, Policy
from agents.seeds import UserSeeds
from agents.simulator import Simulator
from agents.tree_policy import (
    FEATURE_NAMES,
    Decisions,
    TreeArrays,
    TreePolicy,
    collect_decisions,
    fit_tree,
    rules_text,
    save_tree,
    tree_rules,
)
from agents.tuning import TUNED_FAMILIES, save_tuned, tune
from agents.viper import viper
from decay_model.atomic import atomic_write_json
from envs.config import SimConfig


@dataclass(frozen=True)
class ViperSearch:
    """How :func:`distill` searches by VIPER: depths, DAgger iterations and the selection users."""

    depths: tuple[int, ...]
    iterations: int
    select_users: UserSeeds
    """Users the trees are chosen on (neither fitting nor checking users)."""

    @property
    def steps(self) -> int:
        """Progress steps the search adds: one per fitted tree."""
        return len(self.depths) * (self.iterations + 1)


@dataclass(frozen=True)
class Distillation:
    """A fitted tree with the decisions it was fitted and checked on, and the returns of both."""

    label: str
    """The policy's name or path, as given."""
    max_depth: int
    fit_users: UserSeeds
    check_users: UserSeeds
    tree: Any
    """The fitted scikit-learn ``DecisionTreeClassifier``."""
    arrays: TreeArrays
    fit_rows: Decisions
    check_rows: Decisions
    predicted: NDArray[np.int64]
    """The tree's action for every decision of ``check_rows``."""
    policy: Policy
    """The copy of the policy that ran as a policy on the checking users."""
    policy_records: pd.DataFrame
    tree_records: pd.DataFrame
    viper: dict[str, Any] | None = None
    """The VIPER search behind the tree (``agents.viper.ViperResult.to_dict``); None: cloned once."""

    @property
    def title(self) -> str:
        """The headline of the rules: what was distilled into what, on how much, and the agreement."""
        how = "by VIPER " if self.viper is not None else ""
        return (
            f"{self.label} distilled {how}into a depth-{self.max_depth} tree ({len(self.fit_rows.actions):,} "
            f"decisions of {self.fit_users.count} training users); agreement on "
            f"{len(self.check_rows.actions):,} decisions of {self.check_users.count} held-out users: "
            f"{100 * self.agree.mean():.1f} %"
        )

    @property
    def agree(self) -> NDArray[np.bool_]:
        """Whether the tree takes the policy's action, per decision of the checking users."""
        return self.predicted == self.check_rows.actions

    def agreement_per_action(self) -> dict[str, dict[str, Any]]:
        """Per action of the policy: its decisions on the checking users and the tree's agreement."""
        actions, agree = self.check_rows.actions, self.agree
        return {
            ACTION_NAMES[a]: {
                "decisions": int((actions == a).sum()),
                "agreement": float(agree[actions == a].mean()) if (actions == a).any() else None,
            }
            for a in range(3)
        }

    def confusion(self) -> NDArray[np.int64]:
        """Counts of (policy action, tree action) on the checking users, 3 x 3."""
        return pd.crosstab(
            pd.Categorical(self.check_rows.actions, categories=range(3)),
            pd.Categorical(self.predicted, categories=range(3)),
            dropna=False,
        ).to_numpy()

    def returns(self, *, n_boot: int, seed: int) -> dict[str, Any]:
        """Mean return of the policy and of the tree on the checking users, and their paired difference."""
        diff = paired_difference(
            self.tree_records, self.policy_records, metrics=("return",), n_boot=n_boot, seed=seed
        )
        return {
            "policy": float(self.policy_records["return"].mean()),
            "tree": float(self.tree_records["return"].mean()),
            "tree_minus_policy": diff.loc["return"].to_dict(),
        }


def tuned_params(
    policy: str,
    tuned: dict[str, dict[str, Any]] | None,
    sim: Simulator,
    seeds: list[int],
    *,
    batch: int,
    run_dir: Path,
) -> dict[str, dict[str, Any]] | None:
    """The tuned parameters ``policy`` is built with: ``tuned``, unless it is a tuned family missing there.

    Such a family is tuned now on the training users ``seeds`` and saved in the run (tuned.json).
    """
    if policy in TUNED_FAMILIES and (tuned is None or policy not in tuned):
        result = tune(sim.preset, seeds, families=(policy,), batch=batch, **sim.env_kwargs())
        save_tuned(run_dir / "tuned.json", result, sim.record())
        return result.tuned
    return tuned


def distill(
    make_policy: Callable[[], Policy],
    sim: Simulator,
    fit_users: UserSeeds,
    check_users: UserSeeds,
    *,
    label: str,
    max_depth: int,
    min_samples_leaf: int,
    seed: int,
    batch: int,
    advance: Callable[[], None],
    viper_search: ViperSearch | None = None,
) -> Distillation:
    """Fit the tree on ``fit_users`` and check it on ``check_users`` (``advance`` after each step).

    ``make_policy`` builds a fresh copy of the policy for every rollout, so that a policy that
    draws (random) starts its stream anew each time. Without ``viper_search`` the tree of depth
    ``max_depth`` is cloned from the policy's own decisions (4 steps); with it, it is the best
    tree of ``agents.viper.viper`` over the search's depths (``ViperSearch.steps`` more steps).
    """
    config = sim.config
    found = None
    if viper_search is None:
        fit_rows = collect_decisions(make_policy(), config, fit_users.seeds(), batch=batch)
        advance()
        tree = fit_tree(fit_rows, max_depth=max_depth, min_samples_leaf=min_samples_leaf, seed=seed)
    else:
        found = viper(
            make_policy,  # type: ignore[arg-type]  # viper checks that it is a trained agent
            sim,
            fit_users,
            viper_search.select_users,
            depths=viper_search.depths,
            iterations=viper_search.iterations,
            min_samples_leaf=min_samples_leaf,
            seed=seed,
            batch=batch,
            advance=advance,
        )
        tree, fit_rows, max_depth = found.tree, found.rows, found.depth
    arrays = TreeArrays.from_sklearn(tree)
    advance()
    check_rows = collect_decisions(make_policy(), config, check_users.seeds(), batch=batch)
    predicted = arrays.apply(check_rows.features)
    advance()
    policy = make_policy()
    policy_records = evaluate(
        policy, preset=sim.preset, seeds=check_users.seeds(), num_users=batch, label=label, **sim.env_kwargs()
    )
    tree_policy = TreePolicy(arrays, config.horizon, config.exposure_slots)
    tree_records = evaluate(
        tree_policy,
        preset=sim.preset,
        seeds=check_users.seeds(),
        num_users=batch,
        label="tree",
        **sim.env_kwargs(),
    )
    advance()
    return Distillation(
        label=label,
        max_depth=max_depth,
        fit_users=fit_users,
        check_users=check_users,
        tree=tree,
        arrays=arrays,
        fit_rows=fit_rows,
        check_rows=check_rows,
        predicted=predicted,
        policy=policy,
        policy_records=policy_records,
        tree_records=tree_records,
        viper=None if found is None else found.to_dict(),
    )


def explanation_record(
    policy: str, sim: Simulator, fit_users: UserSeeds, check_users: UserSeeds
) -> dict[str, Any]:
    """What an explanation's ``config.json`` records about the policy, the simulator and the users."""
    return {
        "policy": policy,
        "preset": sim.preset,
        "simulator": sim.record(),
        "sim_config": sim.config.to_dict(),
        "fit_seeds": fit_users.to_dict(),
        "check_seeds": check_users.to_dict(),
        "seed_scheme": seeds.scheme(),
    }


def explanation_summary(result: Distillation, *, preset: str, n_boot: int, seed: int) -> dict[str, Any]:
    """``explain.json``: the agreement (overall, per action, confusion matrix) and the returns."""
    return {
        "policy": result.label,
        "policy_repr": repr(result.policy),
        "preset": preset,
        "features": list(FEATURE_NAMES),
        "max_depth": result.max_depth,
        "fit_decisions": len(result.fit_rows.actions),
        "fit_agreement": float(
            (result.arrays.apply(result.fit_rows.features) == result.fit_rows.actions).mean()
        ),
        "check_decisions": len(result.check_rows.actions),
        "agreement": float(result.agree.mean()),
        "agreement_per_action": result.agreement_per_action(),
        "confusion": {
            "rows": "policy action",
            "columns": "tree action",
            "matrix": result.confusion().tolist(),
        },
        "returns_on_check_users": result.returns(n_boot=n_boot, seed=seed),
        "viper": result.viper,
        "fit_seeds": result.fit_users.to_dict(),
        "check_seeds": result.check_users.to_dict(),
    }


def write_explanation(run_dir: Path, result: Distillation, config: SimConfig, summary: dict[str, Any]) -> str:
    """``tree.json``, ``rules.txt``, ``tree.joblib`` and ``explain.json``; returns the rules as text."""
    text = rules_text(tree_rules(result.arrays), result.title)
    save_tree(
        run_dir,
        result.tree,
        config,
        text,
        {"distilled_from": result.label, "preset": summary["preset"], "agreement": summary["agreement"]},
    )
    atomic_write_json(run_dir / "explain.json", summary)
    return text


def result_lines(summary: dict[str, Any]) -> list[str]:
    """What to print after the rules: the agreement per action and the returns of policy and tree."""
    returns = summary["returns_on_check_users"]
    d = returns["tree_minus_policy"]
    search = summary.get("viper")
    steps = []
    if search is not None:
        steps = [f"VIPER on the selection users (agent's return {search['agent_selection_return']:.3f}):"] + [
            f"  depth {st['depth']}, iteration {st['iteration']}: return {st['selection_return']:.3f}, "
            f"agreement {100 * st['selection_agreement']:.1f} % on the tree's own states, {st['rows']:,} rows"
            + (" <- chosen" if st == search["chosen"] else "")
            for st in search["steps"]
        ]
    return [
        *steps,
        "agreement per action of the policy: "
        + ", ".join(
            f"{name} {100 * v['agreement']:.1f} % of {v['decisions']:,}"
            for name, v in summary["agreement_per_action"].items()
            if v["agreement"] is not None
        ),
        f"mean return on the held-out users: policy {returns['policy']:.3f}, tree {returns['tree']:.3f} "
        f"(tree - policy {d['mean']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}], paired 95% CI)",
    ]
