"""The resolution benchmark's code path on two tiny sizes: every stage kind timed and measured, exponents fitted."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import load_benchmark_script


def _load():
    return load_benchmark_script("bench_resolution")


def test_two_tiny_sizes_run_every_stage_and_fit_exponents(tmp_path: Path) -> None:
    bench = _load()
    out = tmp_path / "resolution.json"
    assert bench.main(["--sizes", "48", "96", "--native", "192", "--count", "20", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    kinds = {"data", "train", "gan", "fakes", "attack", "score"}
    for size in ("48", "96"):
        stages = report["sizes"][size]["stages"]
        assert set(stages) == kinds and not report["sizes"][size]["failed"]
        assert stages["attack"]["stages"] == 4  # fgsm, pgd-linf, square and the GAN cell
        assert all(s["seconds"] >= 0 and s["peak_mb"] > 0 for s in stages.values())
    assert set(report["growth_exponent"]) == kinds
    assert all(isinstance(k, float) for k in report["growth_exponent"].values())


def test_the_exponent_of_a_quadratic_cost_is_two() -> None:
    bench = _load()
    fake = {s: {"stages": {"train": {"seconds": 0.001 * (s * s) ** 2}}} for s in (64, 128, 256)}
    assert bench.exponents(fake) == {"train": 2.0}
