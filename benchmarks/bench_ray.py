"""Ray backend speed: a matrix of 8 independent attack cells on 2 Ray workers vs 1, and Ray's start-up overhead.

    python benchmarks/bench_ray.py            # writes benchmarks/results/ray.json and prints a table
    python benchmarks/bench_ray.py --quick    # a smoke run (2 cells, 1 round), nothing written

Matrix: the built-in synthetic-mammo set (400 images, 64 px, 80 test images), resnet10t trained once (2 epochs,
cached before timing), and pgd-linf (10 steps) at 8 budgets, 1/255 .. 8/255: 8 independent attack cells, each an
attack stage and a score stage. Each timed run recomputes those 16 stages (`force = {"attack"}`); data and training
stay cached.
  ray-1 : a local Ray instance with 1 CPU, tasks of 1 CPU and 1 torch thread (1 worker)
  ray-2 : the same with 2 CPUs (2 workers of 1 thread each)
  local : the in-process backend with 1 torch thread, for Ray's per-task cost
Per variant and run: start-up = starting the instance (ray.init) and its workers importing the stage code (one
warm-up task per worker); matrix = run_plan_ray on the warm workers; end-to-end = the two together. Each round runs
ray-1, ray-2, ray-2, ray-1, local; medians are reported.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.config import parse_config
from benchmark.execution.local import run_plan
from benchmark.execution.planner import plan_matrix
from benchmark.execution.ray_cluster import RayOptions, connect, run_plan_ray
from benchmark.execution.store import Store
from benchmark.stages import StageContext

RESULTS = Path(__file__).parent / "results" / "ray.json"
BUDGETS = [f"{i}/255" for i in range(1, 9)]


def _warm(hold: float) -> int:
    """A warm-up task: import what every stage imports, then hold the worker so that each task gets its own."""
    import benchmark.stages  # noqa: F401  (torch, timm, ART, the stage modules)

    time.sleep(hold)
    return os.getpid()


def start(workers: int, hold: float = 0.5) -> tuple[float, float]:
    """Start a local instance and warm its workers; (seconds for ray.init, seconds until every worker is ready)."""
    import ray

    t0 = time.perf_counter()
    connect(RayOptions(workers=workers))
    t1 = time.perf_counter()
    pids = ray.get([ray.remote(num_cpus=1)(_warm).remote(hold) for _ in range(workers)])
    assert len(set(pids)) == workers, pids
    return t1 - t0, time.perf_counter() - t0 - hold


def main() -> None:
    """Time the variants, print a table, write results/ray.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 cells, 1 round, nothing written")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (each runs each Ray variant twice)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    budgets = BUDGETS[:2] if args.quick else BUDGETS
    rounds = 1 if args.quick else args.rounds
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    config = parse_config({
        "run": {"seed": 0, "device": "cpu", "store": str(root / "runs"), "leaderboards": str(root / "lb")},
        "dataset": {"name": "synthetic-mammo", "image_size": 64, "options": {"count": 120 if args.quick else 400}},
        "training": {"epochs": 2, "batch_size": 32, "lr": 0.002},
        "models": [{"name": "resnet10t"}], "defenses": ["none"],
        "attacks": [{"name": "pgd-linf", "budgets": budgets, "options": {"steps": 10}}],
    }, "bench_ray")
    plan = plan_matrix(config)
    store = Store(config.run.store)
    ctx = StageContext(torch.device("cpu"), config.attack_batch_size, False, root / "runs" / "cache")
    warm = run_plan(plan, store, ctx, progress=False)  # data and training, cached for every timed run
    assert all(o.status == "done" for o in warm.values())
    cells = sum(s.kind == "attack" for s in plan.stages)
    times: dict[str, dict[str, list[float]]] = {v: {"init": [], "startup": [], "matrix": []}
                                               for v in ("ray-1", "ray-2", "local")}
    for r in range(rounds):
        for variant in ["ray-1", "ray-2", "ray-2", "ray-1", "local"]:
            if variant == "local":
                t0 = time.perf_counter()
                out = run_plan(plan, store, ctx, {"attack"}, progress=False)
                times[variant]["matrix"].append(time.perf_counter() - t0)
            else:
                workers = int(variant[-1])
                init, startup = start(workers)
                t0 = time.perf_counter()
                out = run_plan_ray(plan, store, ctx, {"attack"}, progress=False,
                                   options=RayOptions(workers=workers), log_dir=root / "logs")
                times[variant]["matrix"].append(time.perf_counter() - t0)
                times[variant]["init"].append(init)
                times[variant]["startup"].append(startup)
            done = sum(o.status == "done" for o in out.values())
            assert done == 2 * cells, (variant, [(o.label, o.status, o.error) for o in out.values()])
            print(f"round {r + 1} {variant}: matrix {times[variant]['matrix'][-1]:.1f} s", flush=True)
    med = {v: {k: round(statistics.median(x), 2) for k, x in t.items() if x} for v, t in times.items()}
    for v in ("ray-1", "ray-2"):
        med[v]["end_to_end"] = round(med[v]["startup"] + med[v]["matrix"], 2)
    ratio = round(med["ray-2"]["matrix"] / med["ray-1"]["matrix"], 3)
    ratio_e2e = round(med["ray-2"]["end_to_end"] / med["ray-1"]["end_to_end"], 3)
    per_task = round((med["ray-1"]["matrix"] - med["local"]["matrix"]) / (2 * cells), 3)
    print(f"\n{cells} cells ({2 * cells} stages), medians over {rounds} rounds")
    print(f"{'variant':8} {'ray.init s':>10} {'start-up s':>10} {'matrix s':>9} {'end-to-end s':>12}")
    for v, m in med.items():
        print(f"{v:8} {m.get('init', 0):10.2f} {m.get('startup', 0):10.2f} {m['matrix']:9.2f} "
              f"{m.get('end_to_end', m['matrix']):12.2f}")
    print(f"ratio 2 workers / 1 worker: matrix {ratio}, end-to-end {ratio_e2e} (target <= 0.65); Ray cost per "
          f"task vs in-process {per_task} s")
    if args.quick:
        return
    report = {
        "what": "wall time of 8 independent attack cells (16 stages) on a local Ray instance: 2 workers vs 1",
        "setup": {"cells": cells, "stages": 2 * cells, "attack": "pgd-linf, 10 steps, budgets 1/255..8/255",
                  "data": "synthetic-mammo, 400 images at 64 px (80 test images)", "model": "resnet10t, 2 epochs",
                  "threads_per_task": 1, "rounds": rounds,
                  "order": "ray-1 ray-2 ray-2 ray-1 local per round, medians reported",
                  "machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), shared",
                  "load_before": load_before, "load_after": os.getloadavg()[0]},
        "median_seconds": med,
        "ratio_2_vs_1_workers": {"matrix": ratio, "end_to_end": ratio_e2e, "target": 0.65},
        "ray_startup_overhead_s": {"ray_init": med["ray-2"]["init"], "instance_and_2_workers": med["ray-2"]["startup"],
                                   "instance_and_1_worker": med["ray-1"]["startup"]},
        "ray_cost_per_task_s": per_task,
        "seconds_all": times,
        "versions": {"ray": __import__("ray").__version__, "torch": torch.__version__},
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
