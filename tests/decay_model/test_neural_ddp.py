"""NeuralDecay under torchrun: two CPU processes (gloo) against one process.

The test launches this file with ``python -m torch.distributed.run --nproc_per_node 2``; each
process runs :func:`worker`, which fits the same tiny model on the same synthetic log and writes
what the test compares. The two-process fit is not the one-process fit to the bit: DDP averages
the two ranks' mean losses, each over its own half of the batch, where one process takes the
mean over the whole batch (groups have different numbers of candidates, so the weights differ),
the gradients are summed in another order, and the last batch repeats groups so that both ranks
have one. Validation itself is exact: the linear stage ("epoch 0", before any DDP step) scores
the same in both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from decay_model import ConfigError, EvalTask, NeuralDecay
from decay_model.atomic import atomic_write_json
from decay_model.neural import CHECKPOINT, preset
from decay_model.synthetic import SyntheticConfig, generate

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = preset("tiny", epochs=2, session_features=True, linear_departures="rate")
#: |2 processes - 1 process| allowed in validation log-loss and AUC after the last epoch (the
#: docstring says why they differ); measured: 1.6e-4 in log-loss
TOLERANCE = 1e-3

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo is needed"
)


def make_task() -> EvalTask:
    """The tiny synthetic task of the neural tests."""
    return EvalTask(generate(SyntheticConfig(n_users=80, n_categories=10), seed=3).log)


def worker(out: Path) -> None:
    """One torchrun process: fit with a checkpoint folder of its own, write its history and weights."""
    rank = int(os.environ["RANK"])
    model = NeuralDecay(CONFIG, device="cpu", checkpoint_dir=out / f"checkpoints_rank{rank}").fit(make_task())
    results = out / "results"
    atomic_write_json(results / f"history_rank{rank}.json", model.history)
    torch.save(model.state(), results / f"state_rank{rank}.pt")


def test_two_processes_agree_with_one(tmp_path: Path) -> None:
    single = NeuralDecay(CONFIG, device="cpu").fit(make_task())
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, __file__, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"two processes: {time.perf_counter() - start:.1f} s")
    results = tmp_path / "results"
    histories = [json.loads((results / f"history_rank{r}.json").read_text()) for r in (0, 1)]
    states = [torch.load(results / f"state_rank{r}.pt", weights_only=True) for r in (0, 1)]
    # Every rank agrees: the same history (so the same early stopping) and the same weights.
    assert histories[0] == histories[1]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    # Epoch 0 is the linear stage, fitted alike before any DDP step: validation is exact.
    assert histories[0][0] == single.history[0]
    assert [h["epoch"] for h in histories[0]] == [h["epoch"] for h in single.history]
    for key in ("valid_log_loss", "valid_auc"):
        last, ref = histories[0][-1][key], single.history[-1][key]
        print(f"{key}: 1 process {ref:.6f}, 2 processes {last:.6f}, difference {abs(last - ref):.2e}")
        assert abs(last - ref) <= TOLERANCE
    # Only rank 0 wrote a checkpoint, and it holds both ranks' dropout generators.
    assert (tmp_path / "checkpoints_rank0" / CHECKPOINT).is_file()
    assert not (tmp_path / "checkpoints_rank1").exists()
    blob = torch.load(tmp_path / "checkpoints_rank0" / CHECKPOINT, weights_only=True)
    assert len(blob["rng_dropout_ranks"]) == 2 and blob["epoch"] == CONFIG.epochs
    # One process resumes it (nothing left to train here), warned that dropout would differ.
    with pytest.warns(UserWarning, match=r"written by 2 process\(es\), resumed by 1"):
        resumed = NeuralDecay(
            CONFIG, device="cpu", checkpoint_dir=tmp_path / "checkpoints_rank0", resume=True
        ).fit(make_task())
    assert resumed.history == histories[0]
    assert all(torch.equal(v, states[0][k]) for k, v in resumed.state().items())


def test_fit_decay_under_torchrun_fits_the_neural_model_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import scripts.fit_decay as fit_decay  # not imported by the torchrun workers of this file

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match="--model neural"):
        fit_decay.main(["--model", "all"])


@pytest.mark.slow
def test_fit_decay_on_two_processes_writes_one_run_folder(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    options = ["-m", "scripts.fit_decay", "--model", "neural", "--epochs", "1", "--device", "cpu"]
    done = subprocess.run(
        [*command, *options], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    (run,) = (tmp_path / "runs").iterdir()  # rank 1 made no folder of its own
    assert (run / "checkpoints" / "neural" / CHECKPOINT).is_file()
    assert json.loads((run / "metrics.json").read_text()).keys() == {"neural"}


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
