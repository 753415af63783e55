"""benchmarks/bench_memory_fit.py and bench_checkpointing.py in their tiny modes: the numbers they report."""
from __future__ import annotations

from pathlib import Path

from conftest import load_benchmark_script


def test_the_memory_fit_benchmark_shrinks_the_batch_and_keeps_the_fakes(tmp_path: Path) -> None:
    bench = load_benchmark_script("bench_memory_fit")
    result = bench.main(["--size", "32", "--images", "12", "--limits", "none", "6MB", "10kB",
                         "--out", str(tmp_path / "m.json")])
    rows = result["limits"]
    assert rows["none"]["batch"]["used"] == 64 and not rows["none"]["batch"]["adapted"]
    per_image = rows["none"]["batch"]["per_image_bytes"]
    assert rows["6MB"]["batch"]["used"] == int(6e6 * 0.8) // per_image == 3  # about 1.6 MB per 32 px image
    assert rows["10kB"]["error"].startswith("stage fakes: one image needs about")
    assert result["same_fakes"] and rows["6MB"]["fakes_sha256"] == rows["none"]["fakes_sha256"]


def test_the_checkpointing_benchmark_keeps_the_gradients(tmp_path: Path) -> None:
    bench = load_benchmark_script("bench_checkpointing")
    result = bench.main(["--runs", "default@32", "--out", str(tmp_path / "c.json")])
    row = result["sizes"]["default@32"]
    assert row["same_gradients"] and row["plain"]["grad_sha256"] == row["checkpointed"]["grad_sha256"]
