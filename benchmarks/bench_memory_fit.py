"""Memory that fits, measured: the fakes stage's generator pass at 1024 px with and without run.max_memory.

    python benchmarks/bench_memory_fit.py                          # 1024 px, 24 images, writes results/memory_fit.json
    python benchmarks/bench_memory_fit.py --size 64 --out /tmp/m.json   # what the tests run

The fakes stage's own batch choice (benchmark/stages/fakes.py: a probe image, the free memory or run.max_memory,
attack.batch_size 64 as the ceiling) on the default GAN's generators, each setting in a fresh process so that its
peak resident memory (ru_maxrss) is its own. The fakes are compared bit for bit across the settings that ran at a
batch of two or more (at a batch of one, CPU convolutions round differently in the last bits).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark.config import parse_memory  # noqa: E402
from benchmark.gan.networks import UNetGenerator  # noqa: E402
from benchmark.stages import fakes  # noqa: E402
from benchmark.stages.context import StageContext  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "memory_fit.json"


def one(size: int, images: int, max_memory: str | None) -> dict:
    """The generator pass in this process: the batch chosen, peak MB above the start, seconds, hash of the fakes."""
    torch.manual_seed(0)
    generators = {d: UNetGenerator(16, 3, logit_skip=False) for d in ("insert", "remove")}
    rng = np.random.default_rng(0)
    data = SimpleNamespace(images=rng.random((images, 1, size, size), dtype=np.float32),
                           labels=np.arange(images) % 2)
    ctx = StageContext(torch.device("cpu"), 64, False, max_memory=parse_memory(max_memory) if max_memory else None)
    start_rss, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    out, fit = fakes._generate(generators, data, ctx)
    return {"batch": fit, "peak_added_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_rss)
                                                 / 1024, 1),
            "seconds": round(time.perf_counter() - start, 1),
            "fakes_sha256": hashlib.sha256(out.tobytes()).hexdigest()[:16]}


def main(argv: list[str] | None = None) -> dict:
    """Each setting in a fresh process; the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--limits", nargs="+", default=["none", "8GB", "4GB", "1GB"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # a child process: SIZE IMAGES LIMIT
    args = parser.parse_args(argv)
    if args.one:
        size, images, limit = args.one
        try:
            print(json.dumps(one(int(size), int(images), None if limit == "none" else limit)))
        except Exception as exc:  # the one-line error when not even one image fits
            print(json.dumps({"error": str(exc)}))
        return {}
    rows = {}
    for limit in args.limits:
        done = subprocess.run([sys.executable, __file__, "--one", str(args.size), str(args.images), limit],
                              capture_output=True, text=True, check=True)
        rows[limit] = json.loads(done.stdout.strip().splitlines()[-1])
    results = {"what": "fakes stage generator pass (UNet 16x3, both directions), batch chosen per run.max_memory",
               "size": args.size, "images": args.images, "machine": platform.machine(), "torch": torch.__version__,
               "limits": rows,
               "same_fakes": len({r["fakes_sha256"] for r in rows.values()
                                  if "fakes_sha256" in r and r["batch"]["used"] > 1}) <= 1}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for limit, r in rows.items():
        print(f"max_memory {limit}: " + (r["error"] if "error" in r else
                                         f"batch {r['batch']['used']} of {r['batch']['configured']}, "
                                         f"+{r['peak_added_mb']:.0f} MB, {r['seconds']:.0f} s"))
    print(f"same fakes: {results['same_fakes']}")
    return results


if __name__ == "__main__":
    main()
