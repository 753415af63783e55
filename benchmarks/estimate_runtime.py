"""Predicted wall time of a matrix config on one GPU and on N GPUs, from measured CPU costs and stated assumptions.

    python benchmarks/estimate_runtime.py                                   # full.toml and study-gpu.toml, 1 and 8 GPUs
    python benchmarks/estimate_runtime.py configs/full.toml --gpus 1 4 --gpu-tflops 150

The work of every stage of the planned matrix is counted in floating-point operations: torch's FlopCounterMode on
the real networks at the config's image size (on the meta device: nothing is computed), times the images, epochs,
GAN steps and attack gradients the stage's params ask for (work_flops). The CPU's achieved rate per stage kind comes
from benchmarks/results/resolution.json: the same count for that benchmark's slice at 1024 px over its measured
seconds. The GPU's rate is an assumption (--gpu-tflops, achieved, not peak) until benchmarks/results/gpu.json
exists (benchmarks/gpu_check.py on a GPU), whose bf16 training throughput then sets it. N GPUs: the stages are
placed on the first free GPU once their inputs exist (Ray's scheduling, list scheduling on the plan's order).
Writes benchmarks/results/estimate.json and prints the README table.
"""
from __future__ import annotations

import argparse
import heapq
import json
import sys
import tempfile
from functools import cache
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark.config import MatrixConfig, load_config  # noqa: E402
from benchmark.execution.planner import plan_matrix  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = [ROOT / "configs" / "full.toml", ROOT / "configs" / "study-gpu.toml"]
CALIBRATION_SIZE = 1024
GPU_TFLOPS = 100.0  # assumed achieved bf16 rate on one H200-class GPU: about a tenth of its dense bf16 peak
STAGE_OVERHEAD_S = 3.0  # assumed per stage on a GPU: process, model build, artifacts read and written
FORWARD_SHARE = 1 / 3  # a forward pass costs about a third of a forward and backward (a gradient)
DETECTOR = ("resnet10t", 6)  # the fakes stage's real-vs-fake detector: model and epochs (benchmark/gan/detector.py)


@cache
def forward_flops(kind: str, name: str, size: int, base: int = 0, levels: int = 0) -> float:
    """FLOPs of one image's forward pass: a registered model (kind 'model') or the GAN's U-Net (kind 'unet')."""
    from benchmark.gan.networks import UNetGenerator
    from benchmark.registry import get_component
    with torch.device("meta"):
        net = (UNetGenerator(base, levels) if kind == "unet" else get_component("models", name).obj(size)).eval()
        x = torch.empty(1, 1, size, size)
    with FlopCounterMode(display=False) as counter:
        net(x)
    return float(counter.get_total_flops())


def attack_gradients(name: str, options: dict, robust: float = 1.0) -> float:
    """Gradient evaluations per image an attack spends (queries count as forward passes, a third each). Attacks that
    stop on fooled images (DeepFool, Square, AutoAttack after its first APGD run) work on only the `robust` share of
    the images after their first iteration; robust = 1 is the upper bound."""
    o = dict(options)
    if name == "fgsm":
        return 1.0
    if name in ("pgd-linf", "pgd-l2", "lesion-pgd"):
        return float(o.get("steps", 10) * o.get("restarts", 1))
    if name == "cw-l2":
        return float(o.get("binary_search_steps", 10) * o.get("steps", 10))
    if name == "deepfool":  # one gradient per class per iteration
        return 2 + (o.get("steps", 100) - 1) * 2 * robust
    if name == "square":
        return (1 + o.get("queries", 1000) * o.get("restarts", 1) * robust) * FORWARD_SHARE
    if name == "autoattack":
        steps = o.get("steps", 100)
        return (steps + steps * (o.get("restarts", 5) - 1) * robust + attack_gradients("deepfool", {}, robust) * robust
                + o.get("queries", 5000) * o.get("square_restarts", 5) * FORWARD_SHARE * robust)
    if name.startswith("gan"):
        return 0.0  # the fakes are made by the fakes stage; the cell only scores them
    return 10.0  # an attack this script does not know: counted as PGD-10


def gan_flops(schedule: object, f_gen: float, f_critic: float) -> float:
    """Both directions of a GAN training: identity (generator only), head (critic head), joint (critic steps and a
    generator step against critic and, white-box, classifier), per image of each batch."""
    fwd_bwd = 1 / FORWARD_SHARE
    critic_step = f_gen + 2 * fwd_bwd * f_critic  # fakes made, critic on real and fake
    generator_step = fwd_bwd * f_gen + fwd_bwd * f_critic * (2 if schedule.classifier_weight > 0 else 1)
    per_direction = (schedule.identity_steps * fwd_bwd * f_gen + schedule.head_steps * critic_step
                     + schedule.joint_steps * (schedule.critic_steps * critic_step + generator_step))
    return 2 * per_direction * schedule.batch_size


def train_flops(f_model: float, epochs: int, counts: dict[str, int], defense: str, options: dict) -> float:
    """Training (forward and backward per image and epoch, with the defense's extra work), per-epoch validation and
    the stage's final predictions."""
    factor = 1.0
    if defense == "pgd-at":  # PGD on a fraction of each batch, every step a gradient
        factor += float(options.get("fraction", 0.5)) * int(options.get("steps", 5))
    elif defense.startswith("gan-fakes"):  # fakes join the training images
        factor += float(options.get("fraction", 0.5))
    fit = epochs * counts["train"] * f_model / FORWARD_SHARE * factor
    return fit + (epochs + 3) * counts["val"] * f_model + 2 * counts["test"] * f_model


def _counts(config: MatrixConfig) -> dict[str, int]:
    n = int(config.dataset.options.get("count", 800))
    train, val, _ = config.dataset.split
    counts = {"train": round(n * train), "val": round(n * val)}
    return {**counts, "test": n - counts["train"] - counts["val"], "all": n}


def stage_work(config: MatrixConfig, robust: float = 1.0) -> list[dict]:
    """Every planned stage: kind, key, deps and its FLOPs (data: native megapixels read, a CPU-only stage)."""
    from benchmark.gan.schedule import schedule_from_options
    plan, size, counts = plan_matrix(config), config.dataset.image_size, _counts(config)
    by_key = {s.key: s for s in plan.stages}
    out = []
    for s in plan.stages:
        p, flops = s.params, 0.0
        if s.kind == "data":
            native = int(config.dataset.options.get("native_size", size))
            flops = counts["all"] * native * native / 1e6  # megapixels, not FLOPs: the data stage is I/O and numpy
        elif s.kind == "train":
            spec = p["model"]
            flops = train_flops(forward_flops("model", spec["name"], size), spec["train"]["epochs"], counts,
                                p["defense"]["name"], p["defense"]["options"])
        elif s.kind in ("gan", "fakes"):
            gan = s if s.kind == "gan" else by_key[s.deps["gan"]]
            sched = schedule_from_options(gan.params["options"], "estimate")
            f_gen = forward_flops("unet", "", size, sched.unet_base, sched.unet_levels)
            if s.kind == "gan":
                flops = gan_flops(sched, f_gen, forward_flops("model", gan.params["target"]["model"]["name"], size))
            else:
                f_det = forward_flops("model", DETECTOR[0], size)
                flops = (counts["all"] * f_gen + train_flops(f_det, DETECTOR[1], {k: 2 * v for k, v in counts.items()},
                                                             "none", {}))
        elif s.kind == "attack":
            f_model = forward_flops("model", p["train"]["model"]["name"], size)
            grads = attack_gradients(p["attack"]["name"], p["attack"]["options"], robust)
            flops = counts["test"] * f_model * (grads / FORWARD_SHARE + 1)
        name = p["attack"]["name"] if s.kind == "attack" else None
        out.append({"kind": s.kind, "key": s.key, "deps": list(s.deps.values()), "work": flops, "attack": name})
    return out


def calibrate(resolution: dict, slice_config: MatrixConfig) -> dict[str, float]:
    """Achieved CPU rate per stage kind (work per second) at CALIBRATION_SIZE: the slice's counted work over its
    measured seconds."""
    measured = resolution["sizes"][str(CALIBRATION_SIZE)]["stages"]
    work: dict[str, float] = {}
    for stage in stage_work(slice_config):
        work[stage["kind"]] = work.get(stage["kind"], 0.0) + stage["work"]
    return {k: work[k] / measured[k]["seconds"] for k in measured if work.get(k, 0) > 0}


def gpu_tflops_from_check(gpu: dict) -> float | None:
    """Achieved bf16 training TFLOPS measured by benchmarks/gpu_check.py (mean over its models), or None."""
    rates = []
    for name, result in gpu.get("models", {}).items():
        per_s = result.get("images_per_s", {}).get("train", {}).get("bf16")
        if per_s:
            rates.append(per_s * forward_flops("model", name, gpu["image_size"]) / FORWARD_SHARE / 1e12)
    return sum(rates) / len(rates) if rates else None


def seconds_per_stage(work: list[dict], rates: dict[str, float] | None, tflops: float, data_rate: float,
                      overhead: float) -> dict[str, float]:
    """Seconds of every stage: on the CPU at the calibrated rates (rates given), else on a GPU at tflops plus a fixed
    overhead per stage. The data stage runs on the CPU either way."""
    out = {}
    for s in work:
        if s["kind"] == "data":
            out[s["key"]] = s["work"] / data_rate
        elif rates is not None:
            out[s["key"]] = s["work"] / rates[s["kind"]] if s["kind"] in rates else 0.0
        else:
            out[s["key"]] = s["work"] / (tflops * 1e12) + overhead
    return out


def makespan(work: list[dict], seconds: dict[str, float], workers: int) -> float:
    """Wall time on `workers` devices: whenever a device is free it takes the first stage, in plan order, whose
    inputs exist (list scheduling, as Ray places ready tasks); data stages run on the CPU beside them."""
    children: dict[str, list[int]] = {}
    waiting = {}
    for i, s in enumerate(work):
        deps = set(s["deps"])
        waiting[i] = len(deps)
        for d in deps:
            children.setdefault(d, []).append(i)
    ready = [i for i, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []
    free, now, end = workers, 0.0, 0.0
    while ready or running:
        blocked = []
        while ready:
            i = heapq.heappop(ready)
            on_gpu = work[i]["kind"] != "data"
            if on_gpu and free == 0:
                blocked.append(i)
                continue
            free -= on_gpu
            heapq.heappush(running, (now + seconds[work[i]["key"]], i))
        for i in blocked:
            heapq.heappush(ready, i)
        now, i = heapq.heappop(running)
        free += work[i]["kind"] != "data"
        end = max(end, now)
        for child in children.get(work[i]["key"], []):
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    return end


def _slice_config(size: int = CALIBRATION_SIZE) -> MatrixConfig:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_resolution import config
    setup = json.loads((RESULTS / "resolution.json").read_text())["setup"]
    return config(size, Path(tempfile.gettempdir()) / "estimate", setup["native_size"], setup["images"])


def back_check(resolution: dict, rates: dict[str, float]) -> dict:
    """The benchmark slice at its other sizes predicted from the 1024 px rates: predicted / measured seconds per
    stage kind (1 where the FLOP count scales as the measured time does)."""
    out = {}
    for size, row in resolution["sizes"].items():
        work: dict[str, float] = {}
        for stage in stage_work(_slice_config(int(size))):
            work[stage["kind"]] = work.get(stage["kind"], 0.0) + stage["work"]
        out[size] = {k: round(work[k] / rates[k] / row["stages"][k]["seconds"], 2) for k in rates if k != "data"}
    return out


def estimate(paths: list[Path], gpus: list[int], tflops: float | None, overhead: float, robust: float = 1.0) -> dict:
    """Per config: stage counts, work per kind, CPU hours on this machine and hours on 1..N GPUs."""
    resolution = json.loads((RESULTS / "resolution.json").read_text())
    slice_config = _slice_config()
    rates = calibrate(resolution, slice_config)
    data = resolution["sizes"][str(CALIBRATION_SIZE)]["stages"]["data"]["seconds"]
    data_rate = stage_work(slice_config)[0]["work"] / data  # megapixels read per second
    gpu_file = RESULTS / "gpu.json"
    measured = gpu_tflops_from_check(json.loads(gpu_file.read_text())) if gpu_file.is_file() else None
    tflops_used = tflops or measured or GPU_TFLOPS
    out = {"assumptions": {"gpu_tflops": tflops_used,
                           "gpu_tflops_source": "option" if tflops else "gpu.json" if measured else "assumed",
                           "stage_overhead_s": overhead, "forward_share_of_gradient": FORWARD_SHARE,
                           "still_robust": robust},  # 1: early-stopping attacks at their full budgets
           "cpu_gflops_per_kind": {k: round(v / 1e9, 2) for k, v in rates.items() if k != "data"},
           "back_check_predicted_over_measured": back_check(resolution, rates),
           "configs": {}}
    for path in paths:
        config = load_config(path)
        work = stage_work(config, robust)
        cpu = seconds_per_stage(work, rates, tflops_used, data_rate, overhead)
        gpu = seconds_per_stage(work, None, tflops_used, data_rate, overhead)
        kinds = sorted({s["kind"] for s in work})
        out["configs"][path.name] = {
            "image_size": config.dataset.image_size, "images": _counts(config)["all"],
            "stages": {k: sum(s["kind"] == k for s in work) for k in kinds},
            "pflop": {k: round(sum(s["work"] for s in work if s["kind"] == k) / 1e15, 3) for k in kinds
                      if k != "data"},
            "gpu_hours_by_kind": {k: round(sum(gpu[s["key"]] for s in work if s["kind"] == k) / 3600, 2)
                                  for k in kinds},
            "gpu_hours_by_attack": {a: round(sum(gpu[s["key"]] for s in work if s["attack"] == a) / 3600, 2)
                                    for a in sorted({s["attack"] for s in work if s["attack"]})},
            "cpu_hours_this_machine": round(makespan(work, cpu, 1) / 3600, 1),
            "gpu_hours": {str(n): round(makespan(work, gpu, n) / 3600, 2) for n in gpus},
            "critical_path_hours": round(makespan(work, gpu, len(work)) / 3600, 2)}
    return out


def table(result: dict) -> str:
    """The README's Markdown table."""
    gpus = sorted({n for c in result["configs"].values() for n in c["gpu_hours"]}, key=int)
    head = "| config | stages | PFLOP | " + " | ".join(f"{n} GPU{'s' if n != '1' else ''}" for n in gpus)
    lines = [head + " | longest chain | this CPU |", "|---" * (len(gpus) + 5) + "|"]
    for name, c in result["configs"].items():
        stages = ", ".join(f"{v} {k}" for k, v in c["stages"].items())
        hours = " | ".join(f"{c['gpu_hours'][n]:.1f} h" for n in gpus)
        lines.append(f"| {name} ({c['image_size']} px, {c['images']} images) | {stages} | "
                     f"{sum(c['pflop'].values()):.1f} | {hours} | {c['critical_path_hours']:.1f} h | "
                     f"{c['cpu_hours_this_machine']:.0f} h |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Estimate, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path, default=CONFIGS)
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--gpu-tflops", type=float, default=None,
                        help=f"achieved TFLOPS of one GPU (default: gpu.json when present, else {GPU_TFLOPS:g}, an "
                             "assumption: no GPU has been measured)")
    parser.add_argument("--stage-overhead", type=float, default=STAGE_OVERHEAD_S, help="seconds per stage on a GPU")
    parser.add_argument("--still-robust", type=float, default=1.0,
                        help="share of the images early-stopping attacks (DeepFool, Square, AutoAttack) keep working "
                             "on after their first iteration (default 1: the upper bound)")
    parser.add_argument("--out", type=Path, default=RESULTS / "estimate.json")
    args = parser.parse_args(argv)
    result = estimate(args.configs, args.gpus, args.gpu_tflops, args.stage_overhead, args.still_robust)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    print(f"GPU at {result['assumptions']['gpu_tflops']:g} TFLOPS ({result['assumptions']['gpu_tflops_source']}); "
          f"CPU GFLOPS per stage kind: {result['cpu_gflops_per_kind']}; predicted / measured seconds of the "
          f"benchmark slice: {result['back_check_predicted_over_measured']}")
    return result


if __name__ == "__main__":
    main()
