"""Local worker processes: a fixed 16-stage slice of the default matrix with 1 worker vs 2 workers.

    python benchmarks/bench_workers.py            # writes benchmarks/results/workers.json and prints a table
    python benchmarks/bench_workers.py --quick    # a smoke run (120 images, 4 cells), nothing written

Slice: configs/default.toml's data set (synthetic-mammo, 800 images at 64 px, 160 test images), its [attack]
section and its first model, resnet10t, undefended, trained once for 2 epochs (the default recipe's 20 epochs would
take minutes and change no attack's cost), then 8 independent cells: the default matrix's fgsm at 1/255 and 2/255
and its pgd-linf (10 steps) at 1/255 to 6/255 (1/255 and 2/255 are the default matrix's own), each an attack stage
and a score stage: 16 stages, none depending on another cell's. The large-budget sanity cell is left out.

Every timed run starts from a fresh store holding only the data and train artifacts (copied from one seeded store),
so it computes exactly the 16 stages; `run_plan` is timed end to end, worker start-up included (for 2 workers:
spawning two processes that import torch, timm and ART). 1 worker computes in this process, 2 workers in two
spawned processes; both with one torch thread per stage. Each round runs 1, 2, 2, 1 workers; medians are reported.
The per-image results (adversarial images and per-image flags of every stage) of the 1- and 2-worker runs are
checked to be bit-identical.
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
import tomllib
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark.config import parse_config  # noqa: E402
from benchmark.execution.local import run_plan  # noqa: E402
from benchmark.execution.planner import Plan, plan_matrix  # noqa: E402
from benchmark.execution.store import Store  # noqa: E402
from benchmark.stages import StageContext  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "workers.json"
TARGET = 0.6


def slice_config(root: Path, quick: bool, model: str = "resnet10t") -> object:
    """configs/default.toml cut down to the 8 cells above (4 with --quick, on 120 images)."""
    raw = tomllib.loads((ROOT / "configs" / "default.toml").read_text())
    raw["run"].update(device="cpu", store=str(root / "seed"), leaderboards=str(root / "lb"))
    if quick:
        raw["dataset"]["options"]["count"] = 120
    raw["training"].update(epochs=2)
    raw["models"] = [m for m in raw["models"] if (m["name"] if isinstance(m, dict) else m) == model]
    if not raw["models"]:
        sys.exit(f"--model {model}: not one of configs/default.toml's models")
    raw["defenses"] = ["none"]
    fgsm = next(a for a in raw["attacks"] if a["name"] == "fgsm")
    pgd = next(a for a in raw["attacks"] if a["name"] == "pgd-linf")
    pgd = {**pgd, "budgets": [f"{i}/255" for i in range(1, 3 if quick else 7)]}
    fgsm = {**fgsm, "budgets": fgsm["budgets"][:2]}
    raw["attacks"] = [fgsm, pgd]
    raw.setdefault("attack", {})["sanity_budget"] = 0
    return parse_config(raw, "bench_workers (a slice of configs/default.toml)")


def arrays(folder: Path) -> dict[str, np.ndarray]:
    """Every array of an artifact folder (each .npz member)."""
    out = {}
    for path in sorted(folder.glob("*.npz")):
        with np.load(path, allow_pickle=False) as z:
            out.update({f"{path.name}:{k}": z[k] for k in z.files})
    return out


def identical(a: Store, b: Store, keys: list[str]) -> tuple[bool, int]:
    """(every array of every artifact in keys bit-identical in a and b, number of arrays compared)."""
    same, compared = True, 0
    for key in keys:
        left, right = arrays(a.path(key)), arrays(b.path(key))
        same &= left.keys() == right.keys()
        for name, value in left.items():
            other = right.get(name)
            same &= other is not None and value.dtype == other.dtype and np.array_equal(value, other)
            compared += 1
    return bool(same), compared


def main() -> None:
    """Seed, time the variants, check the results, print a table, write results/workers.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="120 images, 4 cells, 1 round, nothing written")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (each runs 1, 2, 2, 1 workers)")
    parser.add_argument("--model", default="resnet10t", help="which of the default matrix's models (default resnet10t)")
    parser.add_argument("--out", type=Path, default=None, help=f"results file (default {RESULTS}; none with --quick)")
    args = parser.parse_args()
    out = args.out or (None if args.quick else RESULTS)
    rounds = 1 if args.quick else args.rounds
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"warning: load average {load_before[0]:.2f}: other jobs share the cores, the ratio will be worse",
              file=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    try:
        config = slice_config(root, args.quick, args.model)
        plan = plan_matrix(config)
        ctx = StageContext(torch.device("cpu"), config.attack_batch_size, False)
        inputs = [s for s in plan.stages if s.kind in ("data", "train")]
        timed = [s for s in plan.stages if s.kind not in ("data", "train")]
        t0 = time.perf_counter()
        seeded = run_plan(Plan(inputs, []), Store(root / "seed"), ctx, progress=False)
        assert all(o.status == "done" for o in seeded.values()), [(o.label, o.error) for o in seeded.values()]
        seed_s = time.perf_counter() - t0
        print(f"seeded {len(inputs)} input stages in {seed_s:.1f} s; timing {len(timed)} stages", flush=True)

        times: dict[int, list[float]] = {1: [], 2: []}
        startup: list[float] = []
        busy: dict[int, list[float]] = {1: [], 2: []}  # the stages' own seconds, summed
        stores: dict[int, Store] = {}
        for r in range(rounds):
            for workers in (1, 2, 2, 1):
                store = Store(root / f"r{r}-w{workers}-{len(times[workers])}")
                shutil.copytree(root / "seed" / "objects", store.objects)
                began, t0 = time.time(), time.perf_counter()
                outcomes = run_plan(plan, store, ctx, progress=False, workers=workers)
                times[workers].append(time.perf_counter() - t0)
                busy[workers].append(sum(outcomes[s.key].seconds for s in timed))
                status = {s.key: outcomes[s.key].status for s in plan.stages}
                assert all(status[s.key] == "cached" for s in inputs), status
                assert all(status[s.key] == "done" for s in timed), [
                    (o.label, o.status, o.error) for o in outcomes.values() if o.status not in ("done", "cached")]
                if workers == 2:  # from the start of the run to the first stage computing in a worker
                    startup.append(min(outcomes[s.key].started for s in timed) - began)
                stores.setdefault(workers, store)
                print(f"round {r + 1}, {workers} worker{'s' * (workers > 1)}: {times[workers][-1]:.1f} s", flush=True)
        same, compared = identical(stores[1], stores[2], [s.key for s in timed])
        med = {w: round(statistics.median(t), 2) for w, t in times.items()}
        ratio = round(med[2] / med[1], 3)
        slowdown = round(statistics.median(busy[2]) / statistics.median(busy[1]), 3)
        load_after = os.getloadavg()
        print(f"\n{len(timed)} stages ({len(timed) // 2} cells), medians over {rounds} round(s) of 1, 2, 2, 1 workers")
        print(f"{'workers':>7} {'seconds':>8}")
        for w, s in med.items():
            print(f"{w:>7} {s:8.2f}")
        print(f"ratio 2 workers / 1 worker: {ratio} (target <= {TARGET}: {'met' if ratio <= TARGET else 'MISSED'}); "
              f"worker start-up {statistics.median(startup):.1f} s; per-image results "
              f"{'identical' if same else 'DIFFER'} ({compared} arrays compared); load {load_before[0]:.2f} before, "
              f"{load_after[0]:.2f} after")
        print(f"the stages' own seconds, summed: {statistics.median(busy[1]):.1f} (1 worker), "
              f"{statistics.median(busy[2]):.1f} (2 workers): each stage x{slowdown} slower with both cores busy")
        if out is not None:
            report = {
                "what": "wall time of a 16-stage slice of the default matrix (8 independent cells) on the local "
                        "executor: 2 worker processes vs 1 worker",
                "setup": {"config": f"configs/default.toml: synthetic-mammo at 64 px, {args.model}+none (trained 2 "
                                    "epochs, cached), fgsm 1/255 2/255, pgd-linf (10 steps) 1/255..6/255, no sanity "
                                    "cell" if not args.quick else "quick: 120 images, 4 cells",
                          "images": config.dataset.options.get("count"), "stages": len(timed),
                          "threads_per_worker": 1, "rounds": rounds,
                          "order": "1 2 2 1 workers per round, each on a fresh store seeded with data and train",
                          "machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})",
                          "load_before": load_before, "load_after": load_after, "seed_seconds": round(seed_s, 1)},
                "median_seconds": {f"{w}_worker{'s' * (w > 1)}": s for w, s in med.items()},
                "ratio_2_vs_1_workers": ratio, "target": TARGET, "met": ratio <= TARGET,
                "worker_startup_seconds": round(statistics.median(startup), 2),
                "stage_seconds_summed": {str(w): round(statistics.median(b), 2) for w, b in busy.items()},
                "per_stage_slowdown_with_both_cores_busy": slowdown,
                "per_image_results_identical": same, "arrays_compared": compared,
                "seconds_all": {str(w): [round(t, 3) for t in ts] for w, ts in times.items()},
                "versions": {"torch": torch.__version__, "python": platform.python_version()},
            }
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=1) + "\n")
            print(f"written: {out}")
        if not same:
            sys.exit("per-image results differ between 1 and 2 workers")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
