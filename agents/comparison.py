"""Compare policies on the same held-out users: the protocol of ``decaygym-evaluate``.

Every policy runs one episode for each held-out user, the same users for all
(``agents.seeds``: the evaluation users of the root seed, disjoint from every training and
validation user), so comparisons are paired. The threshold rule, threshold+ and the oracle are
tuned first on the training users of the seed (one grid for all, highest mean return; the best
rule a knob at a time from threshold+'s point), or read from an earlier run's ``tuned.json``.
The tuned threshold rule (the baseline of every difference) and the oracle (the reference of the
gap share) are always evaluated, added when not listed.

Rules of one's own (``agents.custom``): ``module.path:Name`` or ``'module.path:Name{"k": v}'``
names a class or factory function, called with the JSON's keyword arguments (and ``config=`` /
``seed=`` when its signature has them); the result must have SB3's ``predict``. A ``Name`` with
a ``tuning_grid`` is tuned with the baselines on the same training users (its choice goes to
tuned.json's ``custom`` section) or read from ``tuned.json``.

The report gathers per policy: mean return, clicks, purchases, slots used and churn rate with
95 % bootstrap intervals over users; the paired differences to the tuned threshold rule and to
the reference rules that were evaluated (threshold+, best rule); the share of the
threshold-to-oracle gap it closes ((policy - threshold) / (oracle - threshold), paired
bootstrap); the lifecycle (show / reduce / retire by item age and by predicted interest) and its
action shares. ``agents.comparison_report`` writes it: ``table.md``, ``table.csv``,
``summary.json``, ``records.parquet`` (one row per policy and user), ``tuned.json`` (when tuned
here), ``returns.png``, ``lifecycle.png``, ``lifecycle_interest.png``. Intervals are over these
simulated users only; results depend on the simulator and its decay model, not on real users.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from agents import seeds as seed_scheme
from agents.custom import resolve
from agents.evaluation import REPORT_METRICS, compare_policies, evaluate, paired_difference, summarize
from agents.policy import Policy
from agents.policy_specs import is_custom, make_policy, policy_label, spec_key
from agents.simulator import Simulator, check_tuned_simulator
from agents.tuning import TuningGrid, grid_size, load_tuned, tune
from decay_model.atomic import atomic_write_bytes, atomic_write_json
from decay_model.errors import ConfigError

THRESHOLD, THRESHOLD_PLUS, BEST_RULE, ORACLE = "threshold", "threshold_plus", "best_rule", "oracle"
#: the rules with the agents' information every policy is also compared with, when evaluated
REFERENCES = {THRESHOLD_PLUS: "threshold+", BEST_RULE: "best rule"}
SHARES = ("share_show", "share_reduce", "share_retire")
#: ``start(description, total)`` opens a progress task and returns what advances it by one step
StartTask = Callable[[str, int], Callable[..., None]]


def evaluation_specs(policies: Sequence[str]) -> tuple[list[str], list[str]]:
    """The specs to evaluate and the references among them that were added (threshold, oracle).

    One entry per policy; custom specs in their canonical form, so that runs record and match them.
    """
    canonical = {spec_key(spec): spec_key(spec) if is_custom(spec) else spec for spec in policies}
    specs = list(canonical.values())
    added = [name for name in (THRESHOLD, ORACLE) if name not in specs]
    return specs + added, added


def evaluation_record(
    sim: Simulator,
    specs: list[str],
    added: list[str],
    seed: int,
    eval_users: int,
    tuning_users: seed_scheme.UserSeeds | None,
    tuned: str | None,
) -> dict[str, Any]:
    """What an evaluation's ``config.json`` records about its simulator, policies and users."""
    return {
        "preset": sim.preset,
        "simulator": sim.record(),
        "sim_config": sim.config.to_dict(),
        "policies": specs,
        "added_references": added,
        "eval_seeds": seed_scheme.eval_users(seed, eval_users).to_dict(),
        "tuning_seeds": None if tuning_users is None else tuning_users.to_dict(),
        "seed_scheme": seed_scheme.scheme(),
        "tuned": tuned,
    }


def read_tuned(path: str, sim: Simulator, needed: list[str], custom: list[str]) -> dict[str, Any]:
    """The ``--tuned`` file; ConfigError unless tuned on ``sim``, for every ``needed`` and ``custom``."""
    data = load_tuned(path, sim.preset)
    check_tuned_simulator(data, path, sim)
    missing = [f for f in needed if f not in data["tuned"]]
    missing += [c for c in custom if c not in data.get("custom", {})]
    if missing:
        raise ConfigError(
            f"--tuned {path}: no tuned parameters for {', '.join(missing)} "
            "(leave out --tuned to tune them here)"
        )
    return data


def tune_baselines(
    sim: Simulator,
    needed: list[str],
    custom: list[str],
    grid: TuningGrid,
    seeds: list[int],
    *,
    seed: int,
    batch: int,
    run_dir: Path,
    start: StartTask,
) -> dict[str, Any]:
    """Tune on the training users ``seeds`` and save ``tuned.json`` and ``tuning_grid.csv`` in the run.

    ``needed`` are the baseline families, ``custom`` the tunable custom specs (canonical); they
    go to the ``tuned`` and ``custom`` sections of tuned.json, which is returned.
    """
    factories = [resolve(spec) for spec in custom]
    total = grid_size(grid, needed) + sum(len(f.points()) for f in factories)
    advance = start("tuning on training users", total)
    env_kwargs = sim.env_kwargs()
    result = tune(sim.preset, seeds, families=needed, grid=grid, batch=batch, on_point=advance, **env_kwargs)
    data = {**result.to_dict(), "simulator": sim.record()}
    tables = [result.table]
    if factories:
        data["custom"] = {}
        for factory in factories:
            entry, rows = factory.tune(
                sim.config, sim.preset, seeds, seed=seed, batch=batch, on_point=advance, **env_kwargs
            )
            data["custom"][factory.spec.canonical] = entry
            tables.append(pd.DataFrame(rows))
    atomic_write_json(run_dir / "tuned.json", data)
    table = pd.concat(tables, ignore_index=True)
    atomic_write_bytes(run_dir / "tuning_grid.csv", table.to_csv(index=False).encode())
    return data


def build_policies(
    specs: Sequence[str], sim: Simulator, tuned: dict[str, Any], seed: int
) -> tuple[dict[str, Policy], dict[str, str]]:
    """The policies by unique label (``policy_label``), and the spec of every label."""
    policies: dict[str, Policy] = {}
    labels: dict[str, str] = {}
    for spec in specs:
        label = policy_label(spec, set(policies))
        policies[label] = make_policy(spec, sim.preset, sim.config, tuned["tuned"], seed, tuned.get("custom"))
        labels[label] = spec
    return policies, labels


def write_records(run_dir: Path, records: dict[str, pd.DataFrame]) -> None:
    """``records.parquet``: one row per policy and held-out user (rewritten atomically as policies finish)."""
    frame = pd.concat(records.values(), ignore_index=True)
    atomic_write_bytes(run_dir / "records.parquet", frame.to_parquet(index=False))


def evaluate_policies(
    policies: dict[str, Policy],
    sim: Simulator,
    seeds: list[int],
    *,
    batch: int,
    run_dir: Path,
    start: StartTask,
) -> dict[str, pd.DataFrame]:
    """Every policy on the held-out users ``seeds``: one row per user, by label.

    ``records.parquet`` is rewritten after every policy, so that a run that dies keeps the records
    of those already done.
    """
    records: dict[str, pd.DataFrame] = {}
    advance = start("held-out users", len(policies))
    for label, policy in policies.items():
        records[label] = evaluate(
            policy,
            preset=sim.preset,
            seeds=seeds,
            num_users=batch,
            label=label,
            **sim.env_kwargs(),
        )
        write_records(run_dir, records)
        advance()
    return records


def compare(records: dict[str, pd.DataFrame], *, n_boot: int, seed: int) -> dict[str, dict[str, Any]]:
    """The report by label: ``compare_policies``' metrics, differences, gap share and lifecycle.

    Added to it: the paired differences to every reference rule evaluated, and the action shares.
    """
    report = compare_policies(records, threshold=THRESHOLD, oracle=ORACLE, n_boot=n_boot, seed=seed)
    # the rules with the agents' information: the bars a learned policy must pass
    for reference in (name for name in REFERENCES if name in records):
        for label, rec in records.items():
            diff = paired_difference(
                rec, records[reference], metrics=REPORT_METRICS, n_boot=n_boot, seed=seed
            )
            report[label][f"diff_vs_{reference}"] = diff.to_dict(orient="index")
    # the action shares (per-user means) are reported too, without paired differences
    for label, rec in records.items():
        shares = summarize(rec, metrics=SHARES, n_boot=n_boot, seed=seed)
        report[label]["metrics"].update(shares.to_dict(orient="index"))
    return report
