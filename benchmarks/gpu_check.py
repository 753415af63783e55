"""GPU check: a fixed slice of the benchmark on one device, in float32 and in bfloat16 autocast.

    python benchmarks/gpu_check.py                        # on a CUDA GPU: 1024 px, writes benchmarks/results/gpu.json
    python benchmarks/gpu_check.py --device cpu --quick   # the same code at 64 px on the CPU (what the tests run)

For resnet18 and zhou2021-vgg11 (each with its own loss recipe, built as the engine builds it): a few training steps,
PGD-L-inf (10 steps), a few steps of the engine's GAN training in both presets (fast, and zhou2021: the study's
U-Net and critic) and one score (AUC and accuracy at 0.5). Training and PGD run once in float32 and once under
bfloat16 autocast; GAN steps run as the engine runs them (bf16 autocast on CUDA). It checks:

- agreement: the float32-trained weights, evaluated in float32 and in bf16 autocast, give the same decision on at
  least 95% of the images and P(positive) within 0.05 (max absolute difference);
- determinism: training the same steps twice from the same seed gives identical predictions (bit for bit);

and prints images/s per stage and precision and the peak memory (torch.cuda.max_memory_allocated on CUDA, the
process's peak resident memory on CPU). Exit 1 when a check fails. The images are smooth random textures (no data
set is needed); the numbers are throughput and numerics, not accuracy. Meant to finish in under 8 minutes on one
modern GPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark.attacking.torch_attacks import pgd  # noqa: E402
from benchmark.device import prepare_model, seed_everything  # noqa: E402
from benchmark.gan.schedule import schedule_from_options  # noqa: E402
from benchmark.gan.training import train_gan  # noqa: E402
from benchmark.metrics import classification_metrics  # noqa: E402
from benchmark.registry import get_component  # noqa: E402
from benchmark.training.losses import make_loss  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "gpu.json"
MODELS = ("resnet18", "zhou2021-vgg11")
AGREEMENT, MAX_DP = 0.95, 0.05  # decisions agreeing, largest |P(positive) fp32 - bf16|


def images(n: int, size: int, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """n smooth random textures in [0,1] (1 channel) and alternating labels, the same for a seed on any device."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, max(2, size // 16), max(2, size // 16), generator=g)
    x = 0.2 + 0.6 * F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    x = (x + 0.02 * torch.rand(n, 1, size, size, generator=g)).clamp(0, 1)
    return x.to(device), (torch.arange(n) % 2).to(device)


@contextmanager
def precision(device: torch.device, bf16: bool) -> Iterator[None]:
    """bfloat16 autocast on the device when bf16, else plain float32."""
    if bf16:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def sync(device: torch.device) -> None:
    """Wait for queued device work, so that wall times are the work's."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], object]) -> tuple[object, float]:
    """(fn(), seconds), synchronised on the device."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def build(name: str, size: int, device: torch.device, seed: int) -> tuple[nn.Module, Callable]:
    """The registered model at `size` on device (channels-last on CUDA) and its recipe's loss."""
    seed_everything(seed)
    component = get_component("models", name)
    model = prepare_model(component.obj(size), device)
    return model, make_loss(dict(component.card.recipe or {}))


def train_steps(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, steps: int, batch: int,
                device: torch.device, bf16: bool) -> None:
    """`steps` AdamW steps over batches of x in order (no augmentation, nothing random)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for step in range(steps):
        i = (step * batch) % len(x)
        xb, yb = x[i:i + batch], y[i:i + batch]
        with precision(device, bf16):
            loss = loss_fn(model, xb, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()


@torch.no_grad()
def proba(model: nn.Module, x: torch.Tensor, batch: int, device: torch.device, bf16: bool) -> np.ndarray:
    """P(positive) for every image, in batches."""
    out = []
    for i in range(0, len(x), batch):
        with precision(device, bf16):
            out.append(torch.softmax(model(x[i:i + batch]).float(), 1)[:, 1].cpu())
    return torch.cat(out).numpy()


def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, device: torch.device,
           bf16: bool) -> torch.Tensor:
    """PGD-L-inf, 10 steps at 2/255, seeded, in batches."""
    out = []
    for i in range(0, len(x), batch):
        g = torch.Generator(device=device).manual_seed(i)
        with precision(device, bf16):
            out.append(pgd(model, x[i:i + batch], y[i:i + batch], 2 / 255, steps=10, generator=g).float())
    return torch.cat(out)


def gan_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, batch: int, device: torch.device,
              preset: str) -> None:
    """`steps` joint GAN steps per direction of the engine's own GAN training (benchmark.gan.training.train_gan) with
    a preset (fast, or zhou2021: the study's U-Net and critic), bf16 autocast on CUDA as in the engine."""
    options = {"preset": preset, "identity_steps": 1, "head_steps": 1, "joint_steps": steps, "batch_size": batch}
    if preset == "zhou2021" and x.shape[-1] < 64:
        options["unet_levels"] = 3  # the study's 6 levels need sides divisible by 32 (the --quick size is 64)
    schedule = schedule_from_options(options, "gpu_check")
    train_gan(x.cpu().numpy(), y.cpu().numpy(), model, schedule, device, 0, progress=False)


def peak_mb(device: torch.device) -> float:
    """Peak memory so far: allocated on the CUDA device, or this process's resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def check_model(name: str, size: int, n: int, batch: int, steps: int, device: torch.device) -> dict:
    """Every stage of the slice for one model: throughput per precision, agreement, determinism, memory."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    x, y = images(n, size, seed=0, device=device)
    rate: dict[str, dict[str, float]] = {}
    trained = {}
    for label, bf16 in (("fp32", False), ("bf16", True)):
        model, loss_fn = build(name, size, device, seed=0)
        _, seconds = timed(device, lambda m=model, f=loss_fn, b=bf16: train_steps(m, f, x, y, steps, batch, device, b))
        rate.setdefault("train", {})[label] = steps * batch / seconds
        trained[label] = model
    fp32 = trained["fp32"]
    again, loss_fn = build(name, size, device, seed=0)
    train_steps(again, loss_fn, x, y, steps, batch, device, False)
    p32 = proba(fp32, x, batch, device, False)
    deterministic = bool(np.array_equal(p32, proba(again, x, batch, device, False)))
    p16 = proba(fp32, x, batch, device, True)
    agree = float(np.mean((p32 >= 0.5) == (p16 >= 0.5)))
    max_dp = float(np.abs(p32 - p16).max())
    for label, bf16 in (("fp32", False), ("bf16", True)):
        _, seconds = timed(device, lambda b=bf16: attack(fp32, x, y, batch, device, b))
        rate.setdefault("pgd10", {})[label] = n / seconds
        _, seconds = timed(device, lambda b=bf16: proba(fp32, x, batch, device, b))
        rate.setdefault("predict", {})[label] = n / seconds
    for preset in ("fast", "zhou2021"):
        _, seconds = timed(device, lambda p=preset: gan_steps(fp32, x, y, steps, batch, device, p))
        key = "gan" if preset == "fast" else f"gan_{preset}"
        rate[key] = {"fp32" if device.type == "cpu" else "bf16": 2 * (steps + 2) * batch / seconds}
    score, seconds = timed(device, lambda: classification_metrics(y.cpu().numpy(), p32, 0.5, n_boot=200))
    return {"images_per_s": {k: {p: round(v, 2) for p, v in d.items()} for k, d in rate.items()},
            "score_seconds": round(seconds, 3), "auc": score["auc"]["value"],
            "agreement_fp32_bf16": agree, "max_abs_dp_fp32_bf16": max_dp, "deterministic": deterministic,
            "peak_memory_mb": round(peak_mb(device), 1),
            "passed": deterministic and agree >= AGREEMENT and max_dp <= MAX_DP}


def main(argv: list[str] | None = None) -> int:
    """Run the slice for every model, print a table, write the JSON; 1 when a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="64 px, 16 images, 2 steps: the code path in seconds")
    parser.add_argument("--size", type=int, default=None, help="image side (default 1024; 64 with --quick)")
    parser.add_argument("--out", type=Path, default=None, help=f"results file (default {RESULTS}; none with --quick)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    size = args.size or (64 if args.quick else 1024)
    n, batch, steps = (16, 8, 2) if args.quick else (64, 16, 8)
    started = time.perf_counter()
    results = {name: check_model(name, size, n, batch, steps, device) for name in MODELS}
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "image_size": size, "images": n, "batch": batch, "steps": steps,
              "tolerance": {"agreement": AGREEMENT, "max_abs_dp": MAX_DP},
              "models": results, "seconds": round(time.perf_counter() - started, 1),
              "versions": {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version()},
              "passed": all(r["passed"] for r in results.values())}
    for name, r in results.items():
        rates = ", ".join(f"{k} {'/'.join(f'{p} {v:.1f}' for p, v in d.items())}" for k, d in r["images_per_s"].items())
        print(f"{name} at {size} px: {rates} images/s; agreement {r['agreement_fp32_bf16']:.3f}, "
              f"max |dP| {r['max_abs_dp_fp32_bf16']:.4f}, deterministic {r['deterministic']}, "
              f"peak {r['peak_memory_mb']:.0f} MB: {'ok' if r['passed'] else 'FAILED'}")
    out = args.out or (None if args.quick else RESULTS)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"written: {out}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
