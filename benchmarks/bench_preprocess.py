"""Preprocessing speed: reading mammogram DICOMs uncached vs through the shared preprocessing cache, in one process.

    python benchmarks/bench_preprocess.py            # writes benchmarks/results/preprocess.json and prints a table
    python benchmarks/bench_preprocess.py --quick    # a smoke run (20 images, 1 round), nothing written

Data: synthetic mammograms (benchmark.data.phantom) written as DICOM MG, 512 x 512 stored pixels, 12 bits; each
read decodes, windows, crops the breast, flips and resizes to 64 x 64 (what the data stage does for every image).
  uncached : benchmark.data.dicom_io.read_mammogram on every file (what every run paid before the cache)
  cached   : benchmark.data.preprocess_cache.cached_read with a warm cache (a rerun, or another config on the same
             files)
  fill     : cached_read with an empty cache (first run: read + write the .npy/.json entry)
Each round runs uncached, cached, cached, uncached (both orders); the median images/s of each variant is reported.
Outputs are compared: cached arrays and info must equal the uncached ones exactly.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.data import preprocess_cache
from benchmark.data.dicom_io import (
    SyntheticDicomMeta,
    quantize,
    read_mammogram,
    write_mammogram,
)
from benchmark.data.phantom import SynthConfig, generate

RESULTS = Path(__file__).parent / "results" / "preprocess.json"


def write_files(folder: Path, count: int, native: int) -> list[Path]:
    """count synthetic mammograms as DICOM files under folder."""
    config = SynthConfig(native_size=native, pixel_spacing_mm=204.8 / native)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for m in generate(config, count, seed=0):
        path = folder / f"img{m.index:04d}.dcm"
        meta = SyntheticDicomMeta(f"img{m.index}", m.case.patient, m.view, m.case.laterality, config.pixel_spacing_mm)
        write_mammogram(path, quantize(m.image, 12), meta)
        paths.append(path)
    return paths


def timed_pass(paths: list[Path], size: int, cache: Path | None) -> tuple[float, list[np.ndarray], dict]:
    """Read every file once; returns seconds, the arrays, and the cache counts (None cache: plain reader)."""
    start = time.perf_counter()
    if cache is None:
        out = [read_mammogram(p, size)[0] for p in paths]
        return time.perf_counter() - start, out, {}
    with preprocess_cache.using(cache) as stats:
        out = [preprocess_cache.cached_read(p, size)[0] for p in paths]
    return time.perf_counter() - start, out, stats.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--native", type=int, default=512)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (uncached, cached) in both orders")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.count, args.rounds = 20, 1
    work = Path(tempfile.mkdtemp(prefix="bench-preprocess-"))
    try:
        load_before = os.getloadavg()[0]
        paths = write_files(work / "dicom", args.count, args.native)
        cache = work / "cache"
        fill_s, _, fill_stats = timed_pass(paths, args.size, cache)
        assert fill_stats["misses"] == args.count and fill_stats["write_errors"] == 0
        reference = [read_mammogram(p, args.size) for p in paths]
        with preprocess_cache.using(cache):
            for p, (arr, info) in zip(paths, reference):
                got, got_info = preprocess_cache.cached_read(p, args.size)
                assert np.array_equal(got, arr) and got_info == info, f"cached read differs for {p}"
        times: dict[str, list[float]] = {"uncached": [], "cached": []}
        for _ in range(args.rounds):
            for variant in ("uncached", "cached", "cached", "uncached"):  # A B B A: each order once per round
                seconds, _, stats = timed_pass(paths, args.size, cache if variant == "cached" else None)
                if variant == "cached":
                    assert stats["hits"] == args.count and stats["misses"] == 0
                times[variant].append(seconds)
        cache_bytes = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
        dicom_bytes = sum(p.stat().st_size for p in paths)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: args.count / v for k, v in median.items()}
    report = {
        "what": "images/s reading mammogram DICOMs to 64 px: plain reader vs warm preprocessing cache",
        "setup": {"images": args.count, "stored_pixels": f"{args.native}x{args.native} uint16, 12 bits",
                  "output": f"{args.size}x{args.size} float32", "passes_per_variant": 2 * args.rounds,
                  "order": "A B B A per round (uncached, cached, cached, uncached), median reported"},
        "images_per_s": {"uncached": round(rate["uncached"], 1), "cached": round(rate["cached"], 1),
                         "cache_fill": round(args.count / fill_s, 1)},
        "seconds_median": {k: round(v, 4) for k, v in median.items()},
        "seconds_all": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "ratio_cached_over_uncached": round(rate["cached"] / rate["uncached"], 2),
        "identical_outputs": True,
        "bytes": {"dicom_total": dicom_bytes, "cache_total": cache_bytes},
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                    "loadavg_before_after": [load_before, os.getloadavg()[0]]},
    }
    print(f"| variant | images/s | median s ({args.count} images) |\n|---|---:|---:|")
    for name in ("uncached", "cached"):
        print(f"| {name} | {rate[name]:.1f} | {median[name]:.3f} |")
    print(f"| cache fill (first run) | {args.count / fill_s:.1f} | {fill_s:.3f} |")
    print(f"cached / uncached: {report['ratio_cached_over_uncached']}x")
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
