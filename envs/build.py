"""Build a simulator from one behaviour log: the logic behind ``decaygym-build-sim``.

On the log's periods before the test period it fits, in this order (each a *stage*):

1. ``decay``: ``ExponentialDecay`` (``envs.fidelity.fit_decay``'s fit: training period, shrinkage
   tuned on validation), saved as an artifact with the population users are drawn from
   (``decay_model.artifact.fit_and_save``, as ``decaygym-fit-decay`` saves it);
2. ``neural`` (optional): ``NeuralDecay`` the same way; the simulator then draws from its population;
   or ``supplied``: a decay artifact already fitted on the log, checked and copied in;
3. ``activity``: return times, browsing depth, purchase rates and the engagement budget
   (``decay_model.activity.fit_activity`` on training + validation, as the shipped defaults were);
4. ``calibration``: the engagement constants, cross-validated over users (``envs.calibration``);
5. ``fidelity``: the fidelity report of the calibrated config on the test period (``envs.fidelity``).

Every stage writes its files atomically and records a key of its inputs (the log's sha256, the
options it reads, the keys of the stages it reads) in ``stages.json``; a rerun reuses a stage
whose key and files are there, so an interrupted build resumes where it stopped. The card is
written last (``envs.simulator_folder`` describes the folder).

A log that cannot calibrate a part stops the build before any fit, at the first such part, with
one line naming the part and why (:func:`check_log`): nothing falls back to the Taobao defaults.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from decay_model.activity import BUY, ActivitySummary, fit_activity
from decay_model.atomic import atomic_write_json
from decay_model.errors import ConfigError, DataValidationError
from decay_model.exponential import DecayFitConfig, ExponentialDecay
from decay_model.logs import BehaviourLog, load_log
from decay_model.task import DAY, EvalTask, TaskConfig, TimeSplit, make_split
from envs.calibration import DEFAULT_GRID, KNOBS, calibrate
from envs.config import MAX_EXPLORE, SimConfig
from envs.fidelity import FIDELITY_SPLIT, FidelityReport, fidelity_report
from envs.simulator_folder import (
    ACTIVITY,
    CALIBRATION,
    CARD,
    DECAY,
    FIDELITY,
    FORMAT_VERSION,
    KIND,
    NEURAL,
    SIM_CONFIG,
    STAGES,
    SUPPLIED,
    load_sim,
    sha256_file,
)

STAGE_NAMES: tuple[str, ...] = ("decay", "neural", "supplied", "activity", "calibration", "fidelity")
"""The build's stages, in order (``neural`` only with ``BuildOptions.neural``, ``supplied`` only with
``BuildOptions.artifact``)."""


@dataclass(frozen=True)
class BuildOptions:
    """What a build reads besides the log; every field enters the keys of the stages that use it."""

    source: str | None = None
    """Vocabulary of the log (``decay_model.logs.SOURCES``); None: detected."""
    decay_fit: DecayFitConfig = field(default_factory=DecayFitConfig)
    """Settings of the ``ExponentialDecay`` fit (the default is ``decaygym-fidelity``'s)."""
    neural: bool = False
    """Also fit ``NeuralDecay`` and draw the simulator's users from its population."""
    artifact: str | None = None
    """A decay artifact already fitted on this log (``decaygym-fit-decay --out``, e.g. a neural fit
    made on a GPU machine) that users are drawn from; it is copied into the folder's ``supplied/``
    and no neural model is fitted. Its card must name this log's content fingerprint."""
    neural_preset: str = "tiny"
    """``decay_model.neural.PRESETS`` entry of the neural fit."""
    epochs: int | None = None
    """Maximum epochs of the neural fit (None: the preset's)."""
    device: str | None = None
    """Torch device of the neural fit (None: CUDA when present); not part of any key."""
    task: TaskConfig = FIDELITY_SPLIT
    """The split: the fits read the days before the test period, the report reads the test period."""
    session_gap_h: float = 0.5
    """Inactivity that ends a visit, hours."""
    grid: Mapping[str, Sequence[float]] = field(default_factory=lambda: dict(DEFAULT_GRID))
    """Values of the engagement constants tried by the calibration (keys from ``KNOBS``)."""
    sim_seeds: tuple[int, ...] = (0, 1)
    """Simulation seeds each calibration score is averaged over."""
    folds: int = 2
    """User groups of the calibration's cross-validation."""
    seed: int = 0
    """Seed of the calibration's user split, of the fidelity report and of the neural fit."""
    min_users_per_group: int = 10
    """Fewest users with history before the test period per calibration group: below it a group's
    statistics are mostly sampling noise, and the choice between grid points is a coin toss."""

    def __post_init__(self) -> None:
        if not self.session_gap_h > 0:
            raise ConfigError(f"BuildOptions.session_gap_h must be > 0, got {self.session_gap_h!r}")
        if not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigError(f"BuildOptions.folds must be an integer >= 2, got {self.folds!r}")
        if not self.sim_seeds:
            raise ConfigError("BuildOptions.sim_seeds: at least one simulation seed")
        unknown = sorted(set(self.grid) - set(KNOBS))
        if unknown:
            raise ConfigError(f"BuildOptions.grid: unknown knob(s) {unknown}; choose from {list(KNOBS)}")
        if self.neural and self.artifact is not None:
            raise ConfigError("BuildOptions: neural and artifact exclude each other (fit one, or supply one)")


@dataclass(frozen=True)
class BuildHooks:
    """Callbacks for progress and for what the caller adds to the report (tables, plots)."""

    on_stage: Callable[[str, str], None] | None = None
    """Called with (stage, "running" | "reused" | "done")."""
    on_point: Callable[[], None] | None = None
    """Called after each calibration grid point."""
    on_fidelity: Callable[[FidelityReport, Path], None] | None = None
    """Called with the fidelity report and its folder before the stage is marked done."""


@dataclass(frozen=True)
class BuiltSimulator:
    """A finished build: its folder, its config and its card."""

    folder: Path
    config: SimConfig
    card: dict[str, Any]
    reused: tuple[str, ...]
    """Stages taken from an earlier run of the build."""


def cannot_build(path: str, part: str, why: str) -> DataValidationError:
    """The one-line error of a part the log cannot calibrate."""
    return DataValidationError(f"cannot build a simulator from {path}: {part}: {why}")


def check_log(log: BehaviourLog, options: BuildOptions) -> TimeSplit:
    """Stop at the first part the log cannot calibrate, in the build's order; the split otherwise.

    Parts: the train/test split (days, then users), return times (timestamps with a time of
    day), the purchase rate (purchases in the fitting window).
    """
    name = log.report.path
    try:
        split = make_split(log, options.task)
    except DataValidationError as exc:
        why = str(exc).removeprefix(f"{name}: ")
        raise cannot_build(
            name, "train/test split (too few days)", f"{why} (decaygym-build-sim --train-days ...)"
        ) from exc
    ev = log.events
    ts = ev["timestamp"].to_numpy()
    before = ts < int(split.test_start)
    cohort = np.unique(ev["user_id"].to_numpy()[before])
    need = options.folds * options.min_users_per_group
    if len(cohort) < need:
        raise cannot_build(
            name,
            "train/test split (too few users)",
            f"{len(cohort)} users have events before the test period starts "
            f"({_date(split.test_start)}); the calibration's {options.folds} user groups need at least "
            f"{need} ({options.min_users_per_group} each, BuildOptions.min_users_per_group)",
        )
    in_test = np.isin(ev["user_id"].to_numpy()[~before], cohort)
    if not in_test.any():
        raise cannot_build(
            name,
            "train/test split (too few users)",
            f"no user with history before {_date(split.test_start)} is active in the test period "
            f"(the last {options.task.test_days:g} days), so the fidelity report has nobody to compare",
        )
    times_of_day = np.unique(ts % int(DAY))
    if len(times_of_day) == 1:
        clock = datetime.fromtimestamp(int(times_of_day[0]), UTC).strftime("%H:%M:%S")
        raise cannot_build(
            name,
            "return times (SimConfig.gap_log_mean, gap_log_user_sd, gap_residual_quantiles)",
            f"every value of column 'timestamp' falls at {clock} UTC: date-only times carry no time "
            "of day, so the gaps between visits cannot be measured",
        )
    window = (ts >= int(split.train_start)) & before
    if not (ev["behavior"].to_numpy()[window] == BUY).any():
        raise cannot_build(
            name,
            "purchase rate (SimConfig.purchase_rate, organic_purchase_rate)",
            f"no purchase (behavior 'buy') in the fitting window {_date(split.train_start)} to "
            f"{_date(split.test_start)}, so the view-to-buy conversion cannot be fitted",
        )
    return split


def _date(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%d %H:%M UTC")


def fitted_value(x: float) -> float:
    """``x`` rounded to 3 decimals, or to 3 significant digits when that keeps more.

    A fitted constant's sampling error is far above this precision, so the rounding changes no
    result that could be told apart, and the config reads as the shipped one is written
    (``SimConfig``'s Taobao constants are these roundings of the same fits).
    """
    if x == 0.0 or not math.isfinite(x):
        return float(x)
    return round(float(x), max(3, 2 - math.floor(math.log10(abs(x)))))


def activity_overrides(summary: ActivitySummary, base: SimConfig, path: str = "the log") -> dict[str, Any]:
    """The ``SimConfig`` fields an activity fit sets (``envs.fitted_constants.ACTIVITY_FIELDS``).

    Raises on a part of the log it cannot set.

    Values are rounded by :func:`fitted_value` (the summary in ``activity.json`` keeps them exact).

    The page's P(purchase | click) is ``purchase_rate`` × quality, so ``purchase_rate`` is the
    view-to-buy conversion over the mean quality of a clicked item, (a + 1)/(a + b + 1) for
    quality ~ Beta(a, b) (clicks favour good items): as ``envs.config``'s default was set.
    """
    if not np.isfinite(summary.view_to_buy):
        raise cannot_build(path, "purchase rate (SimConfig.purchase_rate)", "no viewed item in the window")
    clicked_quality = (base.quality_a + 1.0) / (base.quality_a + base.quality_b + 1.0)
    purchase_rate = summary.view_to_buy / clicked_quality
    if purchase_rate > 1.0:
        raise cannot_build(
            path,
            "purchase rate (SimConfig.purchase_rate)",
            f"view-to-buy {summary.view_to_buy:.3f} over a clicked item's mean quality "
            f"{clicked_quality:.3f} exceeds 1",
        )
    if not np.isfinite(summary.repeat_per_visit):
        raise cannot_build(
            path,
            "engagement budget (SimConfig.engagement_budget)",
            "no visit after the 48 h burn-in of the fitting window re-engages a known category",
        )
    if summary.explore_per_visit > MAX_EXPLORE:
        raise cannot_build(
            path,
            "exploration (SimConfig.explore_per_visit)",
            f"{summary.explore_per_visit:.2f} new categories per visit, above the simulator's "
            f"MAX_EXPLORE={MAX_EXPLORE}",
        )
    fitted = {
        "gap_log_mean": summary.gap_log_mean,
        "gap_log_user_sd": summary.gap_log_user_sd,
        "events_log_mean": summary.events_log_mean,
        "events_log_user_sd": summary.events_log_user_sd,
        "explore_per_visit": summary.explore_per_visit,
        "organic_purchase_rate": summary.purchase_rate,
        "purchase_rate": purchase_rate,
        "engagement_budget": min(summary.repeat_per_visit, float(base.max_user_categories)),
        "engagement_budget_user_sd": summary.repeat_user_sd,
    }
    return {
        "session_gap_h": summary.session_gap_h,
        "gap_residual_quantiles": tuple(summary.gap_residual_quantiles),
        **{name: fitted_value(value) for name, value in fitted.items()},
    }


class _Stages:
    """``stages.json``: per stage, the key of its inputs and its files; reuse when both still hold."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / STAGES
        try:
            data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            data = {}  # a marker file we cannot read proves nothing: every stage runs again
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}

    def done(self, stage: str, key: str) -> bool:
        entry = self.data.get(stage)
        if not isinstance(entry, dict) or entry.get("key") != key:
            return False
        return all((self.folder / f).exists() for f in entry.get("files", []))

    def mark(self, stage: str, key: str, files: Sequence[str]) -> None:
        self.data[stage] = {
            "key": key,
            "files": list(files),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        atomic_write_json(self.path, self.data)


def _key(stage: str, **inputs: Any) -> str:
    blob = json.dumps(
        {"format_version": FORMAT_VERSION, "stage": stage, **inputs}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _sha_or_none(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def _copy_artifact(source: Path, target: Path, log: BehaviourLog, logs: str) -> None:
    """Copy a supplied decay artifact into the folder after checking it loads and was fitted on ``log``."""
    import shutil

    from decay_model.artifact import load_artifact
    from decay_model.errors import ArtifactError

    part = f"the supplied decay artifact {source}"
    try:
        load_artifact(source, expect_fingerprint=log.fingerprint())
    except ArtifactError as exc:
        raise cannot_build(logs, part, str(exc)) from exc
    if not (source / "population.json").is_file():
        raise cannot_build(logs, part, "it has no population.json to draw users from")
    scratch = target.with_name(target.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(source, scratch, ignore=shutil.ignore_patterns("checkpoints"))
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)


def _relative_config(config: SimConfig, artifact: str) -> dict[str, Any]:
    return {**config.to_dict(), "artifact": artifact}


def build_simulator(
    logs: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: BuildOptions | None = None,
    *,
    base: SimConfig | None = None,
    provenance: Mapping[str, Any] | None = None,
    hooks: BuildHooks | None = None,
    log: BehaviourLog | None = None,
) -> BuiltSimulator:
    """Fit every part of a simulator on ``logs`` and write the folder ``out`` (module docstring).

    Args:
        logs: the behaviour log file (its sha256 keys every stage).
        out: the simulator folder (created; stages already there with the same key are reused).
        options: what the fits read besides the log.
        base: sizes, rewards and the fields no fit sets (default ``SimConfig()``, the ``default``
            preset); it must draw from the built-in population (``artifact`` None).
        provenance: recorded in the card as is (e.g. ``command`` and ``versions``).
        hooks: progress callbacks and the report's extras.
        log: the loaded log when the caller has it (it must be ``logs`` loaded with
            ``options.source``).
    """
    options = options or BuildOptions()
    base = base or SimConfig()
    hooks = hooks or BuildHooks()
    if base.artifact is not None:
        raise ConfigError("build_simulator: the base config must not name an artifact; the build fits one")
    folder = Path(out)
    data_sha = sha256_file(logs)
    if log is None:
        log = load_log(logs, options.source)
    split = check_log(log, options)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CARD).unlink(missing_ok=True)  # a folder without its card reads as unfinished until the end
    stages = _Stages(folder)
    reused: list[str] = []
    keys: dict[str, str] = {}
    task_dict = options.task.to_dict()

    def run(stage: str, key: str) -> bool:
        """True when the stage must run; reports progress either way."""
        if stages.done(stage, key):
            reused.append(stage)
            keys[stage] = key
            if hooks.on_stage:
                hooks.on_stage(stage, "reused")
            return False
        if hooks.on_stage:
            hooks.on_stage(stage, "running")
        return True

    def finish(stage: str, key: str, files: Sequence[str]) -> None:
        stages.mark(stage, key, files)
        keys[stage] = key
        if hooks.on_stage:
            hooks.on_stage(stage, "done")

    from decay_model.artifact import fit_and_save, load_artifact

    extra = {"command": (provenance or {}).get("command"), "built_for": str(folder)}
    task: EvalTask | None = None
    decay_key = _key(
        "decay", data=data_sha, source=options.source, task=task_dict, fit=asdict(options.decay_fit)
    )
    if run("decay", decay_key):
        task = EvalTask(log, options.task)
        model, *_ = fit_and_save(
            ExponentialDecay(options.decay_fit), task, folder / DECAY, log=log, extra=extra
        )
        finish("decay", decay_key, [f"{DECAY}/card.json"])
    else:
        model, _ = load_artifact(folder / DECAY, expect_fingerprint=log.fingerprint())
    artifact = DECAY
    upstream = [decay_key]
    if options.neural:
        from decay_model.neural import NeuralDecay, preset

        neural_key = _key(
            "neural",
            data=data_sha,
            source=options.source,
            task=task_dict,
            preset=options.neural_preset,
            epochs=options.epochs,
            seed=options.seed,
        )
        if run("neural", neural_key):
            task = task or EvalTask(log, options.task)
            overrides = {"seed": options.seed, **({"epochs": options.epochs} if options.epochs else {})}
            neural = NeuralDecay(
                preset(options.neural_preset, **overrides),
                device=options.device,
                checkpoint_dir=folder / "checkpoints" / NEURAL,
                resume=True,
            )
            fit_and_save(neural, task, folder / NEURAL, log=log, extra=extra)
            finish("neural", neural_key, [f"{NEURAL}/card.json"])
        artifact = NEURAL
        upstream.append(neural_key)

    if options.artifact is not None:
        source = Path(options.artifact)
        supplied_key = _key(
            "supplied",
            data=data_sha,
            params=_sha_or_none(source / "params.pt"),
            population=_sha_or_none(source / "population.json"),
        )
        if run("supplied", supplied_key):
            _copy_artifact(source, folder / SUPPLIED, log, str(logs))
            finish("supplied", supplied_key, [f"{SUPPLIED}/card.json"])
        artifact = SUPPLIED
        upstream.append(supplied_key)

    activity_key = _key(
        "activity", data=data_sha, source=options.source, task=task_dict, gap_h=options.session_gap_h
    )
    if run("activity", activity_key):
        try:
            fit = fit_activity(log.events, split.train_start, split.test_start, options.session_gap_h)
        except DataValidationError as exc:
            raise cannot_build(log.report.path, "return times (SimConfig.gap_log_mean)", str(exc)) from exc
        fitted = activity_overrides(fit.summary, base, log.report.path)
        atomic_write_json(
            folder / ACTIVITY,
            {
                "summary": fit.summary.to_dict(),
                "sim_config": fitted,
                "window": {"start": int(split.train_start), "end": int(split.test_start)},
            },
        )
        finish("activity", activity_key, [ACTIVITY])
    else:
        fitted = json.loads((folder / ACTIVITY).read_text())["sim_config"]
        fitted["gap_residual_quantiles"] = tuple(fitted["gap_residual_quantiles"])
    with_activity = base.replace(**fitted)

    grid = {k: [float(v) for v in vals] for k, vals in options.grid.items()}
    calibration_key = _key(
        "calibration",
        upstream=[decay_key, activity_key],
        base=with_activity.to_dict(),
        grid=grid,
        seeds=list(options.sim_seeds),
        folds=options.folds,
        seed=options.seed,
        gap_h=options.session_gap_h,
    )
    if run("calibration", calibration_key):
        result = calibrate(
            log,
            base=with_activity,
            grid=grid,
            seeds=options.sim_seeds,
            task_config=options.task,
            folds=options.folds,
            split_seed=options.seed,
            gap_h=options.session_gap_h,
            model=model,
            on_point=(lambda _: hooks.on_point()) if hooks.on_point else None,
        )
        chosen = result.choice.values
        atomic_write_json(folder / CALIBRATION, result.to_dict())
        finish("calibration", calibration_key, [CALIBRATION])
    else:
        chosen = json.loads((folder / CALIBRATION).read_text())["chosen"]
    config = with_activity.replace(**chosen, artifact=str(folder / artifact))
    atomic_write_json(folder / SIM_CONFIG, _relative_config(config, artifact))

    fidelity_key = _key(
        "fidelity",
        upstream=[*upstream, calibration_key],
        config=_relative_config(config, artifact),
        seed=options.seed,
        gap_h=options.session_gap_h,
    )
    fidelity_dir = folder / FIDELITY
    if run("fidelity", fidelity_key):
        report = fidelity_report(
            log,
            model=model,
            config=config,
            seed=options.seed,
            task_config=options.task,
            gap_h=options.session_gap_h,
        )
        atomic_write_json(
            fidelity_dir / "fidelity.json",
            {
                **report.to_dict(),
                "data": {"logs": str(logs), "sha256": data_sha},
                "decay_model": "exponential",
            },
        )
        if hooks.on_fidelity:
            hooks.on_fidelity(report, fidelity_dir)
        finish("fidelity", fidelity_key, [f"{FIDELITY}/fidelity.json"])
    fidelity = json.loads((fidelity_dir / "fidelity.json").read_text())

    card = _card(folder, logs, log, data_sha, split, options, artifact, keys, fidelity, provenance)
    atomic_write_json(folder / CARD, card)
    return BuiltSimulator(folder, load_sim(folder), card, tuple(reused))


def _card(
    folder: Path,
    logs: str | os.PathLike[str],
    log: BehaviourLog,
    data_sha: str,
    split: TimeSplit,
    options: BuildOptions,
    artifact: str,
    keys: dict[str, str],
    fidelity: dict[str, Any],
    provenance: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """card.json: what the folder is, what it was built from and how well it reproduces the test period."""
    digest = hashlib.sha256()
    for part in (SIM_CONFIG, f"{artifact}/params.pt", f"{artifact}/population.json"):
        digest.update(part.encode() + b"\0" + bytes.fromhex(sha256_file(folder / part)))
    return {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "fingerprint": digest.hexdigest(),
        "fingerprint_of": "sha256 over the sha256 of sim_config.json and of the decay artifact's "
        "params.pt and population.json",
        "sim_config_sha256": sha256_file(folder / SIM_CONFIG),
        "data": {
            "path": str(logs),
            "name": Path(logs).name,
            "sha256": data_sha,
            "source": log.report.source,
            "content_fingerprint": log.fingerprint(),
            "n_events": log.n_events,
            "n_users": log.n_users,
            "n_categories": log.n_categories,
            "t_min": log.t_min,
            "t_max": log.t_max,
        },
        "split": {
            **options.task.to_dict(),
            "train_start": int(split.train_start),
            "test_start": int(split.test_start),
            "end": int(split.end),
        },
        "options": {
            "neural": options.neural,
            "neural_preset": options.neural_preset if options.neural else None,
            "artifact": str(options.artifact) if options.artifact is not None else None,
            "session_gap_h": options.session_gap_h,
            "grid": {k: list(v) for k, v in options.grid.items()},
            "sim_seeds": list(options.sim_seeds),
            "folds": options.folds,
            "seed": options.seed,
        },
        "parts": {
            "sim_config": SIM_CONFIG,
            "decay_artifact": artifact,
            "exponential_artifact": DECAY,
            "activity": ACTIVITY,
            "calibration": CALIBRATION,
            "fidelity": f"{FIDELITY}/fidelity.json",
        },
        "fidelity": {
            name: {"distance": s["distance"], "target": s["target"], "pass": s["pass"]}
            for name, s in fidelity["statistics"].items()
        },
        "stages": keys,
        **dict(provenance or {}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
