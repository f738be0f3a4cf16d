import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agents import checkpoints, seeds, training
from agents.evaluation import evaluate, summarize
from agents.trained import load_policy
from scripts import train

REPO = Path(__file__).resolve().parents[2]
SMOKE = ["--preset", "small", "--seed", "0", "--n-envs", "32", "--eval-users", "16"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def check_run_folder(out, capsys):
    """What decaygym-train writes, for a PPO run of 4096 timesteps evaluated every 1024."""
    for name in ("config.json", "seeds.json", "model.zip", "best_model.zip", "summary.json"):
        assert (out / name).is_file(), name
    assert (out / "eval" / "evaluations.npz").is_file()
    assert list((out / "tb").glob("ppo_*/events.out.tfevents.*"))
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["num_timesteps"] == 4096
    config = json.loads((out / "config.json").read_text())
    assert config["git_commit"] is None or len(config["git_commit"]) == 40
    assert "stable-baselines3" in config["versions"] and "sb3-contrib" in config["config"]["versions"]
    inner = config["config"]
    assert inner["algo"] == "ppo" and inner["sim_config"]["num_slots"] == 8
    assert inner["hyperparams"]["policy"] == "agents.per_item_policy.PerItemActorCriticPolicy"
    train_range, valid_range = inner["seeds"]["train"], inner["seeds"]["valid"]
    assert train_range == {"start": 0, "stop": 32} and valid_range["start"] >= seeds.VALID_BASE
    assert valid_range["stop"] <= seeds.eval_users(0, 1).start  # evaluation users stay unseen
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_timesteps"] == 4096 and summary["resumed_at"] == []
    assert set(summary["final_model_on_validation_users"]) >= {"return", "clicks", "churned"}
    assert "ppo on small: 4096 timesteps" in capsys.readouterr().out
    assert load_policy(out).algo == "ppo"


def test_dqn_trains_one_candidate_at_a_time_and_checkpoints_its_replay_buffer(tmp_path):
    out = tmp_path / "dqn"
    train.main(["--algo", "dqn", *SMOKE, "--timesteps", "1024", "--eval-freq", "0", "--out", str(out)])
    latest = json.loads((out / "checkpoints" / "latest.json").read_text())
    folder = out / "checkpoints" / latest["folder"]
    assert (folder / "replay_buffer.pkl").is_file() and (folder / "model.zip").is_file()
    policy = load_policy(out)
    assert policy.algo == "dqn"
    records = evaluate(policy, preset="small", seeds=seeds.eval_users(0, 8).seeds())
    assert len(records) == 8


def eval_return(run):
    records = evaluate(load_policy(run), preset="small", seeds=seeds.eval_users(0, 200).seeds())
    return summarize(records, metrics=("return",), seed=0).loc["return"]


def killed_and_resumed(tmp_path, monkeypatch, args, kill_at):
    killed = tmp_path / "killed"
    save = checkpoints.save_checkpoint

    def save_then_die(model, *a, **kw):
        folder = save(model, *a, **kw)
        if model.num_timesteps >= kill_at:
            raise KeyboardInterrupt  # the kill, just after a checkpoint
        return folder

    monkeypatch.setattr(checkpoints, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train.main([*args, "--out", str(killed)])
    monkeypatch.undo()
    assert not (killed / "model.zip").exists()
    assert json.loads((killed / "checkpoints" / "latest.json").read_text())["num_timesteps"] == kill_at
    assert train.main(["--resume", "--out", str(killed)]) == 0
    return killed


def same_weights(a, b):
    pa, pb = load_policy(a).model.policy.state_dict(), load_policy(b).model.policy.state_dict()
    return all(torch.equal(pa[k], pb[k]) for k in pa)


def test_a_killed_run_resumes_to_the_same_model(tmp_path, monkeypatch, capsys):
    args = [*SMOKE, "--algo", "ppo", "--timesteps", "4096", "--eval-freq", "1024"]
    full = tmp_path / "uninterrupted"
    assert train.main([*args, "--out", str(full)]) == 0
    check_run_folder(full, capsys)
    killed = killed_and_resumed(tmp_path, monkeypatch, args, kill_at=2048)
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["num_timesteps"] == 4096 and summary["resumed_at"] == [2048]
    history = np.load(killed / "eval" / "evaluations.npz")
    assert list(history["timesteps"]) == [1024, 2048, 3072, 4096]  # kept across the kill
    np.testing.assert_array_equal(history["results"], np.load(full / "eval" / "evaluations.npz")["results"])
    # the checkpoint holds the users in mid-episode and the random states: the same model results
    assert same_weights(full, killed)
    reference, resumed = eval_return(full), eval_return(killed)
    assert reference["ci_low"] <= resumed["mean"] <= reference["ci_high"]


@pytest.mark.parametrize(
    "algo",
    [
        "dqn",
        "recurrent_ppo",
        pytest.param("maskable_ppo", marks=pytest.mark.slow),
        pytest.param("a2c", marks=pytest.mark.slow),
    ],
)
def test_every_algorithm_resumes_exactly(tmp_path, monkeypatch, algo):
    steps = {"dqn": "2048", "a2c": "1024"}.get(algo, "2048")
    args = [*SMOKE, "--algo", algo, "--timesteps", steps, "--eval-freq", "0", "--checkpoint-freq", "512"]
    if algo == "dqn":
        hyper = tmp_path / "dqn.yml"
        hyper.write_text(
            "decaygym/InterestDecay-small-v1:\n  n_envs: 32\n  n_timesteps: 2048\n  policy: MlpPolicy\n"
            "  policy_kwargs: {net_arch: [16]}\n  learning_starts: 256\n  buffer_size: 4000\n"
            "  batch_size: 32\n  target_update_interval: 256\n  gamma: 0.99874\n"
        )
        args += ["--hyperparams", str(hyper)]
    full = tmp_path / "uninterrupted"
    train.main([*args, "--out", str(full)])
    killed = killed_and_resumed(tmp_path, monkeypatch, args, kill_at=int(steps) // 2)
    assert same_weights(full, killed)


def one_line_error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        train.cli(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("decaygym-train: error: ") and "\n" not in err
    return err


def test_bad_arguments_end_with_one_line(tmp_path, capsys):
    assert "unknown --algo 'sac'" in one_line_error(capsys, ["--algo", "sac"])
    assert "unknown preset 'tiny'" in one_line_error(capsys, ["--preset", "tiny"])
    assert "--timesteps must be >= 1" in one_line_error(capsys, ["--preset", "small", "--timesteps", "-5"])
    assert "--seed must be" in one_line_error(capsys, ["--preset", "small", "--seed", "-1"])
    assert "not a torch device" in one_line_error(capsys, ["--preset", "small", "--device", "gpu0"])
    assert "--n-envs must be >= 1" in one_line_error(capsys, ["--preset", "small", "--n-envs", "0"])
    assert "cannot read" in one_line_error(
        capsys, ["--preset", "small", "--hyperparams", str(tmp_path / "x.yml")]
    )
    assert "needs --out" in one_line_error(capsys, ["--resume"])
    missing = tmp_path / "missing"
    assert "no run folder" in one_line_error(capsys, ["--resume", "--out", str(missing)])
    assert "not a training run folder" in one_line_error(capsys, ["--resume", "--out", str(tmp_path)])
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps(
            {
                "config": {
                    "settings": train.settings_from_args(
                        train.parse_args(["--preset", "small", "--timesteps", "64"])
                    ).__dict__
                }
            }
        )
    )
    assert "keeps its settings" in one_line_error(capsys, ["--resume", "--out", str(run), "--algo", "dqn"])
    assert "no checkpoint yet" in one_line_error(capsys, ["--resume", "--out", str(run)])
    (run / "checkpoints" / "step_1").mkdir(parents=True)
    (run / "checkpoints" / "step_1" / "model.zip").write_bytes(b"")
    (run / "checkpoints" / "latest.json").write_text('{"folder": "step_1"}')
    assert "already holds a run" in one_line_error(capsys, ["--preset", "small", "--out", str(run)])


def test_the_command_line_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "scripts.train", "--algo", "nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "decaygym-train: error: unknown --algo 'nope'; known: ppo, a2c, dqn, maskable_ppo, recurrent_ppo"
    ]


def test_the_command_trains_what_train_trains_from_python(tmp_path):
    argv = [*SMOKE, "--timesteps", "1024", "--eval-freq", "0", "--checkpoint-freq", "1024"]
    train.main([*argv, "--out", str(tmp_path / "command")])
    settings = train.settings_from_args(train.parse_args(argv))
    result = training.train(settings, tmp_path / "library")
    assert result.num_timesteps == 1024
    assert same_weights(tmp_path / "command", tmp_path / "library")
