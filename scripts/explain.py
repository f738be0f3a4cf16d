r"""Distil a policy into a shallow decision tree and print what it does as rules in words.

Examples:
    python -m scripts.explain --policy runs/ppo/model.zip --preset default --out runs/explain_ppo
    python -m scripts.explain --policy threshold_plus --preset small --tuned runs/eval/tuned.json

Protocol: the policy (a trained model by path, or a baseline by name) runs one episode for
each of ``--train-users`` training users of ``--seed`` (``agents.seeds``); every decision on a
non-empty slot is one row: the item's features and the user's (in natural units: counts,
hours, interest; ``agents.tree_policy.FEATURES``) and the action taken. A scikit-learn
``DecisionTreeClassifier`` of depth ``--max-depth`` is fitted to those rows and printed as one
rule per leaf. Its agreement with the policy is measured on ``--check-users`` validation users
(never seen by the fit), where both the policy and the tree also run as policies (mean return
of each, paired difference). Written to --out: ``tree.json`` (what ``TreePolicy`` and
``decaygym-evaluate`` load), ``rules.txt``, ``tree.joblib`` (the scikit-learn object),
``explain.json`` (agreement overall, per action and the confusion matrix; returns) and
``config.json``. Baselines that need tuned thresholds read them from ``--tuned`` or are tuned
first on the training users.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd

from agents import seeds as seed_scheme
from agents.evaluation import evaluate, paired_difference
from agents.policy import ACTION_NAMES
from agents.tree_policy import (
    FEATURE_NAMES,
    TreeArrays,
    TreePolicy,
    collect_decisions,
    fit_tree,
    rules_text,
    save_tree,
    tree_rules,
)
from agents.tuning import TUNED_FAMILIES, load_tuned, save_tuned, tune
from decay_model.atomic import atomic_write_json
from decay_model.errors import ConfigError
from scripts.common import (
    add_simulator_options,
    check_tuned_simulator,
    make_run_dir,
    progress,
    resolve_simulator,
    run_cli,
    write_provenance,
)
from scripts.evaluate import check_specs, make_policy


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--help`` explains each."""
    parser = argparse.ArgumentParser(prog="decaygym-explain", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--policy", required=True, metavar="NAME_OR_PATH", help="a trained model's path or a baseline name"
    )
    add_simulator_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="root seed of the users (default: 0)")
    parser.add_argument("--out", help="run folder (default: runs/explain__<preset>__seed<seed>__<time>)")
    parser.add_argument(
        "--train-users", type=int, default=500, help="users the tree is fitted on (default: 500)"
    )
    parser.add_argument(
        "--check-users",
        type=int,
        default=500,
        help="held-out (validation) users for the agreement (default: 500)",
    )
    parser.add_argument("--max-depth", type=int, default=3, help="depth of the tree (default: 3)")
    parser.add_argument(
        "--min-samples-leaf", type=int, default=50, help="fewest decisions per leaf (default: 50)"
    )
    parser.add_argument("--tuned", help="tuned parameters JSON, for the tuned baselines (default: tune here)")
    parser.add_argument("--batch", type=int, default=2048, help="users stepped together (default: 2048)")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Distil, print the rules and the agreement, write the run folder; returns the exit status."""
    args = parse_args(argv)
    for name in ("train_users", "check_users", "max_depth", "min_samples_leaf", "batch", "n_boot"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    sim = resolve_simulator(args)
    args.preset = sim.preset  # a simulator folder keeps the default preset's sizes and env id
    config = sim.config
    check_specs([args.policy])
    train_range = seed_scheme.train_users(args.seed, args.train_users)
    check_range = seed_scheme.valid_users(args.seed, args.check_users)
    tuned = None
    if args.tuned:
        data = load_tuned(args.tuned, args.preset)
        check_tuned_simulator(data, args.tuned, sim)
        tuned = data["tuned"]
    run_dir = make_run_dir(args.out, "explain", sim.label, args.seed)
    write_provenance(
        run_dir,
        {
            "policy": args.policy,
            "preset": args.preset,
            "simulator": sim.record(),
            "sim_config": config.to_dict(),
            "fit_seeds": train_range.to_dict(),
            "check_seeds": check_range.to_dict(),
            "seed_scheme": seed_scheme.scheme(),
            "max_depth": args.max_depth,
            "min_samples_leaf": args.min_samples_leaf,
            "tuned": args.tuned,
        },
        args.seed,
        ["scripts.explain", *(argv or [])],
    )
    with progress() as bar:
        task = bar.add_task("rolling out, fitting, checking", total=4)
        if args.policy in TUNED_FAMILIES and (tuned is None or args.policy not in tuned):
            result = tune(
                args.preset,
                train_range.seeds(),
                families=(args.policy,),
                batch=args.batch,
                **sim.env_kwargs(),
            )
            save_tuned(run_dir / "tuned.json", result, sim.record())
            tuned = result.tuned
        policy = make_policy(args.policy, args.preset, config, tuned, args.seed)
        fit_rows = collect_decisions(policy, config, train_range.seeds(), batch=args.batch)
        bar.advance(task)
        tree = fit_tree(
            fit_rows, max_depth=args.max_depth, min_samples_leaf=args.min_samples_leaf, seed=args.seed
        )
        arrays = TreeArrays.from_sklearn(tree)
        bar.advance(task)
        policy = make_policy(
            args.policy, args.preset, config, tuned, args.seed
        )  # fresh (e.g. random's stream)
        check_rows = collect_decisions(policy, config, check_range.seeds(), batch=args.batch)
        predicted = arrays.apply(check_rows.features)
        agree = predicted == check_rows.actions
        bar.advance(task)
        policy = make_policy(args.policy, args.preset, config, tuned, args.seed)
        rec_policy = evaluate(
            policy,
            preset=args.preset,
            seeds=check_range.seeds(),
            num_users=args.batch,
            label=args.policy,
            **sim.env_kwargs(),
        )
        tree_policy = TreePolicy(arrays, config.horizon, config.exposure_slots)
        rec_tree = evaluate(
            tree_policy,
            preset=args.preset,
            seeds=check_range.seeds(),
            num_users=args.batch,
            label="tree",
            **sim.env_kwargs(),
        )
        bar.advance(task)

    per_action = {
        ACTION_NAMES[a]: {
            "decisions": int((check_rows.actions == a).sum()),
            "agreement": float(agree[check_rows.actions == a].mean())
            if (check_rows.actions == a).any()
            else None,
        }
        for a in range(3)
    }
    confusion = pd.crosstab(
        pd.Categorical(check_rows.actions, categories=range(3)),
        pd.Categorical(predicted, categories=range(3)),
        dropna=False,
    ).to_numpy()
    diff = paired_difference(rec_tree, rec_policy, metrics=("return",), n_boot=args.n_boot, seed=args.seed)
    returns = {
        "policy": float(rec_policy["return"].mean()),
        "tree": float(rec_tree["return"].mean()),
        "tree_minus_policy": diff.loc["return"].to_dict(),
    }
    title = (
        f"{args.policy} distilled into a depth-{args.max_depth} tree ({len(fit_rows.actions):,} decisions of "
        f"{args.train_users} training users); agreement on {len(check_rows.actions):,} decisions of "
        f"{args.check_users} held-out users: {100 * agree.mean():.1f} %"
    )
    text = rules_text(tree_rules(arrays), title)
    summary = {
        "policy": args.policy,
        "policy_repr": repr(policy),
        "preset": args.preset,
        "features": list(FEATURE_NAMES),
        "max_depth": args.max_depth,
        "fit_decisions": len(fit_rows.actions),
        "fit_agreement": float((arrays.apply(fit_rows.features) == fit_rows.actions).mean()),
        "check_decisions": len(check_rows.actions),
        "agreement": float(agree.mean()),
        "agreement_per_action": per_action,
        "confusion": {"rows": "policy action", "columns": "tree action", "matrix": confusion.tolist()},
        "returns_on_check_users": returns,
        "fit_seeds": train_range.to_dict(),
        "check_seeds": check_range.to_dict(),
    }
    save_tree(
        run_dir,
        tree,
        config,
        text,
        {"distilled_from": args.policy, "preset": args.preset, "agreement": summary["agreement"]},
    )
    atomic_write_json(run_dir / "explain.json", summary)

    print(text)
    print(
        "agreement per action of the policy: "
        + ", ".join(
            f"{name} {100 * v['agreement']:.1f} % of {v['decisions']:,}"
            for name, v in per_action.items()
            if v["agreement"] is not None
        )
    )
    d = returns["tree_minus_policy"]
    print(
        f"mean return on the held-out users: policy {returns['policy']:.3f}, tree {returns['tree']:.3f} "
        f"(tree - policy {d['mean']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}], paired 95% CI)"
    )
    print(f"written to {run_dir}")
    return 0


def cli(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    run_cli("decaygym-explain", main, argv)


if __name__ == "__main__":
    cli()
