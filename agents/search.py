"""Hyperparameter search with Optuna: each trial trains an agent and is scored on validation users.

``search(settings, out)`` runs ``settings.trials`` trials of a TPE sampler over the space of
:func:`sample_ppo` (learning rate, n_steps, batch size, entropy coefficient, γ, network width,
epochs, users per batch and the per-item encoder). A trial trains with ``agents.training.train``
on the run's training users and is scored by the mean return of its best model (picked by
``EvalCallback`` on the validation users) on other users, ``agents.seeds.search_users``: the
score is not the maximum of the trial's own noisy evaluations. Each validation is reported to
Optuna's median pruner, which stops trials that fall behind the median of earlier ones.

The study lives in ``OUT/study.db`` (SQLite), so a killed search resumes with the same command:
finished trials are kept, a trial that was running is marked failed and its slot run again.
Written beside it: ``trials/<number>/`` (each trial's run folder), ``trials.csv`` (every trial,
its parameters, state and score), ``best.yml`` (the best trial as an RL Zoo entry for
``decaygym-train --hyperparams``, with the command and score in a comment) and ``summary.json``.

``search_parallel(settings, out, engine, parallel)`` runs the same search with ``parallel``
trials under way at once, each a unit of an ``agents.engines`` engine (a Ray task with
``--engine ray``). The sampler stays with the caller: it draws a trial's values when the trial
starts (TPE with the constant liar, so trials under way are not drawn again), and the unit
trains and scores that trial against the shared study storage, where its validations meet the
pruner. The storage is ``OUT/study.db`` or an RDB URL (``storage``: a database every node of a
cluster reaches; SQLite on a network file system is not safe). Which trials come first depends
on which finish first, so a parallel search is resumable but not repeatable trial for trial.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.trial import TrialState
from rich.progress import Progress
from stable_baselines3.common.callbacks import BaseCallback

from agents import seeds
from agents.engines import Engine, Unit
from agents.evaluation import evaluate
from agents.trained import env_id, load_policy
from agents.training import DEFAULT_TORCH_THREADS, TrainSettings, train
from decay_model.atomic import atomic_write_bytes, atomic_write_json
from decay_model.errors import ConfigError, DecaygymError

STUDY_FILE = "study.db"
STUDY_NAME = "decaygym"
BEST_FILE = "best.yml"
TRIALS_FILE = "trials.csv"
SUMMARY_FILE = "summary.json"
#: algorithms with a search space (the per-item actor-critic ones share PPO's)
SEARCHABLE = ("ppo", "maskable_ppo", "recurrent_ppo")
#: version of :func:`sample_ppo`'s space, stored with a study: Optuna cannot resume a study whose
#: categorical choices changed, so a study of another space is refused with this name
SPACE_VERSION = 2
#: failed trials in a row after which a search stops (a failure that repeats is not bad luck)
MAX_FAILURES_IN_A_ROW = 3


@dataclass(frozen=True)
class SearchSettings:
    """What a search depends on; stored in ``summary.json`` and checked again on resume."""

    algo: str
    """Algorithm (one of ``SEARCHABLE``)."""
    preset: str
    """Simulator preset the trials train on."""
    base: dict[str, Any]
    """The YAML entry the sampled values replace (``n_timesteps`` is ``timesteps``)."""
    trials: int
    """Trials to finish (completed or pruned), counting those of an earlier, interrupted run."""
    timesteps: int
    """Training budget per trial, env steps."""
    valid_users: int
    """Validation users of each trial's ``EvalCallback`` (pruning and best-model choice)."""
    search_users: int
    """Users each trial's best model is scored on (``agents.seeds.search_users``)."""
    evaluations: int = 5
    """Validations per trial, reported to the pruner."""
    seed: int = 0
    """Training seed of every trial, and the sampler's seed."""
    torch_threads: int = DEFAULT_TORCH_THREADS
    """Torch threads of each trial's training run (a Ray trial asks for as many CPUs)."""
    sim: str | None = None
    """Simulator folder instead of the preset (as ``decaygym-train --sim``)."""
    space: int = SPACE_VERSION
    """Version of the search space the trials sample."""

    def __post_init__(self) -> None:
        if self.algo not in SEARCHABLE:
            known = ", ".join(SEARCHABLE)
            raise ConfigError(f"--algo {self.algo!r} has no search space; searchable: {known}")
        for name in ("trials", "timesteps", "valid_users", "search_users", "evaluations", "torch_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        seeds.search_users(self.seed, self.search_users)  # checks the seed and the count


def sample_ppo(trial: optuna.Trial, base: dict[str, Any], rollouts_within: int) -> dict[str, Any]:
    """A YAML entry: ``base`` with the trial's values of the PPO-family search space.

    ``n_steps`` is capped so that a rollout (``n_steps * n_envs`` steps) fits ``rollouts_within``
    steps (so each validation sees a model updated since the last one), and ``batch_size`` at the
    rollout, which SB3 needs; ``entry`` holds the values used, the trial's params those drawn.
    The space holds configurations as cheap as the packaged default or cheaper (widths up to 64,
    at most 4 epochs, at least 128 users stepped together): a gradient pass costs timesteps ×
    epochs × network size, and the space is meant for budgets of minutes on a CPU (each trial's
    ``wall_s`` is recorded). The entropy bonus reaches down to 1e-5 because it is summed over the
    K candidates of a decision, not paid once.
    """
    entry = copy.deepcopy(base)
    n_envs = trial.suggest_categorical("n_envs", [128, 256])
    n_steps = trial.suggest_categorical("n_steps", [8, 16, 32])
    n_steps = min(n_steps, max(1, rollouts_within // n_envs))
    batch = trial.suggest_categorical("batch_size", [512, 1024, 2048])
    width = trial.suggest_categorical("width", [32, 64])
    encoder = trial.suggest_categorical("encoder", ["pool", "attention"])
    entry.update(
        n_envs=n_envs,
        n_steps=n_steps,
        batch_size=min(batch, n_steps * n_envs),
        n_epochs=trial.suggest_categorical("n_epochs", [2, 4]),
        learning_rate=trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        ent_coef=trial.suggest_float("ent_coef", 1e-5, 1e-2, log=True),
        gamma=trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995]),
    )
    policy_kwargs = dict(entry.get("policy_kwargs") or {})
    policy_kwargs["net_arch"] = {"pi": [width, width], "vf": [width, width]}
    policy_kwargs["encoder"] = encoder
    if encoder == "attention":
        policy_kwargs.setdefault("attention_heads", 2)
        policy_kwargs.setdefault("attention_layers", 1)
    else:
        policy_kwargs.pop("attention_heads", None)
        policy_kwargs.pop("attention_layers", None)
    entry["policy_kwargs"] = policy_kwargs
    return entry


class _ReportToPruner(BaseCallback):
    """After each validation: report its return to the trial; stop training once it is pruned."""

    def __init__(self, trial: optuna.Trial) -> None:
        super().__init__()
        self.trial = trial
        self.step = 0
        self.pruned = False
        self.reported: list[float] = []

    def _on_step(self) -> bool:
        self.step += 1
        self.reported.append(float(self.parent.last_mean_reward))  # type: ignore[union-attr]
        self.trial.report(self.reported[-1], self.step)
        self.pruned = self.trial.should_prune()
        return not self.pruned


def trial_settings(settings: SearchSettings, entry: dict[str, Any]) -> TrainSettings:
    """The training run of a trial with YAML entry ``entry``."""
    every = max(1, settings.timesteps // settings.evaluations)
    return TrainSettings(
        algo=settings.algo,
        preset=settings.preset,
        sim=settings.sim,
        seed=settings.seed,
        timesteps=settings.timesteps,
        n_envs=int(entry["n_envs"]),
        eval_users=settings.valid_users,
        eval_freq=every,
        checkpoint_freq=settings.timesteps,
        device="cpu",
        torch_threads=settings.torch_threads,
        hyperparams={**entry, "n_timesteps": settings.timesteps},
        hyperparams_source="optuna search",
    )


def objective(settings: SearchSettings, out: Path) -> Callable[[optuna.Trial], float]:
    """Optuna's objective: train the trial's run into ``out/trials/<number>`` and score it."""
    users = seeds.search_users(settings.seed, settings.search_users).seeds()

    def score(trial: optuna.Trial) -> float:
        entry = sample_ppo(trial, settings.base, settings.timesteps // settings.evaluations)
        trial.set_user_attr("entry", entry)
        run_dir = out / "trials" / str(trial.number)
        reporter = _ReportToPruner(trial)
        result = train(trial_settings(settings, entry), run_dir, after_eval=reporter)
        trial.set_user_attr("wall_s", result.summary["wall_s"])
        if reporter.pruned:
            raise optuna.TrialPruned(f"validation returns {reporter.reported} behind the median")
        best = run_dir / "best_model.zip"
        policy = load_policy(best if best.is_file() else run_dir, settings.preset, device="cpu")
        extra = {} if settings.sim is None else {"sim": settings.sim}
        records = evaluate(policy, preset=settings.preset, seeds=users, label=str(trial.number), **extra)
        return float(records["return"].mean())

    return score


def storage_url(out: Path, storage: str | None = None) -> str:
    """The study's RDB URL: ``storage``, else the SQLite file ``out/study.db``."""
    return storage or f"sqlite:///{(out / STUDY_FILE).resolve()}"


def _rdb(url: str) -> optuna.storages.RDBStorage:
    """The storage at ``url``; SQLite waits for a lock other processes hold instead of failing at once."""
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def _pruner() -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)


def open_study(settings: SearchSettings, out: Path, storage_at: str | None = None) -> optuna.Study:
    """The study in ``out/study.db`` or at RDB URL ``storage_at``, created or reopened.

    Trials left running (by a search that was killed) are marked failed.
    """
    out.mkdir(parents=True, exist_ok=True)
    storage = _rdb(storage_url(out, storage_at))
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage,
        direction="maximize",
        pruner=_pruner(),
        load_if_exists=True,
    )
    stored = study.user_attrs.get("settings") or {}
    given = _jsonable(settings)
    differ = {k: (stored.get(k), v) for k, v in given.items() if k != "trials" and stored.get(k) != v}
    if stored and differ:
        what = "; ".join(f"{k}: stored {old!r}, given {new!r}" for k, (old, new) in differ.items())
        raise ConfigError(
            f"{out}: holds a search with other settings ({what}); use another --out, or the same "
            "options (any --trials) to resume"
        )
    study.set_user_attr("settings", _jsonable(settings))
    # a resumed search draws on from where its trials stopped, not from trial 0's values again
    study.sampler = optuna.samplers.TPESampler(seed=settings.seed + len(study.trials))
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return study


def _jsonable(settings: SearchSettings) -> dict[str, Any]:
    return yaml.safe_load(yaml.safe_dump(asdict(settings)))


def finished(study: optuna.Study) -> int:
    """Trials that count towards the search: completed or pruned."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def search(
    settings: SearchSettings, out: str | Path, *, command: str = "", progress: Progress | None = None
) -> optuna.Study:
    """Run (or resume) the search into ``out`` until ``settings.trials`` trials have finished."""
    out = Path(out)
    study = open_study(settings, out)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bar = progress if progress is not None else Progress(disable=True)
    with bar:
        task = bar.add_task(f"{settings.algo} search", total=settings.trials, completed=finished(study))
        failures, guarded = _FailuresInARow(), _Guarded(objective(settings, out))
        while finished(study) < settings.trials:
            try:
                study.optimize(guarded, n_trials=1, catch=CAUGHT)
            except _Fatal as fatal:
                write_results(study, settings, out, command)
                raise fatal.__cause__ from None  # type: ignore[misc]
            failures.count(study.trials[-1], guarded.error)
            bar.update(task, completed=finished(study))
            write_results(study, settings, out, command)
    write_results(study, settings, out, command)
    return study


#: errors a trial may end with and the search go on (e.g. a diverged training run's NaN);
#: decaygym's own errors (a bad setting, a missing file) are not among them
CAUGHT = (ValueError, RuntimeError)


class _Fatal(Exception):
    """Carries an error that must end the search through Optuna's ``catch``."""


class _Guarded:
    """The objective, with decaygym's own errors made fatal and the last error kept for the report."""

    def __init__(self, objective: Callable[[optuna.Trial], float]) -> None:
        self.objective = objective
        self.error: str | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        self.error = None
        try:
            return self.objective(trial)
        except DecaygymError as exc:
            raise _Fatal() from exc
        except CAUGHT as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            raise


class _FailuresInARow:
    """Counts failed trials in a row; the search stops at ``MAX_FAILURES_IN_A_ROW``."""

    def __init__(self) -> None:
        self.n = 0

    def count(self, trial: optuna.trial.FrozenTrial, error: str | None = None) -> None:
        self.n = self.n + 1 if trial.state == TrialState.FAIL else 0
        if self.n >= MAX_FAILURES_IN_A_ROW:
            why = error or "see the log above"
            raise RuntimeError(f"{self.n} trials in a row failed (the last, trial {trial.number}: {why})")


def search_parallel(
    settings: SearchSettings,
    out: str | Path,
    engine: Engine,
    parallel: int,
    *,
    storage: str | None = None,
    command: str = "",
) -> optuna.Study:
    """Run (or resume) the search with ``parallel`` trials at a time, each a unit of ``engine``.

    A trial that fails with ValueError or RuntimeError, or whose worker died, is marked failed and
    its slot run again (as :func:`search` does); decaygym's own errors, any other error, or
    ``MAX_FAILURES_IN_A_ROW`` failures in a row end the search.
    """
    out = Path(out)
    url = storage_url(out, storage)
    study = open_study(settings, out, storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # constant_liar
        study.sampler = optuna.samplers.TPESampler(seed=settings.seed + len(study.trials), constant_liar=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def next_trial(running: int) -> Unit | None:
        if finished(study) + running >= settings.trials:
            return None
        trial = study.ask()
        sample_ppo(trial, settings.base, settings.timesteps // settings.evaluations)  # drawn here
        args = (settings, str(out), url, trial._trial_id)
        return Unit(
            str(trial.number), run_trial, args, settings.torch_threads, labels={"trial": trial.number}
        )

    failures = _FailuresInARow()
    for outcome in engine.stream("search", next_trial, total=settings.trials, parallel=parallel):
        number = int(outcome.unit.name)
        if outcome.ok:
            state, value = outcome.value
            study.tell(number, value if state == "complete" else None, state=TrialState[state.upper()])
        else:
            study.tell(number, state=TrialState.FAIL)
            error = outcome.exception
            if isinstance(error, DecaygymError) or not (outcome.lost or isinstance(error, CAUGHT)):
                write_results(study, settings, out, command)
                raise error or RuntimeError(outcome.error)
        write_results(study, settings, out, command)
        try:
            failures.count(study.trials[number], outcome.error)
        except RuntimeError:
            write_results(study, settings, out, command)
            raise
    write_results(study, settings, out, command)
    return study


def run_trial(settings: SearchSettings, out: str, storage: str, trial_id: int) -> tuple[str, float | None]:
    """Train and score one trial whose values were drawn already (``search_parallel``'s unit).

    Returns ``("complete", score)`` or ``("pruned", None)``; its validations, sampled values and
    wall time go to the study at ``storage``, where the pruner compares them with the other trials'.
    """
    study = optuna.load_study(
        study_name=STUDY_NAME,
        storage=_rdb(storage),
        pruner=_pruner(),
        sampler=optuna.samplers.RandomSampler(),
    )
    try:
        return "complete", objective(settings, Path(out))(optuna.Trial(study, trial_id))
    except optuna.TrialPruned:
        return "pruned", None


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, score, the last validation reached and the sampled values."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        last = max(t.intermediate_values) if t.intermediate_values else None
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "score": t.value,
                "validations": len(t.intermediate_values),
                "last_validation": None if last is None else t.intermediate_values[last],
                "wall_s": t.user_attrs.get("wall_s"),
                **t.params,
            }
        )
    return pd.DataFrame(rows)


def write_results(study: optuna.Study, settings: SearchSettings, out: Path, command: str) -> None:
    """``trials.csv``, ``summary.json`` and, once a trial has completed, ``best.yml``."""
    table = trials_table(study)
    atomic_write_bytes(out / TRIALS_FILE, table.to_csv(index=False).encode())
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = max(complete, key=lambda t: t.value) if complete else None
    summary: dict[str, Any] = {
        "settings": _jsonable(settings),
        "command": command,
        "trials": table["state"].value_counts().to_dict() if len(table) else {},
        "best": None
        if best is None
        else {
            "trial": best.number,
            "score": best.value,
            "params": best.params,
            "entry": best.user_attrs["entry"],
        },
    }
    atomic_write_json(out / SUMMARY_FILE, summary)
    if best is not None:
        atomic_write_bytes(out / BEST_FILE, best_yaml(best, settings, command).encode())


def best_yaml(best: optuna.trial.FrozenTrial, settings: SearchSettings, command: str) -> str:
    """The best trial as an RL Zoo entry, headed by how it was found."""
    entry = {**best.user_attrs["entry"], "n_timesteps": float(settings.timesteps)}
    header = [
        f"# Found by: {command}" if command else "# Found by decaygym-search",
        f"# Best of {settings.trials} trials: trial {best.number}, mean return "
        f"{best.value:.3f} on {settings.search_users} search users (agents.seeds.search_users), "
        f"{settings.timesteps} timesteps, seed {settings.seed}.",
    ]
    body = yaml.safe_dump({env_id(settings.preset): entry}, sort_keys=True)
    return "\n".join(header) + "\n" + body
