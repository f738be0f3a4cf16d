"""Tune the rule baselines on training users before any comparison (an untuned baseline proves nothing).

Protocol (:func:`tune`): the threshold rule, threshold+ and the oracle are each run over one
shared grid of (show_above, retire_below) pairs with retire_below <= show_above (threshold+
also over ``max_unanswered`` and whether it retires bought items) on the same training users,
and each keeps the point with the highest mean return (ties: the first point in grid order,
lowest show_above, then lowest retire_below). The best rule (``BestRulePolicy``) starts from
threshold+'s tuned point (the same rule with its extra mechanisms off) and searches one knob at
a time (:func:`coordinate_search`): de-duplication, tries, the upper-confidence weight z, rest
after a purchase, then max_unanswered, show_above and retire_below again; a value replaces the
current one only if its mean return is strictly higher, so the best rule never does worse than
threshold+ on the training users. The tuned values are saved as JSON
(:func:`save_tuned`) so that evaluation and the benchmark reuse them (:func:`load_tuned`,
:func:`baseline`), and the whole grid is returned as a table. Rules of one's own that declare a
``tuning_grid`` (``agents.custom``) are searched by the same :func:`grid_search` on the same
users; their choices go in the JSON's ``custom`` section (policy spec -> grid, tuned parameters,
training return).

Seeds follow the project's one scheme (``agents.seeds``): the baselines are tuned on the
training users of the root seed (:func:`tuning_seeds`) and compared on its held-out
evaluation users (:func:`evaluation_seeds`); the two ranges never overlap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from agents import seeds as seed_scheme
from agents.evaluation import evaluate
from agents.policy import (
    AlwaysShow,
    BestRulePolicy,
    GreedyPolicy,
    OraclePolicy,
    Policy,
    RandomPolicy,
    RetireEverything,
    ShowNothing,
    ThresholdPlusPolicy,
    ThresholdPolicy,
)
from decay_model.atomic import atomic_write_json
from decay_model.errors import ConfigError
from envs.config import SimConfig, get_preset
from envs.env import make_config

DEFAULT_SHOW = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.7, 1.01)
DEFAULT_RETIRE = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 1.01)
DEFAULT_MAX_UNANSWERED: tuple[int | None, ...] = (None, 2, 3, 5, 8)
DEFAULT_RETIRE_PURCHASED = (False, True)
DEFAULT_DUP_SHOW_ABOVE: tuple[float | None, ...] = (None, 0.2, 0.35, 0.5, 1.01)
DEFAULT_TRIES = (0, 1, 2)
DEFAULT_Z = (0.0, 0.5, 1.0, 2.0)
DEFAULT_REST_CYCLES: tuple[float | None, ...] = (None, 0.0, 0.5, 1.0)
#: the families :func:`tune` knows, in the order they are tuned (the best rule after threshold+,
#: from whose tuned point it starts)
TUNED_FAMILIES = ("threshold", "threshold_plus", "best_rule", "oracle")
#: the best rule's knobs in the order :func:`coordinate_search` visits them
BEST_RULE_AXES = (
    "dup_show_above",
    "tries",
    "z",
    "rest_cycles",
    "max_unanswered",
    "show_above",
    "retire_below",
)
#: every baseline name :func:`baseline` builds
BASELINES = (
    "threshold",
    "threshold_plus",
    "best_rule",
    "oracle",
    "greedy",
    "random",
    "always_show",
    "show_nothing",
    "retire_everything",
)
GRID_METRICS = ("return", "clicks", "purchases", "churned", "share_show", "share_reduce", "share_retire")
TUNED_FORMAT = "decaygym-tuned-baselines"
TUNED_VERSION = 1


def tuning_seeds(root: int, num_users: int) -> list[int]:
    """The users the baselines are tuned on: the first training users of ``root`` (``agents.seeds``)."""
    return seed_scheme.train_users(root, num_users).seeds()


def evaluation_seeds(root: int, num_users: int) -> list[int]:
    """The held-out users every policy is compared on (``agents.seeds``), disjoint from the training users."""
    return seed_scheme.eval_users(root, num_users).seeds()


def parse_floats(text: str, name: str) -> list[float]:
    """A comma list of numbers; ConfigError naming the option otherwise."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{name}: expected a comma list of numbers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{name}: expected at least one number, got {text!r}")
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{name}: expected finite numbers, got {text!r}")
    return sorted(set(values))


def parse_max_unanswered(text: str) -> tuple[int | None, ...]:
    """A comma list of integers >= 1 or 'none'; ConfigError naming the option otherwise."""
    out: list[int | None] = []
    for v in (v.strip() for v in text.split(",") if v.strip()):
        if v.lower() == "none":
            out.append(None)
        elif v.isdigit() and int(v) >= 1:
            out.append(int(v))
        else:
            raise ConfigError(f"--max-unanswered: expected integers >= 1 or 'none', got {v!r}")
    if not out:
        raise ConfigError("--max-unanswered: expected at least one value")
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class TuningGrid:
    """The grid every tuned baseline is searched over (the same thresholds for all)."""

    show_above: tuple[float, ...] = DEFAULT_SHOW
    """Candidate show_above values."""
    retire_below: tuple[float, ...] = DEFAULT_RETIRE
    """Candidate retire_below values; pairs with retire_below > show_above are skipped."""
    max_unanswered: tuple[int | None, ...] = DEFAULT_MAX_UNANSWERED
    """threshold+ only: retire after this many exposures without a click (None = never)."""
    retire_purchased: tuple[bool, ...] = DEFAULT_RETIRE_PURCHASED
    """threshold+ only: whether bought items are retired (both by default, so threshold+ contains the
    plain rule and cannot do worse on the training users)."""
    dup_show_above: tuple[float | None, ...] = DEFAULT_DUP_SHOW_ABOVE
    """best rule: the bar a second item of one category must clear to be shown (None = no de-duplication)."""
    tries: tuple[int, ...] = DEFAULT_TRIES
    """best rule: exposures a cold candidate is shown for whatever its signal."""
    z: tuple[float, ...] = DEFAULT_Z
    """best rule: weight of the upper-confidence bonus on the estimate."""
    rest_cycles: tuple[float | None, ...] = DEFAULT_REST_CYCLES
    """best rule: repurchase cycles a bought item rests (None = retire it, 0 = the estimate alone)."""

    @classmethod
    def parse(cls, show_above: str, retire_below: str, max_unanswered: str) -> TuningGrid:
        """The grid of the comma lists commands and levels give (``--grid``, ``--max-unanswered``)."""
        show = parse_floats(show_above, "--grid SHOW_ABOVE")
        retire = parse_floats(retire_below, "--grid RETIRE_BELOW")
        if not any(r <= s for s in show for r in retire):
            raise ConfigError("--grid: no pair has retire_below <= show_above")
        return cls(tuple(show), tuple(retire), parse_max_unanswered(max_unanswered))

    def __post_init__(self) -> None:
        for name in ("show_above", "retire_below", "max_unanswered", "retire_purchased", *BEST_RULE_AXES):
            if not getattr(self, name):
                raise ConfigError(f"TuningGrid.{name}: needs at least one value")
        if not self.pairs():
            raise ConfigError("TuningGrid: no pair has retire_below <= show_above")
        for k in self.max_unanswered:
            if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
                raise ConfigError(f"TuningGrid.max_unanswered: {k!r} is not an integer >= 1 or None")
        for name in ("dup_show_above", "tries", "z", "rest_cycles"):
            for value in getattr(self, name):
                try:
                    BestRulePolicy(1.0, 0.0, **{name: value})
                except ConfigError:
                    raise ConfigError(f"TuningGrid.{name}: {value!r} is not a valid value") from None

    def pairs(self) -> list[tuple[float, float]]:
        """Every (show_above, retire_below) with retire_below <= show_above, in grid order."""
        show, retire = sorted(set(self.show_above)), sorted(set(self.retire_below))
        return [(s, r) for s in show for r in retire if r <= s]

    def points(self, family: str) -> list[dict[str, Any]]:
        """The parameter sets of one family, in grid order (ties go to the first)."""
        if family == "threshold_plus":
            return [
                {"show_above": s, "retire_below": r, "max_unanswered": k, "retire_purchased": b}
                for s, r in self.pairs()
                for k in self.max_unanswered
                for b in self.retire_purchased
            ]
        if family in ("threshold", "oracle"):
            return [{"show_above": s, "retire_below": r} for s, r in self.pairs()]
        if family == "best_rule":
            raise ConfigError("best_rule has no fixed grid: it is searched a knob at a time")
        raise ConfigError(f"no grid for {family!r}; tuned families: {', '.join(TUNED_FAMILIES)}")

    def axes(self) -> dict[str, tuple[Any, ...]]:
        """The best rule's knobs and their candidate values, in the order they are searched."""
        return {name: tuple(dict.fromkeys(getattr(self, name))) for name in BEST_RULE_AXES}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "show_above": list(self.show_above),
            "retire_below": list(self.retire_below),
            "max_unanswered": list(self.max_unanswered),
            "retire_purchased": list(self.retire_purchased),
            **{name: list(getattr(self, name)) for name in ("dup_show_above", "tries", "z", "rest_cycles")},
        }


def best_rule_start(threshold_plus: dict[str, Any]) -> dict[str, Any]:
    """The best rule's starting point: threshold+'s tuned parameters, every extra mechanism off."""
    return {
        "show_above": threshold_plus["show_above"],
        "retire_below": threshold_plus["retire_below"],
        "max_unanswered": threshold_plus.get("max_unanswered"),
        "dup_show_above": None,
        "tries": 0,
        "z": 0.0,
        "rest_cycles": None if threshold_plus.get("retire_purchased", True) else 0.0,
    }


def tuned_policy(family: str, params: dict[str, Any], config: SimConfig | None = None) -> Policy:
    """The policy of a tuned family with the given parameters.

    ``config`` gives the best rule the simulator's public constants (α, repurchase cycle); without
    it the defaults of ``SimConfig`` are used (enough to validate parameters, not to act).
    """
    try:
        if family == "threshold":
            return ThresholdPolicy(params["show_above"], params["retire_below"])
        if family == "threshold_plus":
            return ThresholdPlusPolicy(
                params["show_above"],
                params["retire_below"],
                params.get("max_unanswered"),
                params.get("retire_purchased", True),
            )
        if family == "best_rule":
            return BestRulePolicy.from_config(
                config or SimConfig(),
                show_above=params["show_above"],
                retire_below=params["retire_below"],
                **{k: params[k] for k in BEST_RULE_AXES[:5] if k in params},
            )
        if family == "oracle":
            return OraclePolicy(params["show_above"], params["retire_below"])
    except KeyError as exc:
        raise ConfigError(f"tuned parameters of {family!r} lack {exc}") from None
    raise ConfigError(f"unknown tuned family {family!r}; known: {', '.join(TUNED_FAMILIES)}")


@dataclass
class TuningResult:
    """What :func:`tune` found: the best parameters per family and the whole grid table."""

    preset: str
    seeds: list[int]
    grid: TuningGrid
    tuned: dict[str, dict[str, Any]]
    """family -> the chosen parameters."""
    train_return: dict[str, float]
    """family -> mean return of the chosen parameters on the training users."""
    table: pd.DataFrame = field(repr=False)
    """One row per (family, grid point): the parameters and the mean of ``GRID_METRICS`` (the best
    rule's rows also name the ``axis`` searched)."""
    config: SimConfig | None = field(default=None, repr=False)
    """The simulator config tuned on (the best rule reads its public constants)."""

    def policies(self) -> dict[str, Policy]:
        """The tuned policy of each family."""
        config = self.config or get_preset(self.preset)
        return {family: tuned_policy(family, params, config) for family, params in self.tuned.items()}

    def family_table(self, family: str) -> pd.DataFrame:
        """The grid rows of one family, without the columns of the others."""
        rows = self.table[self.table["family"] == family].drop(columns="family")
        return rows.dropna(axis=1, how="all").reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON :func:`save_tuned` writes and :func:`load_tuned` reads."""
        return {
            "format": TUNED_FORMAT,
            "version": TUNED_VERSION,
            "preset": self.preset,
            "train_seeds": [self.seeds[0], self.seeds[-1] + 1]
            if self.seeds == list(range(self.seeds[0], self.seeds[-1] + 1))
            else list(self.seeds),
            "train_users": len(self.seeds),
            "grid": self.grid.to_dict(),
            "selection": "highest mean return on the training users; ties: first point in grid order",
            "tuned": self.tuned,
            "train_return": self.train_return,
        }


def tune(
    preset: str,
    seeds: Sequence[int],
    *,
    families: Sequence[str] = TUNED_FAMILIES,
    grid: TuningGrid | None = None,
    batch: int = 2048,
    on_point: Callable[[str, dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> TuningResult:
    """Grid-search each family on the training users ``seeds`` and keep its best point.

    The best rule is searched from threshold+'s tuned point (:func:`coordinate_search`), so asking
    for it tunes threshold+ too.

    Args:
        preset: simulator preset.
        seeds: training user seeds (keep them disjoint from the evaluation seeds).
        families: which of ``TUNED_FAMILIES`` to tune.
        grid: the grid (default :class:`TuningGrid`); the same thresholds for every family.
        batch: users stepped together.
        on_point: called after each grid point (family, parameters), e.g. to advance a progress bar.
        **overrides: ``SimConfig`` field overrides, as for ``evaluate``.

    Returns:
        The tuned parameters, their training returns and the grid table.
    """
    grid = grid or TuningGrid()
    seeds = [int(s) for s in seeds]
    unknown = [f for f in families if f not in TUNED_FAMILIES]
    if unknown or not families:
        raise ConfigError(f"cannot tune {unknown or 'nothing'}; tuned families: {', '.join(TUNED_FAMILIES)}")
    config = make_config(preset=preset, **overrides)
    rows: list[dict[str, Any]] = []
    tuned: dict[str, dict[str, Any]] = {}
    train_return: dict[str, float] = {}
    for family in tuning_order(families):
        notify = None if on_point is None else lambda params, f=family: on_point(f, params)
        if family == "best_rule":
            best, train_return[family], family_rows = coordinate_search(
                lambda params: tuned_policy("best_rule", params, config),
                best_rule_start(tuned["threshold_plus"]),
                grid.axes(),
                preset,
                seeds,
                batch=batch,
                on_point=notify,
                **overrides,
            )
        else:
            best, train_return[family], family_rows = grid_search(
                lambda params, f=family: tuned_policy(f, params, config),
                grid.points(family),
                preset,
                seeds,
                batch=batch,
                on_point=notify,
                **overrides,
            )
        tuned[family] = best
        rows += [{"family": family, **row} for row in family_rows]
    return TuningResult(preset, seeds, grid, tuned, train_return, pd.DataFrame(rows), config)


def tuning_order(families: Sequence[str]) -> list[str]:
    """The families :func:`tune` runs for ``families``, in ``TUNED_FAMILIES`` order.

    The best rule starts from threshold+'s tuned point, so it brings threshold+ along.
    """
    wanted = set(families) | ({"threshold_plus"} if "best_rule" in families else set())
    return [f for f in TUNED_FAMILIES if f in wanted]


def coordinate_search(
    make: Callable[[dict[str, Any]], Policy],
    start: dict[str, Any],
    axes: dict[str, Sequence[Any]],
    preset: str,
    seeds: Sequence[int],
    *,
    batch: int = 2048,
    on_point: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> tuple[dict[str, Any], float, list[dict[str, Any]]]:
    """Search one knob at a time from ``start``: each axis in order, the others held at the best so far.

    A value replaces the current one only if its mean return on ``seeds`` is strictly higher
    (so the result is never worse than ``start``, and a mechanism stays off unless it helps);
    points already scored are not run again. Parameter sets that ``make`` refuses (e.g.
    retire_below > show_above) are skipped.

    Returns:
        The best parameters, their mean return, and one row per point visited: ``axis`` (the knob
        varied, ``"start"`` for the start), the parameters and the means of ``GRID_METRICS``.
    """
    scored: dict[tuple[tuple[str, Any], ...], dict[str, float]] = {}
    rows: list[dict[str, Any]] = []

    def score(params: dict[str, Any], axis: str) -> float | None:
        key = tuple(sorted(params.items(), key=lambda kv: kv[0]))
        if key not in scored:
            try:
                policy = make(params)
            except ConfigError:
                if on_point is not None:
                    on_point(params)
                return None
            rec = evaluate(policy, preset=preset, seeds=seeds, num_users=batch, **overrides)
            scored[key] = rec[list(GRID_METRICS)].mean().to_dict()
        rows.append({"axis": axis, **params, **scored[key]})
        if on_point is not None:
            on_point(params)
        return scored[key]["return"]

    best = dict(start)
    best_return = score(best, "start")
    if best_return is None:
        raise ConfigError(f"coordinate_search: the start {start!r} is not a valid parameter set")
    for axis, values in axes.items():
        current = dict(best)
        for value in values:
            ret = score({**current, axis: value}, axis)
            if ret is not None and ret > best_return:
                best, best_return = {**current, axis: value}, ret
    return best, float(best_return), rows


def grid_search(
    make: Callable[[dict[str, Any]], Policy],
    points: Sequence[dict[str, Any]],
    preset: str,
    seeds: Sequence[int],
    *,
    batch: int = 2048,
    on_point: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> tuple[dict[str, Any], float, list[dict[str, Any]]]:
    """Score ``make(params)`` at every point on the users ``seeds`` and keep the highest mean return.

    The one search behind every tuned policy, the baselines' families and rules of one's own
    (``agents.custom``) alike; ties go to the first point in ``points``.

    Args:
        make: builds the policy of one parameter set.
        points: the parameter sets, in grid order.
        preset: simulator preset.
        seeds: training user seeds.
        batch: users stepped together.
        on_point: called after each point with its parameters (e.g. to advance a progress bar).
        **overrides: ``SimConfig`` field overrides, as for ``evaluate``.

    Returns:
        The best parameters, their mean return, and one row per point (its parameters and the
        means of ``GRID_METRICS``).
    """
    if not points:
        raise ConfigError("grid_search: no grid point to search")
    rows: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any]] | None = None
    for params in points:
        rec = evaluate(make(params), preset=preset, seeds=seeds, num_users=batch, **overrides)
        means = rec[list(GRID_METRICS)].mean().to_dict()
        rows.append({**params, **means})
        if best is None or means["return"] > best[0]:
            best = (means["return"], params)
        if on_point is not None:
            on_point(params)
    assert best is not None
    return dict(best[1]), float(best[0]), rows


def grid_size(grid: TuningGrid, families: Sequence[str] = TUNED_FAMILIES) -> int:
    """How many points :func:`tune` visits (for a progress bar; the best rule's revisits count)."""
    return sum(
        1 + sum(len(v) for v in grid.axes().values()) if f == "best_rule" else len(grid.points(f))
        for f in tuning_order(families)
    )


def save_tuned(path: Path, result: TuningResult, simulator: dict[str, Any] | None = None) -> None:
    """Write the tuned parameters as JSON, atomically, with the simulator they were tuned on.

    ``simulator`` is the run's record of its simulator (preset or built folder and its
    fingerprint), so that parameters tuned on one simulator are not reused on another.
    """
    data = result.to_dict()
    if simulator is not None:
        data["simulator"] = simulator
    atomic_write_json(Path(path), data)


def load_tuned(path: Path | str, preset: str | None = None) -> dict[str, Any]:
    """Read a tuned-parameters JSON written by :func:`save_tuned`.

    Raises:
        ConfigError: the file is missing, not such a JSON, or tuned on another preset than ``preset``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"tuned parameters {path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"tuned parameters {path}: not readable JSON ({exc})") from None
    if (
        not isinstance(data, dict)
        or data.get("format") != TUNED_FORMAT
        or not isinstance(data.get("tuned"), dict)
    ):
        raise ConfigError(
            f"tuned parameters {path}: not a {TUNED_FORMAT} file (write one with --out of evaluate)"
        )
    if data.get("version") != TUNED_VERSION:
        raise ConfigError(
            f"tuned parameters {path}: version {data.get('version')!r}, expected {TUNED_VERSION}"
        )
    if preset is not None and data.get("preset") != preset:
        raise ConfigError(
            f"tuned parameters {path} were tuned on preset {data.get('preset')!r}, not {preset!r}: "
            "tune on the preset you evaluate"
        )
    for family, params in data["tuned"].items():
        tuned_policy(family, params)  # validates (the best rule with SimConfig's defaults)
    custom = data.get("custom", {})
    if not isinstance(custom, dict) or not all(
        isinstance(entry, dict) and isinstance(entry.get("tuned"), dict) for entry in custom.values()
    ):
        raise ConfigError(
            f"tuned parameters {path}: 'custom' must map each policy spec to an object with 'tuned' params"
        )
    return data


def baseline(
    name: str, config: SimConfig, tuned: dict[str, dict[str, Any]] | None = None, seed: int = 0
) -> Policy:
    """The baseline called ``name`` (one of ``BASELINES``) for an env with ``config``.

    Args:
        name: baseline name.
        config: the simulator config it acts in (the greedy policy needs it).
        tuned: family -> tuned parameters, for the tuned families (threshold, threshold_plus,
            best_rule, oracle).
        seed: seed of the random policy.

    Raises:
        ConfigError: an unknown name, or a tuned family missing from ``tuned`` (e.g. best_rule in a
            tuned.json written before it existed: tune again).
    """
    if name in TUNED_FAMILIES:
        if not tuned or name not in tuned:
            raise ConfigError(
                f"baseline {name!r} needs tuned parameters; have {sorted(tuned or {})} "
                "(a tuned.json from before this family existed: tune again without --tuned)"
            )
        return tuned_policy(name, tuned[name], config)
    simple: dict[str, Callable[[], Policy]] = {
        "greedy": lambda: GreedyPolicy(config),
        "random": lambda: RandomPolicy(seed),
        "always_show": AlwaysShow,
        "show_nothing": ShowNothing,
        "retire_everything": RetireEverything,
    }
    if name not in simple:
        raise ConfigError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return simple[name]()
