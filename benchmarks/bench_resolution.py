"""Every stage at 256, 512 and 1024 px on this machine: wall time, peak memory and growth with the pixel count.

    python benchmarks/bench_resolution.py                 # 256 512 1024 px, writes results/resolution.json
    python benchmarks/bench_resolution.py --sizes 64 128  # other sizes (the tests run a tiny one)

Data: the synthetic set written as real DICOM files at a mammogram's native size (2048 px square, 16 bits stored,
as MG files), 24 images, read back and resampled by the data stage. Then, through the engine as `make run` runs it
(one worker, so that each stage has the process to itself): resnet10t trained for one epoch (batch 4), the lesion
GAN for a few steps (2 identity, 2 head, 4 joint, batch 2), its fakes, FGSM, PGD-L-inf (10 steps) and Square (20
queries) at 2/255 on the test split (batch 4), and every score. Each size runs on a fresh store.

Memory: a thread samples the process's resident memory (VmRSS) every 20 ms; a stage's peak is the largest sample
while it ran, and its growth is that peak minus the sample just before it started (what the stage itself added). On
CUDA the peak is torch.cuda.max_memory_allocated, reset before each size. Growth exponent per stage kind: the slope
k of log(seconds) against log(pixels) over the sizes (time ~ pixels^k), least squares; 1 is linear in pixels.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark.config import parse_config  # noqa: E402
from benchmark.execution.matrix import run  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "resolution.json"


def config(size: int, store: Path, native: int, count: int) -> object:
    """The one-model slice at `size` px, its store under `store`."""
    raw = {
        "run": {"name": f"resolution-{size}", "seed": 0, "device": "auto", "store": str(store),
                "leaderboards": str(store / "leaderboards")},
        "dataset": {"name": "synthetic-mammo", "image_size": size,
                    "options": {"count": count, "native_size": native, "bits_stored": 16}},
        "training": {"epochs": 1, "batch_size": 4},
        "attack": {"batch_size": 4, "sanity_budget": 0},
        "models": ["resnet10t"], "defenses": ["none"],
        "attacks": [{"name": "fgsm", "budgets": ["2/255"]}, {"name": "pgd-linf", "budgets": ["2/255"]},
                    {"name": "square", "budgets": ["2/255"], "options": {"queries": 20}},
                    {"name": "gan", "options": {"identity_steps": 2, "head_steps": 2, "joint_steps": 4,
                                                "batch_size": 2}}],
    }
    return parse_config(raw, f"bench_resolution ({size} px)")


class RssSampler:
    """Samples this process's resident memory (MB) in a thread: (time.time(), MB) pairs."""

    def __init__(self, every: float = 0.02) -> None:
        self.every, self.samples, self._stop = every, [], threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), rss_mb()))
            time.sleep(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float, end: float) -> tuple[float, float]:
        """(peak MB while [start, end], MB just before start)."""
        inside = [mb for t, mb in self.samples if start <= t <= end] or [rss_mb()]
        before = [mb for t, mb in self.samples if t < start]
        return max(inside), (before[-1] if before else inside[0])


def rss_mb() -> float:
    """This process's resident memory now, MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_size(size: int, root: Path, native: int, count: int) -> dict:
    """Run the slice at one size; per stage kind: seconds (summed over its stages), peak and added memory."""
    cfg = config(size, root / f"s{size}", native, count)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with RssSampler() as sampler:
        result = run(cfg, progress=False, leaderboard=False, workers=1)
    failed = {o.label: o.error for o in result.outcomes.values() if o.status != "done"}
    stages: dict[str, dict] = {}
    for o in result.outcomes.values():
        if o.status != "done" or o.started is None:
            continue
        peak, before = sampler.peak(o.started, o.started + o.seconds)
        s = stages.setdefault(o.kind, {"seconds": 0.0, "peak_mb": 0.0, "added_mb": 0.0, "stages": 0})
        s["seconds"] += o.seconds
        s["peak_mb"] = max(s["peak_mb"], peak)
        s["added_mb"] = max(s["added_mb"], peak - before)
        s["stages"] += 1
    out = {"stages": {k: {**v, "seconds": round(v["seconds"], 2), "peak_mb": round(v["peak_mb"], 1),
                          "added_mb": round(v["added_mb"], 1)} for k, v in stages.items()},
           "failed": failed, "seconds": round(result.seconds, 1)}
    if cuda:
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def exponents(by_size: dict[int, dict]) -> dict[str, float | None]:
    """Per stage kind, k in seconds ~ pixels^k (least squares over the sizes where the kind ran)."""
    kinds = sorted({k for r in by_size.values() for k in r["stages"]})
    out: dict[str, float | None] = {}
    for kind in kinds:
        pts = [(math.log(s * s), math.log(r["stages"][kind]["seconds"])) for s, r in by_size.items()
               if kind in r["stages"] and r["stages"][kind]["seconds"] > 0]
        out[kind] = round(float(np.polyfit(*zip(*pts), 1)[0]), 2) if len(pts) >= 2 else None
    return out


def main(argv: list[str] | None = None) -> int:
    """Run every size, print a table, write the JSON; 1 when a stage failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--native", type=int, default=2048, help="side of the written DICOM files (default 2048)")
    parser.add_argument("--count", type=int, default=24, help="images (default 24)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    by_size = {}
    with tempfile.TemporaryDirectory(prefix="bench-resolution-") as tmp:
        for size in args.sizes:
            by_size[size] = one_size(size, Path(tmp), args.native, args.count)
            line = ", ".join(f"{k} {v['seconds']:.1f} s / +{v['added_mb']:.0f} MB"
                             for k, v in by_size[size]["stages"].items())
            print(f"{size} px: {line}" + (f"; FAILED {by_size[size]['failed']}" if by_size[size]["failed"] else ""),
                  flush=True)
    report = {"what": "seconds and memory per stage kind at each image size (one worker, fresh store per size)",
              "setup": {"native_size": args.native, "bits_stored": 16, "images": args.count, "model": "resnet10t",
                        "device": "cuda" if torch.cuda.is_available() else "cpu",
                        "machine": f"{platform.processor() or platform.machine()}"},
              "sizes": {str(k): v for k, v in by_size.items()}, "growth_exponent": exponents(by_size),
              "versions": {"torch": torch.__version__, "python": platform.python_version()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"growth exponents (seconds ~ pixels^k): {report['growth_exponent']}\nwritten: {args.out}")
    return 1 if any(r["failed"] for r in by_size.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
