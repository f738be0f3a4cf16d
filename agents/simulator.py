"""The simulator a run acts in: a named preset or a folder built from one's own logs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decay_model.errors import ConfigError
from envs.config import SimConfig, get_preset
from envs.simulator_folder import sim_provenance


@dataclass(frozen=True)
class Simulator:
    """The simulator a command runs on: a named preset, or a folder built by ``decaygym-build-sim``.

    A folder keeps the ``default`` preset's sizes (the build starts from them), so ``preset`` is
    ``default`` for it: the preset's hyperparameters and env id apply, and ``env_kwargs`` adds the
    folder to every env the command makes.
    """

    preset: str
    sim: str | None
    config: SimConfig

    @classmethod
    def of_preset(cls, name: str) -> Simulator:
        """A named preset (ConfigError names an unknown one)."""
        return cls(name, None, get_preset(name))

    @property
    def label(self) -> str:
        """Short name for run folders: the preset, or the folder's name."""
        return self.preset if self.sim is None else Path(self.sim).name

    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every env (and ``agents``' ``**overrides``) needs for this simulator."""
        return {} if self.sim is None else {"sim": self.sim}

    def argv(self) -> list[str]:
        """The options that select it again, for the commands a command runs."""
        return ["--preset", self.preset] if self.sim is None else ["--sim", self.sim]

    def record(self) -> dict[str, Any]:
        """What a run folder's config.json keeps of it (a folder's fingerprint from its card)."""
        return {"preset": self.preset, "sim": None if self.sim is None else sim_provenance(self.sim)}


def check_tuned_simulator(data: dict[str, Any], path: str | Path, sim: Simulator) -> None:
    """ConfigError unless the tuned parameters in ``path`` were tuned on the same simulator folder."""
    recorded = (data.get("simulator") or {}).get("sim") or {}
    ours = sim.record()["sim"] or {}
    if recorded.get("fingerprint") != ours.get("fingerprint"):
        where = f"simulator folder {recorded.get('path')}" if recorded else f"preset {data.get('preset')!r}"
        now = f"simulator folder {sim.sim}" if sim.sim else f"preset {sim.preset!r}"
        raise ConfigError(
            f"tuned parameters {path} were tuned on {where}, not on {now}: tune on what you run"
        )
