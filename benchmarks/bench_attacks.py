"""Attack speed: the harness path vs a plain torch loop vs ART, in one process, interleaved in both orders.

    python benchmarks/bench_attacks.py            # writes benchmarks/results/attacks.json and prints a table
    python benchmarks/bench_attacks.py --quick    # a smoke run (small batch, one repeat), nothing written

Same model (timm resnet10t, 1 channel, 2 classes, eval mode), same data (float32 in [0,1], off the 8-bit grid), CPU,
one torch thread by default (see --threads).
Variants of one attack run in the order A B C ... then ... C B A, repeated; the median time of each is reported.
  reference : the simplest correct batched torch loop, written inline below (input gradient via autograd.grad)
  harness   : the registered attack entry, called exactly as the engine's attack stage calls it
  art       : ART's implementation on ART's PyTorchClassifier (what the catalogue offers)
  pgd()     : benchmark.attacking.torch_attacks.pgd called directly (the path PGD adversarial training uses)
Outputs are compared: reference and harness must be identical (max |diff| = 0), ART within 1e-6.
Criterion of the issue: reference_time / harness_time >= 1.0 for FGSM and PGD-10.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.attacking import torch_attacks
from benchmark.attacking.art_adapter import art_classifier
from benchmark.attacking.attack_call import call_attack
from benchmark.entry_api import AttackContext
from benchmark.registry import get_component

RESULTS = Path(__file__).parent / "results" / "attacks.json"


def reference_pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
                  steps: int) -> torch.Tensor:
    """The plain loop: gradient w.r.t. x, signed step, clip to [0,1], project onto the eps box."""
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = (x_adv.detach() + alpha * grad.sign()).clamp(0, 1)
        x_adv = x + (x_adv - x).clamp(-eps, eps)
    return x_adv.clamp(0, 1)


def timed(variants: dict[str, Callable[[], torch.Tensor]], repeats: int) -> tuple[dict, dict, dict]:
    """Run every variant `repeats` times, alternating forward and reversed order: wall times, CPU times, outputs."""
    names = list(variants)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, torch.Tensor] = {}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            start, start_cpu = time.perf_counter(), time.process_time()
            outputs[name] = variants[name]()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu, outputs


def summarise(wall: dict, cpu: dict, outputs: dict, base: str = "harness") -> dict:
    """Medians, ratios to the harness (median/median, per-repeat range, CPU time), output differences."""
    med = {n: statistics.median(t) for n, t in wall.items()}
    med_cpu = {n: statistics.median(t) for n, t in cpu.items()}
    out = {"median_s": med, "median_cpu_s": med_cpu, "times_s": wall, "cpu_times_s": cpu}
    for other, times in wall.items():
        if other != base:
            paired = [a / b for a, b in zip(times, wall[base])]
            out[f"ratio_{other}_over_{base}"] = med[other] / med[base]
            out[f"cpu_ratio_{other}_over_{base}"] = med_cpu[other] / med_cpu[base]
            out[f"paired_ratio_{other}_over_{base}_min_max"] = [min(paired), max(paired)]
            out[f"max_abs_diff_{other}_vs_{base}"] = float((outputs[other] - outputs[base]).abs().max())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run; results are not written")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=8, help="repeats of PGD-10 and DeepFool (FGSM: 2x)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine, a descheduled OpenMP thread "
                             "makes multi-thread timings swing by 10x; every variant runs with the same setting)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.batch, args.size, args.repeats = 8, 32, 2

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device("cpu")
    model = timm.create_model("resnet10t", pretrained=False, in_chans=1, num_classes=2).eval()
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(args.batch, 1, args.size // 8, args.size // 8, generator=g)
    x = (0.2 + 0.6 * F.interpolate(coarse, size=(args.size, args.size), mode="bilinear")
         + 0.01 * torch.rand(args.batch, 1, args.size, args.size, generator=g)).clamp(0, 1)
    y = torch.arange(args.batch) % 2
    y_onehot = np.eye(2, dtype=np.float32)[y.numpy()]
    eps, steps = 2 / 255, 10
    alpha = torch_attacks.default_step_size(eps, steps)
    clf = art_classifier(model, tuple(x.shape[1:]), device)

    def entry(name: str, budget: float, **options: object) -> Callable[[], torch.Tensor]:
        component = get_component("attacks", name)  # called as the attack stage calls it: checked and projected
        return lambda: call_attack(component, model, x, y, budget, AttackContext(device, 0, None, dict(options),
                                                                                 args.batch))

    def art(make: Callable) -> Callable[[], torch.Tensor]:
        return lambda: torch.from_numpy(make().generate(x.numpy(), y_onehot))

    from art.attacks.evasion import DeepFool, FastGradientMethod, ProjectedGradientDescent

    groups = {
        "fgsm": ({"reference": lambda: reference_pgd(model, x, y, eps, eps, 1),
                  "harness": entry("fgsm", eps),
                  "art": art(lambda: FastGradientMethod(clf, norm=np.inf, eps=eps, batch_size=args.batch))},
                 2 * args.repeats),
        "pgd-10": ({"reference": lambda: reference_pgd(model, x, y, eps, alpha, steps),
                    "harness": entry("pgd-linf", eps, steps=steps, random_start=False),
                    "pgd()": lambda: torch_attacks.pgd(model, x, y, eps, steps, alpha, "linf", False, None),
                    "art": art(lambda: ProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=alpha,
                                                                max_iter=steps, num_random_init=0,
                                                                batch_size=args.batch, verbose=False))},
                   args.repeats),
        # ART-only attack: harness overhead around ART (the budget is the L2 ceiling, so no projection bites)
        "deepfool": ({"harness": entry("deepfool", float(args.size), steps=5, overshoot=0.02),
                      "art": art(lambda: DeepFool(clf, max_iter=5, epsilon=0.02, nb_grads=10,
                                                  batch_size=args.batch, verbose=False))},
                     max(2, args.repeats // 2)),
    }
    load_before = os.getloadavg()
    timed(dict(groups["fgsm"][0]), 1)  # warm-up: first-call allocations of every path
    results = {}
    for name, (variants, repeats) in groups.items():
        results[name] = summarise(*timed(variants, repeats))
        print(f"{name}: done", file=sys.stderr)
    report = {
        "what": "attack wall time, harness vs plain torch loop vs ART; ratios > 1 mean the harness is faster",
        "criterion": "ratio_reference_over_harness >= 1.0 for fgsm and pgd-10",
        "setup": {"model": "timm resnet10t (in_chans=1, num_classes=2, eval, random init)", "device": "cpu",
                  "batch": args.batch, "image_size": args.size, "eps": "2/255", "pgd_steps": steps,
                  "pgd_step_size": "2.5*eps/steps", "random_start": False, "order": "ABC..CBA interleaved",
                  "repeats": {k: r for k, (_, r) in groups.items()}},
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "art": __import__("art").__version__, "threads": torch.get_num_threads(),
                    "cpus": os.cpu_count(), "loadavg_before_after": [load_before[0], os.getloadavg()[0]]},
        "results": results,
    }
    report["pass"] = all(results[k]["ratio_reference_over_harness"] >= 1.0 for k in ("fgsm", "pgd-10"))
    print(table(results))
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")


def table(results: dict) -> str:
    """One Markdown row per attack: median seconds per variant, ratios to the harness, output differences."""
    def cell(r: dict, key: str, fmt: str) -> str:
        return format(r[key], fmt) if key in r else "-"
    header = ("| attack | reference s | harness s | pgd() s | ART s | reference/harness (CPU time) "
              "| ART/harness (CPU time) | pgd()/harness | max diff ref | max diff ART |")
    rows = [header, "|---|" + "---:|" * 9]
    for name, r in results.items():
        med = r["median_s"]
        secs = " | ".join(f"{med[v]:.3f}" if v in med else "-" for v in ("reference", "harness", "pgd()", "art"))
        rows.append(f"| {name} | {secs} | {cell(r, 'ratio_reference_over_harness', '.3f')} "
                    f"({cell(r, 'cpu_ratio_reference_over_harness', '.3f')}) "
                    f"| {cell(r, 'ratio_art_over_harness', '.3f')} ({cell(r, 'cpu_ratio_art_over_harness', '.3f')}) "
                    f"| {cell(r, 'ratio_pgd()_over_harness', '.3f')} "
                    f"| {cell(r, 'max_abs_diff_reference_vs_harness', '.2g')} "
                    f"| {cell(r, 'max_abs_diff_art_vs_harness', '.2g')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
