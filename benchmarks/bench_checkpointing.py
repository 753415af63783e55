"""Activation checkpointing for the GAN's generator: training memory and time with and without, on this machine.

    python benchmarks/bench_checkpointing.py   # default@512 default@1024 study@512: results/checkpointing.json
    python benchmarks/bench_checkpointing.py --runs default@64 --out /tmp/c.json   # what the tests run

One generator training step (forward, a loss, backward) on a batch of 2, with UNetGenerator.checkpoint_blocks off and
on, after a 64 px warm-up step. Each measurement runs in a fresh process, so that its peak resident memory
(ru_maxrss) is its own; on CUDA the peak is torch.cuda.max_memory_allocated. The gradients are compared bit for bit.
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

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark.gan.networks import UNetGenerator  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "checkpointing.json"
NETS = {"default": (16, 3), "study": (64, 6)}  # (unet_base, unet_levels): the default schedule, the zhou2021 preset


def step(size: int, net: str, checkpointed: bool, device: str) -> dict:
    """One training step in this process: peak MB above the start, seconds, a hash of the gradients."""
    dev = torch.device(device)
    torch.manual_seed(0)
    gen = UNetGenerator(*NETS[net], logit_skip=False).to(dev)
    gen.checkpoint_blocks = checkpointed
    gen(torch.rand(2, 1, 64, 64, device=dev)).mean().backward()  # warm-up: kernels chosen, libraries loaded
    gen.zero_grad(set_to_none=True)
    x = torch.rand(2, 1, size, size, device=dev)
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    start = time.perf_counter()
    gen(x).square().mean().backward()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        peak = (torch.cuda.max_memory_allocated(dev) - base) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_rss) / 1024
    seconds = time.perf_counter() - start
    digest = hashlib.sha256(b"".join(p.grad.detach().cpu().numpy().tobytes() for p in gen.parameters()))
    return {"peak_mb": round(peak, 1), "seconds": round(seconds, 2), "grad_sha256": digest.hexdigest()[:16]}


def measure(size: int, net: str, device: str) -> dict:
    """Both settings, each in a fresh process; the memory saved and the time it costs."""
    out = {}
    for name, flag in (("plain", "0"), ("checkpointed", "1")):
        done = subprocess.run([sys.executable, __file__, "--one", str(size), net, flag, device],
                              capture_output=True, text=True, check=True)
        out[name] = json.loads(done.stdout.strip().splitlines()[-1])
    plain, ckpt = out["plain"], out["checkpointed"]
    out["memory_saved"] = round(1 - ckpt["peak_mb"] / plain["peak_mb"], 3) if plain["peak_mb"] > 0 else None
    out["time_added"] = round(ckpt["seconds"] / plain["seconds"] - 1, 3) if plain["seconds"] > 0 else None
    out["same_gradients"] = plain["grad_sha256"] == ckpt["grad_sha256"]
    return out


def main(argv: list[str] | None = None) -> dict:
    """Measure every size and generator; write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["default@512", "default@1024", "study@512"],
                        help=f"NET@SIZE, NET one of {', '.join(NETS)} (study@1024 needs > 20 GB on a CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)  # a child process: SIZE NET FLAG DEVICE
    args = parser.parse_args(argv)
    if args.one:
        size, net, flag, device = args.one
        print(json.dumps(step(int(size), net, flag == "1", device)))
        return {}
    runs = [(r.split("@")[0], int(r.split("@")[1])) for r in args.runs]
    results = {"what": "one generator training step (batch 2), UNetGenerator.checkpoint_blocks off and on",
               "device": args.device, "machine": platform.machine(), "torch": torch.__version__,
               "nets": {n: {"unet_base": b, "unet_levels": v} for n, (b, v) in NETS.items()},
               "sizes": {f"{net}@{size}": measure(size, net, args.device) for net, size in runs}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for name, row in results["sizes"].items():
        saved = "n/a" if row["memory_saved"] is None else f"{row['memory_saved']:.0%}"
        added = "n/a" if row["time_added"] is None else f"{row['time_added']:+.0%}"
        print(f"{name}: {row['plain']['peak_mb']:.0f} MB -> {row['checkpointed']['peak_mb']:.0f} MB ({saved} saved), "
              f"time {added}, same gradients: {row['same_gradients']}")
    return results


if __name__ == "__main__":
    main()
