"""The GPU check script's code path on the CPU: every stage in both precisions, its checks, its JSON."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import load_benchmark_script


def _load():
    return load_benchmark_script("gpu_check")


def test_quick_cpu_run_passes_and_writes_every_stage_in_both_precisions(tmp_path: Path) -> None:
    gpu_check = _load()
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["passed"] and report["image_size"] == 64 and set(report["models"]) == set(gpu_check.MODELS)
    for result in report["models"].values():
        rates = result["images_per_s"]
        for stage in ("train", "pgd10", "predict"):
            assert set(rates[stage]) == {"fp32", "bf16"} and all(v > 0 for v in rates[stage].values())
        assert list(rates["gan"]) == ["fp32"] and rates["gan"]["fp32"] > 0  # the engine's GAN is fp32 on CPU
        assert result["deterministic"] is True
        assert result["agreement_fp32_bf16"] >= 0.95 and 0 <= result["max_abs_dp_fp32_bf16"] <= 0.05
        assert result["peak_memory_mb"] > 0 and 0 <= result["auc"] <= 1


def test_bf16_mode_really_computes_in_bfloat16_and_fp32_mode_does_not() -> None:
    gpu_check = _load()
    layer = torch.nn.Linear(4, 2)
    x = torch.rand(3, 4)
    with gpu_check.precision(torch.device("cpu"), True):
        assert layer(x).dtype == torch.bfloat16
    with gpu_check.precision(torch.device("cpu"), False):
        assert layer(x).dtype == torch.float32


def test_the_textures_are_the_same_for_a_seed_and_in_range() -> None:
    gpu_check = _load()
    a, ya = gpu_check.images(6, 32, seed=3, device=torch.device("cpu"))
    b, _ = gpu_check.images(6, 32, seed=3, device=torch.device("cpu"))
    assert torch.equal(a, b) and a.shape == (6, 1, 32, 32) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert ya.tolist() == [0, 1, 0, 1, 0, 1]
