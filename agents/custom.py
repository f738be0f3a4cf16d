"""Policies of one's own, by name: ``package.module:Name``, optionally with JSON keyword arguments.

A spec is ``module.path:Name`` or ``module.path:Name{"cutoff": 0.4}`` (no space before the
JSON object). ``Name`` is a class or a factory function of an importable module (on
``sys.path``: an installed package, or a folder on ``PYTHONPATH``). It is called with the JSON's
keyword arguments; besides, ``config=`` (the ``SimConfig`` of the simulator it will act in) and
``seed=`` (the run's root seed, for a rule that draws) are passed when its signature names such
a parameter and the JSON does not set it. What it returns must have SB3's
``predict(observation, state=None, episode_start=None, deterministic=True)``
(``agents.policy.Policy``; subclassing ``agents.policy.RulePolicy`` and writing ``decide`` is the
short way) and may not ask for the simulator's hidden state (that is the oracle's alone).

Tuning: a ``Name`` with a ``tuning_grid`` attribute (parameter name -> candidate values; a class
attribute, or an attribute set on the function) is tuned like the threshold rules: every point of
the grid (all combinations, in the order declared) is scored on the training users, and the
highest mean return wins (ties: the first point). A parameter fixed in the spec's JSON is left
out of the grid. The search is ``agents.tuning.grid_search``; the choice is recorded in the
``custom`` section of tuned.json under the spec's canonical form (:attr:`CustomSpec.canonical`).

Every problem (unparsable JSON, a module that does not import, a missing attribute, arguments
the callable does not take, an object without ``predict``) is a one-line ``ConfigError`` that
names the spec.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.policy import Policy, uses_hidden_info
from agents.tuning import GRID_METRICS, grid_search
from decay_model.errors import ConfigError, DecaygymError
from envs.config import SimConfig

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
SPEC_PATTERN = re.compile(rf"(?P<module>{_DOTTED}):(?P<name>{_DOTTED})(?P<kwargs>\{{.*)?", re.DOTALL)
#: arguments passed by the evaluation when the callable's signature names them
INJECTED = ("config", "seed")
#: grid parameter names that would clash with the columns of the tuning table
RESERVED = ("family", *GRID_METRICS, *INJECTED)
PREDICT_SIGNATURE = "predict(observation, state=None, episode_start=None, deterministic=True)"


def is_custom_spec(text: str) -> bool:
    """Whether ``text`` has the form of a custom spec (``module.path:Name``, then maybe ``{...}``)."""
    return SPEC_PATTERN.fullmatch(text) is not None


@dataclass(frozen=True)
class CustomSpec:
    """A parsed spec: where the callable lives and the keyword arguments it is called with."""

    module: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> CustomSpec:
        """Parse ``module.path:Name`` or ``module.path:Name{JSON object}``.

        Raises:
            ConfigError: ``text`` is not of that form, or the JSON is not an object.
        """
        match = SPEC_PATTERN.fullmatch(text)
        if match is None:
            raise ConfigError(f"policy {text!r}: expected module.path:Name or module.path:Name{{JSON}}")
        kwargs: Any = {}
        if match["kwargs"]:
            try:
                kwargs = json.loads(match["kwargs"])
            except json.JSONDecodeError as exc:
                raise ConfigError(f"policy {text!r}: keyword arguments are not valid JSON ({exc})") from None
            if not isinstance(kwargs, dict):
                raise ConfigError(f"policy {text!r}: keyword arguments must be a JSON object")
        return cls(match["module"], match["name"], kwargs)

    @property
    def canonical(self) -> str:
        """The spec with its JSON normalised (sorted keys): one string per policy, to record and match."""
        args = json.dumps(self.kwargs, sort_keys=True) if self.kwargs else ""
        return f"{self.module}:{self.name}{args}"

    @property
    def label(self) -> str:
        """A short name for tables: ``Name``, or ``Name(cutoff=0.4)`` with keyword arguments."""
        short = self.name.rsplit(".", 1)[-1]
        if not self.kwargs:
            return short
        return f"{short}({', '.join(f'{k}={json.dumps(v)}' for k, v in sorted(self.kwargs.items()))})"


@dataclass(frozen=True)
class CustomFactory:
    """A resolved spec: the imported callable and the grid left to tune (empty: nothing to tune)."""

    spec: CustomSpec
    factory: Callable[..., Any] = field(repr=False)
    grid: dict[str, list[Any]]
    """Parameter name -> candidate values, without the parameters the spec fixes."""

    @property
    def tunable(self) -> bool:
        """Whether the policy has parameters to tune on the training users."""
        return bool(self.grid)

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the grid's values, in the order declared (the first varies slowest)."""
        names = list(self.grid)
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*self.grid.values())]

    def build(self, config: SimConfig, seed: int = 0, params: Mapping[str, Any] | None = None) -> Policy:
        """Call the factory with the spec's keyword arguments and ``params``, and check what it returns.

        ``config`` and ``seed`` are passed when the signature names them and nothing else sets them.

        Raises:
            ConfigError: the callable does not take these arguments or fails with a ValueError or
                TypeError, or the result is not a policy (see :func:`check_policy`).
        """
        where = f"policy {self.spec.canonical!r}"
        kwargs = {**self.spec.kwargs, **(params or {})}
        try:
            signature: inspect.Signature | None = inspect.signature(self.factory)
        except (TypeError, ValueError):
            signature = None
        if signature is not None:
            named = {
                p.name
                for p in signature.parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            }
            for name, value in (("config", config), ("seed", seed)):
                if name in named and name not in kwargs:
                    kwargs[name] = value
            try:
                signature.bind(**kwargs)
            except TypeError as exc:
                raise ConfigError(f"{where}: {self.spec.name} does not take these arguments: {exc}") from None
        try:
            policy = self.factory(**kwargs)
        except (DecaygymError, ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {self.spec.name}(...) failed: {exc}") from None
        return check_policy(policy, where)

    def tune(
        self,
        config: SimConfig,
        preset: str,
        seeds: Sequence[int],
        *,
        seed: int = 0,
        batch: int = 2048,
        on_point: Callable[[dict[str, Any]], None] | None = None,
        **overrides: Any,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Search the grid on the training users ``seeds`` (``agents.tuning.grid_search``).

        ``overrides`` go to every env, as for ``agents.evaluation.evaluate`` (e.g. ``sim=``).

        Returns:
            The entry of tuned.json's ``custom`` section (``grid``, ``tuned``, ``train_return``) and
            the grid table's rows (``family`` is the canonical spec).
        """
        best, train_return, rows = grid_search(
            lambda params: self.build(config, seed, params),
            self.points(),
            preset,
            seeds,
            batch=batch,
            on_point=on_point,
            **overrides,
        )
        entry = {"grid": self.grid, "tuned": best, "train_return": train_return}
        return entry, [{"family": self.spec.canonical, **row} for row in rows]


def check_policy(obj: Any, where: str) -> Policy:
    """``obj`` if it has SB3's ``predict`` and reads no hidden state, else a ConfigError naming ``where``."""
    kind = type(obj).__name__
    predict = getattr(obj, "predict", None)
    if not callable(predict):
        raise ConfigError(f"{where}: got a {kind} object without {PREDICT_SIGNATURE} (agents.policy.Policy)")
    try:
        inspect.signature(predict).bind(None, state=None, episode_start=None, deterministic=True)
    except TypeError as exc:
        raise ConfigError(f"{where}: {kind}.predict does not take {PREDICT_SIGNATURE} ({exc})") from None
    except ValueError:
        pass  # no signature to check (a builtin): trust it
    if uses_hidden_info(obj):
        raise ConfigError(
            f"{where}: {kind} asks for the simulator's hidden state (needs_hidden_info); only the "
            "built-in oracle may read it"
        )
    return obj


def _grid(spec: CustomSpec, factory: Any, where: str) -> dict[str, list[Any]]:
    """The factory's ``tuning_grid`` as lists, checked, without the parameters the spec fixes."""
    grid = getattr(factory, "tuning_grid", None)
    if grid is None:
        return {}
    if not isinstance(grid, Mapping):
        raise ConfigError(f"{where}: tuning_grid must be a dict of parameter name -> candidate values")
    out: dict[str, list[Any]] = {}
    for name, values in grid.items():
        if not isinstance(name, str) or name in RESERVED:
            raise ConfigError(f"{where}: tuning_grid parameter {name!r} is not allowed (reserved {RESERVED})")
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"{where}: tuning_grid[{name!r}] must be a non-empty list of values")
        try:
            json.dumps(list(values))
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: tuning_grid[{name!r}] holds values that JSON cannot record: {values!r}"
            ) from None
        if name not in spec.kwargs:
            out[name] = list(values)
    return out


def resolve(text: str) -> CustomFactory:
    """Parse and import a spec: the callable and its grid (nothing is called yet).

    Raises:
        ConfigError: the spec does not parse, its module does not import, the attribute is missing or
            not callable, or its ``tuning_grid`` is malformed.
    """
    spec = CustomSpec.parse(text)
    where = f"policy {text!r}"
    try:
        obj: Any = importlib.import_module(spec.module)
    except ImportError as exc:
        raise ConfigError(
            f"{where}: cannot import module {spec.module!r} ({exc}); is its folder on PYTHONPATH?"
        ) from None
    for part in spec.name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{where}: module {spec.module!r} has no attribute {spec.name!r}") from None
    if not callable(obj):
        raise ConfigError(
            f"{where}: {spec.name} is a {type(obj).__name__}, not a class or a function that builds a policy"
        )
    return CustomFactory(spec, obj, _grid(spec, obj, where))
