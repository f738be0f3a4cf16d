"""Policies named on a command line, by spec.

A spec is a baseline's name, the path of a trained model or of a distilled tree, or a rule of
one's own as ``module.path:Name`` (``agents.custom``). The functions here tell the kinds apart,
check a list of specs before any work, give every policy a key that identifies it across runs
and a short label for tables, and build the policy itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.custom import CustomSpec, is_custom_spec, resolve
from agents.policy import Policy
from agents.tree_policy import TreePolicy, is_tree_file
from agents.tuning import BASELINES, baseline
from decay_model.errors import ConfigError
from envs.config import SimConfig


def trained_policy(path: Path, preset: str) -> Policy:
    """A trained model through ``agents.trained.load_policy`` (imported only when a model is asked for)."""
    try:
        from agents.trained import load_policy
    except ImportError as exc:
        raise ConfigError(
            f"cannot load trained model {path}: agents.trained is not available ({exc})"
        ) from None
    return load_policy(path, preset)


def is_custom(spec: str) -> bool:
    """Whether ``spec`` names a rule of one's own (``module.path:Name``) rather than a baseline or a file."""
    return spec not in BASELINES and not Path(spec).exists() and is_custom_spec(spec)


def spec_key(spec: str) -> str:
    """What identifies a policy across runs: baseline name, canonical custom spec, or resolved path."""
    if spec in BASELINES:
        return spec
    if is_custom(spec):
        return CustomSpec.parse(spec).canonical
    return str(Path(spec).resolve())


def policy_label(spec: str, taken: set[str]) -> str:
    """A short unique label: the baseline name, the rule's name, or the model's file (or folder) name.

    Baseline names are kept for the baselines, so a model in a folder called ``threshold`` never
    takes the label the differences are computed against.
    """
    if spec in BASELINES:
        label = spec
    elif is_custom(spec):
        label = CustomSpec.parse(spec).label
    else:
        path = Path(spec)
        label = path.parent.name if path.name in ("model.zip", "tree.json", "best_model.zip") else path.stem
        label = label or str(path)
    base, i = label, 2
    while label in taken or (spec not in BASELINES and label in BASELINES):
        label, i = f"{base}#{i}", i + 1
    return label


def check_specs(specs: Sequence[str], config: SimConfig | None = None, seed: int = 0) -> None:
    """Every spec is a baseline, an existing path or a custom spec; ConfigError naming the first that is not.

    Custom specs are imported, and with ``config`` also built once and checked to be policies, so
    that a wrong one fails before any tuning or training.
    """
    for spec in specs:
        if spec in BASELINES or Path(spec).exists():
            continue
        if is_custom_spec(spec):
            factory = resolve(spec)
            if config is not None:
                factory.build(config, seed, factory.points()[0] if factory.tunable else None)
            continue
        if "/" in spec or "\\" in spec:
            raise ConfigError(f"model file {spec} not found")
        if ":" in spec:
            CustomSpec.parse(spec)  # not of the form: says which form is expected
        if Path(spec).suffix:
            raise ConfigError(f"model file {spec} not found")
        raise ConfigError(
            f"unknown policy {spec!r}: not a baseline ({', '.join(BASELINES)}), a model path, "
            "nor module.path:Name"
        )


def make_policy(
    spec: str,
    preset: str,
    config: SimConfig,
    tuned: dict[str, dict[str, Any]] | None,
    seed: int,
    custom_tuned: dict[str, dict[str, Any]] | None = None,
) -> Policy:
    """A baseline by name, a rule of one's own by spec, a distilled tree (tree.json) or a model by path.

    ``custom_tuned`` is tuned.json's ``custom`` section: a rule with a tuning grid is built with
    the parameters chosen there (with none recorded, with the spec's arguments only).
    """
    if spec in BASELINES:
        return baseline(spec, config, tuned, seed)
    if is_custom(spec):
        factory = resolve(spec)
        chosen = (custom_tuned or {}).get(factory.spec.canonical, {}).get("tuned")
        return factory.build(config, seed, chosen if factory.tunable else None)
    if is_tree_file(spec):
        return TreePolicy.load(spec, config)
    return trained_policy(Path(spec), preset)


def tunable_specs(specs: Sequence[str]) -> list[str]:
    """The custom specs whose rule declares a tuning grid (canonical form)."""
    out = []
    for spec in specs:
        if is_custom(spec):
            factory = resolve(spec)
            if factory.tunable:
                out.append(factory.spec.canonical)
    return out


def custom_params(spec: str, tuned: dict[str, Any]) -> dict[str, Any]:
    """For a rule of one's own, the keyword arguments it was built with (the spec's, then the tuned ones)."""
    if not is_custom(spec):
        return {}
    factory = resolve(spec)
    entry = tuned.get("custom", {}).get(factory.spec.canonical, {})
    chosen = entry.get("tuned", {}) if factory.tunable else {}
    return {"params": {**factory.spec.kwargs, **chosen}, "tuned_params": chosen or None}
