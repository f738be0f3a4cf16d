"""``decaygym-gpu-check`` on the CPU at small size: the CPU rows measured, the GPU rows named as skipped."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from envs.gpu_check import NO_CUDA_STEP, cuda_unavailable
from scripts import gpu_check

SMALL = ["--preset", "small", "--users", "64", "--steps", "3", "--seconds", "0.1"]


def test_without_cuda_the_cpu_rows_are_measured_and_the_gpu_rows_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU run on any machine
    reason = cuda_unavailable()
    assert reason is not None
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main([*SMALL, "--json", str(out)]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert f"GPU rows skipped ({reason})" in printed
    assert "NeuralDecay training (tiny)" in printed and "re-encoding 64 simulated users" in printed
    assert f"simulator: {NO_CUDA_STEP}" in printed
    result = json.loads(out.read_text())
    assert result["cuda"] is None and result["cuda_skipped"] == reason
    rows = {r["what"]: r for r in result["rows"]}
    assert all(r["cuda"] is None for r in rows.values())
    measured = {w: r["cpu"] for w, r in rows.items() if w != "re-encoding peak CUDA memory"}
    assert all(v is not None and math.isfinite(v) and v > 0 for v in measured.values()), measured
    assert any(w.startswith("vector env, N = 64 (CPU") for w in rows)
    assert any(w.startswith("vector env, N = 64, re-encoding every 10 visits") for w in rows)


def test_the_reason_names_a_torch_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "built without CUDA" in str(cuda_unavailable())
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    assert "no CUDA device is visible" in str(cuda_unavailable())
