"""Where independent units of work run: one after another in this process, or as Ray tasks.

The benchmark's stages and the parallel hyperparameter search describe their work as
:class:`Unit` values (a function the workers can import, its arguments, the CPUs and GPUs it
needs) and hand them to an :class:`Engine`:

- :class:`LocalEngine` (the default) calls them in order in this process;
- :class:`RayEngine` submits each as a Ray task that declares its ``num_cpus`` and ``num_gpus``
  and waits for them, on a Ray instance it starts in this process (``ray.init(num_cpus=...)``) or
  on a cluster it joins (``address``). Ray is imported here only when a :class:`RayEngine` is
  made, so the local engine runs without it installed.

A unit that raises does not stop the others: its :class:`Outcome` carries the error, the engine
keeps it in ``failures`` (what the benchmark's report lists) and the caller decides what the
stage needs (:meth:`Engine.run_one` raises it again, for stages of one unit).

A unit's numbers do not depend on the engine. They depend on its seeds and on torch's thread
count: a Ray task runs torch on as many threads as the CPUs it declares (so a worker never
spreads over a node's cores), and training runs pin their own (``TrainSettings.torch_threads``).
The simulator's Numba kernels give every user the same numbers on any thread count.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.progress import Progress

from decay_model.errors import ConfigError
from decay_model.threads import torch_threads

ENGINES = ("local", "ray")
RAY_MISSING = "--engine ray needs Ray, an optional extra: pip install -e '.[ray]'"
#: seconds between two refreshes of a Ray stage's line (done / running / queued / failed)
POLL_S = 0.5

ProgressFactory = Callable[[], Progress]
"""Makes the display a stage draws its line on (``scripts.common.progress``)."""


@dataclass(frozen=True)
class Unit:
    """One independent piece of work: ``fn(*args)``, with the resources it needs.

    ``fn`` must be importable by name (a module-level function) for a Ray worker to run it, and
    ``args`` picklable.
    """

    name: str
    """Names the unit in progress lines and failures (``ppo_seed1``); unique within a stage."""
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    num_cpus: float = 1
    """CPUs the unit keeps busy (a Ray task's ``num_cpus``; its torch threads)."""
    num_gpus: float = 0
    """GPUs it needs (a Ray task's ``num_gpus``; Ray hides the GPUs from a task that asks for none)."""
    labels: dict[str, Any] = field(default_factory=dict)
    """What a failure record names besides the unit (``{"agent": "ppo", "seed": 1}``)."""


@dataclass(frozen=True)
class Outcome:
    """How a unit ended: its return value, or its error."""

    unit: Unit
    value: Any = None
    error: str | None = None
    """``ExceptionType: message`` when the unit failed."""
    exception: BaseException | None = None
    """The exception itself, where it could be brought back."""
    lost: bool = False
    """The unit's worker or node died under it (out of memory, a lost node), not its own code."""

    @property
    def ok(self) -> bool:
        """Whether the unit finished without an error."""
        return self.error is None

    def record(self, stage: str) -> dict[str, Any]:
        """The failure as the report lists it: stage, unit, its labels, the error."""
        return {"stage": stage, "unit": self.unit.name, **self.unit.labels, "error": self.error}


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class Engine:
    """Runs units and remembers the failed ones; subclasses say where a unit runs."""

    def __init__(self, progress: ProgressFactory | None = None) -> None:
        self.progress = progress
        self.failures: list[dict[str, Any]] = []
        """Every failed unit so far (:meth:`Outcome.record`), across stages."""

    def stream(
        self,
        stage: str,
        next_unit: Callable[[int], Unit | None],
        total: int | None = None,
        parallel: int | None = None,
    ) -> Iterator[Outcome]:
        """Outcomes as units finish; ``next_unit(running)`` gives the next unit, None for none now.

        It is asked whenever fewer than ``parallel`` units are under way (None: no limit), so a
        caller can choose the next unit from the results so far (the search's sampler does); the
        stream ends when nothing is under way and it has no more.
        """
        raise NotImplementedError

    def run(self, stage: str, units: Sequence[Unit]) -> list[Outcome]:
        """Every unit's outcome, in the order of ``units``."""
        pending = iter(units)
        by_id = {id(o.unit): o for o in self.stream(stage, lambda _: next(pending, None), len(units))}
        return [by_id[id(unit)] for unit in units]

    def run_one(self, stage: str, unit: Unit) -> Any:
        """The unit's return value; its error is raised again (a stage of one unit cannot go on)."""
        (outcome,) = self.run(stage, [unit])
        if not outcome.ok:
            raise outcome.exception if outcome.exception is not None else RuntimeError(outcome.error)
        return outcome.value

    def close(self) -> None:
        """Free what the engine holds."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _failed(self, stage: str, outcome: Outcome, detail: str = "") -> None:
        self.failures.append(outcome.record(stage))
        self._say(f"[red]{stage}: {outcome.unit.name} failed[/red]: {outcome.error}")
        if detail:
            self._say(detail.rstrip(), markup=False)

    def _say(self, text: str, markup: bool = True) -> None:
        if self.progress is not None:
            self.progress().console.print(text, markup=markup, highlight=False)

    @staticmethod
    def _line(stage: str, done: int, failed: int, running: int | None = None, queued: int = 0) -> str:
        """``stage: 3 done, 2 running, 1 queued, 0 failed`` (no running count once the stage is over)."""
        parts = [f"{done} done", f"{running} running", f"{queued} queued", f"{failed} failed"]
        return f"{stage}: " + ", ".join(p for p in parts if not p.startswith(("None", "0 queued")))


class LocalEngine(Engine):
    """Units one after another in this process (a unit's own progress display stays its own)."""

    def stream(
        self,
        stage: str,
        next_unit: Callable[[int], Unit | None],
        total: int | None = None,
        parallel: int | None = None,
    ) -> Iterator[Outcome]:
        """See :meth:`Engine.stream`; one unit at a time whatever ``parallel`` is."""
        done = failed = 0
        while (unit := next_unit(0)) is not None:
            try:
                outcome = Outcome(unit, value=unit.fn(*unit.args))
            except Exception as exc:  # a failed unit is reported, the others still run
                outcome = Outcome(unit, error=_message(exc), exception=exc)
                failed += 1
                self._failed(stage, outcome, traceback.format_exc())
            else:
                done += 1
            yield outcome
        if done + failed > 1 or failed:
            self._say(self._line(stage, done, failed))


def _run_unit(
    fn: Callable[..., Any], args: tuple[Any, ...], threads: int, cwd: str, tracker: Any, key: str
) -> Any:
    """A Ray task's body: say it started, run torch on the unit's CPUs, call the unit.

    It runs in the caller's folder ``cwd``, so that relative paths mean what they mean to the
    caller; a node without that folder (no shared file system) is an error, not a run elsewhere.
    """
    if tracker is not None:
        tracker.mark.remote(key)
    if not os.path.isdir(cwd):
        raise ConfigError(
            f"{cwd}: no such folder on node {platform.node()}; the run folders must be on a file "
            "system every node shares"
        )
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with torch_threads(threads):
            return fn(*args)
    finally:
        os.chdir(here)


class _Started:
    """The Ray tasks that have started (a stage's line tells running ones from queued ones)."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def mark(self, key: str) -> None:
        self.keys.add(key)

    def snapshot(self) -> set[str]:
        return self.keys


class RayEngine(Engine):
    """Units as Ray tasks, each declaring its CPUs and GPUs; a live line per stage.

    Without ``address`` it starts a Ray instance in this process with ``num_cpus`` CPUs (None:
    all of them) and shuts it down on :meth:`close`; with one it joins that cluster (``auto``: the
    one started on this machine by ``ray start``). An instance already running in this process is
    used as it is. Every node must have decaygym installed, and the run folders must be on a file
    system every node sees (the units write into them); a task runs in the caller's folder where
    its node has that folder, so relative paths resolve there as they do for the caller.
    """

    def __init__(
        self, address: str | None = None, num_cpus: int | None = None, progress: ProgressFactory | None = None
    ) -> None:
        super().__init__(progress)
        try:
            import ray
        except ImportError:
            raise ConfigError(RAY_MISSING) from None
        self.ray = ray
        self.owned = not ray.is_initialized()
        if self.owned:
            if address:
                ray.init(address=address, logging_level="WARNING")
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING")
        self.remote = ray.remote(_run_unit)
        self.tracker = ray.remote(num_cpus=0)(_Started).remote()
        self.keys = itertools.count()

    def stream(
        self,
        stage: str,
        next_unit: Callable[[int], Unit | None],
        total: int | None = None,
        parallel: int | None = None,
    ) -> Iterator[Outcome]:
        """See :meth:`Engine.stream`; units under way are Ray tasks (Ray queues what cannot run yet)."""
        ray = self.ray
        pending: dict[Any, tuple[Unit, str]] = {}
        done = failed = 0
        bar = self.progress() if self.progress is not None else Progress(disable=True)
        task = bar.add_task(self._line(stage, 0, 0, 0), total=total)
        try:
            with bar:
                while True:
                    while parallel is None or len(pending) < parallel:
                        unit = next_unit(len(pending))
                        if unit is None:
                            break
                        self._check_fits(unit)
                        key = f"{stage}/{unit.name}/{next(self.keys)}"
                        options = {"num_cpus": unit.num_cpus, "num_gpus": unit.num_gpus, "name": key}
                        ref = self.remote.options(**options).remote(
                            unit.fn, unit.args, max(1, int(unit.num_cpus)), os.getcwd(), self.tracker, key
                        )
                        pending[ref] = (unit, key)
                    if not pending:
                        break
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                    for ref in ready:
                        unit, _ = pending.pop(ref)
                        outcome, detail = self._collect(ref, unit)
                        if outcome.ok:
                            done += 1
                        else:
                            failed += 1
                            self._failed(stage, outcome, detail)
                        yield outcome
                    started = ray.get(self.tracker.snapshot.remote())
                    running = sum(key in started for _, key in pending.values())
                    bar.update(
                        task,
                        description=self._line(stage, done, failed, running, len(pending) - running),
                        completed=done + failed,
                    )
        finally:
            for ref in pending:  # interrupted: stop what still runs, its unit resumes next time
                ray.cancel(ref, force=True)
        self._say(self._line(stage, done, failed))

    def _check_fits(self, unit: Unit) -> None:
        """ConfigError if no node of the cluster has the CPUs or GPUs ``unit`` asks for.

        Ray would keep such a task queued for ever, waiting for a node that never comes.
        """
        nodes = [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]
        for resource, need in (("CPU", unit.num_cpus), ("GPU", unit.num_gpus)):
            if need > max((n.get(resource, 0) for n in nodes), default=0):
                raise ConfigError(
                    f"{unit.name} asks Ray for {need:g} {resource}(s): no node of the cluster has them"
                )

    def _collect(self, ref: Any, unit: Unit) -> tuple[Outcome, str]:
        """The outcome of a finished task, and the remote traceback of a failed one."""
        exceptions = self.ray.exceptions
        try:
            return Outcome(unit, value=self.ray.get(ref)), ""
        except exceptions.RayTaskError as err:
            cause = err.cause if isinstance(err.cause, BaseException) else err
            return Outcome(unit, error=_message(cause), exception=cause), str(err)
        except exceptions.RayError as err:  # the worker or its node died (out of memory, lost)
            return Outcome(unit, error=_message(err), exception=err, lost=True), ""

    def close(self) -> None:
        """Shut down the Ray instance this engine started (a joined cluster keeps running)."""
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()


def add_engine_options(parser: argparse.ArgumentParser, search: bool = False) -> None:
    """``--engine``, ``--address`` and ``--cpus``; with ``search``, ``--parallel`` and ``--storage``."""
    parser.add_argument(
        "--engine", default="local", choices=ENGINES,
        help="where the independent runs go: local (one after another, default) or ray (Ray tasks "
        "in parallel; pip install -e '.[ray]')",
    )  # fmt: skip
    parser.add_argument(
        "--address", help="with --engine ray: the Ray cluster to join (default: start Ray in this process)"
    )
    parser.add_argument(
        "--cpus", type=int, help="with --engine ray and no --address: CPUs Ray may use (default: all)"
    )
    if search:
        parser.add_argument(
            "--parallel", type=int, default=1, help="trials under way at once (--engine ray; default: 1)"
        )
        parser.add_argument(
            "--storage", help="Optuna RDB URL of the study shared by the trials (default: OUT/study.db)"
        )


def engine_from_args(args: argparse.Namespace, progress: ProgressFactory | None = None) -> Engine:
    """The engine ``add_engine_options``' arguments ask for; ConfigError names a bad combination."""
    if args.engine not in ENGINES:
        raise ConfigError(f"unknown --engine {args.engine!r}; known: {', '.join(ENGINES)}")
    if args.cpus is not None and args.cpus < 1:
        raise ConfigError(f"--cpus must be >= 1, got {args.cpus}")
    if getattr(args, "parallel", 1) < 1:
        raise ConfigError(f"--parallel must be >= 1, got {args.parallel}")
    if args.engine == "local":
        if args.address or args.cpus is not None or getattr(args, "parallel", 1) > 1:
            raise ConfigError("--address, --cpus and --parallel N > 1 need --engine ray")
        return LocalEngine(progress)
    return RayEngine(args.address, args.cpus, progress)
