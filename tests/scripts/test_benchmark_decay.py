from __future__ import annotations

import json

import scripts.benchmark_decay as benchmark


def test_benchmark_prints_and_writes_figures(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert benchmark.main(["--steps", "3", "--warmup", "1", "--device", "cpu", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "events/s" in printed and "users/s" in printed
    result = json.loads(out.read_text())
    assert result["hardware"]["torch_threads"] == 1 and result["machine"]["cpus"] >= 1
    (row,) = result["results"]
    assert row["device"] == "cpu" and row["train_steps"] == 3
    assert row["train_events_per_s"] > 0 and row["encode_users_per_s"] > 0
    assert row["encode_users"] == 399  # every user of the built-in synthetic log with an event
    assert row["peak_memory_mib"] > 0
