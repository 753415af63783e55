"""Clean test AUC of every registered model on the default data, trained through the engine as `make run` trains it.

    python benchmarks/model_auc.py --label after          # all models; writes benchmarks/results/model_auc.json
    python benchmarks/model_auc.py --models resnet18 --no-write
    python benchmarks/model_auc.py --quick                # a smoke run (count 120, 2 epochs), nothing written
    python benchmarks/model_auc.py --models resnet18 --train augment='"strong"' epochs=60 batch_size=16 --label strong

Data and recipe come from configs/default.toml ([dataset] and [training]); [[models]] is replaced by every registered
model (each with no per-model keys, so a model's own recipe defaults apply) and [[attacks]] by one cheap cell (FGSM at
1/255) because a matrix needs an attack. The store is a folder under /tmp, so the repository's runs/ is untouched and
a rerun with unchanged code reuses every stage. Per model: test AUC with its stratified bootstrap interval
(benchmark.metrics.bootstrap_auc on the deployed model's test scores), val AUC and best epoch (train.json), training
seconds (train.json: the training loop itself, without data or attack stages).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.config import DEFAULT_CONFIG, parse_config
from benchmark.execution.artifacts import TRAIN, read_clean_scores, read_data, read_train_record
from benchmark.execution.matrix import run
from benchmark.execution.store import Store
from benchmark.metrics import bootstrap_auc
from benchmark.registry import list_components

RESULTS = Path(__file__).parent / "results" / "model_auc.json"
TARGET = 0.85


def measure(models: list[str], store: Path, quick: bool,
            train: dict | None = None) -> tuple[list[dict], dict]:
    """Train models through benchmark.execution.matrix.run on the default data; one row per model and the setup used.
    `train` holds per-model recipe keys (as a [[models]] table would), e.g. {"augment": "strong", "epochs": 60}."""
    raw = tomllib.loads(DEFAULT_CONFIG.read_text())
    raw["run"] = {**raw.get("run", {}), "store": str(store), "leaderboards": str(store / "leaderboards")}
    raw["models"] = [{"name": name, **(train or {})} for name in models]
    raw["defenses"] = ["none"]
    raw["attacks"] = [{"name": "fgsm", "budgets": ["1/255"]}]
    if quick:
        raw["dataset"]["options"] = {**raw["dataset"].get("options", {}), "count": 120}
        raw["training"] = {**raw.get("training", {}), "epochs": 2}
    config = parse_config(raw, str(DEFAULT_CONFIG))
    start = time.perf_counter()
    result = run(config, progress=False, leaderboard=False)
    wall = time.perf_counter() - start
    failed = [f"{o.label}: {o.error}" for o in result.failed] if hasattr(result, "failed") else []
    objects = Store(store)
    data_key = next(s.key for s in result.plan.stages if s.kind == "data")
    test = read_data(objects.path(data_key)).subset("test")
    rows = []
    names = [m.name for m in config.models]
    for stage in (s for s in result.plan.stages if s.kind == "train" and s.params["model"]["name"] in names):
        folder = objects.path(stage.key)
        if not (folder / TRAIN.record).is_file():
            rows.append({"model": stage.params["model"]["name"], "error": "training failed"})
            continue
        info = read_train_record(folder)
        auc = bootstrap_auc(test.labels, read_clean_scores(folder), n_boot=1000, seed=0)
        spec = config.models[names.index(info["model"])]  # a teacher outside the list has no row of its own
        rows.append({"model": info["model"], "test_auc": round(auc["value"], 4), "test_auc_lo": round(auc["lo"], 4),
                     "test_auc_hi": round(auc["hi"], 4), "val_auc": round(info["val_auc"], 4),
                     "best_epoch": info["best_epoch"], "train_seconds": round(info["seconds"], 1),
                     "parameters": info["parameters"], "recipe": {k: v for k, v in vars(spec.train).items()
                                                                  if k != "checkpoint"},
                     "options": spec.options})
    setup = {"dataset": raw["dataset"], "training_section": raw.get("training", {}), "seed": config.run.seed,
             "test_n": len(test.labels), "test_positives": int(test.labels.sum()),
             "wall_seconds": round(wall, 1), "failed": failed, "machine": platform.machine(),
             "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    return rows, setup


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| model | test AUC [95% CI] | val AUC | best epoch | train s | epochs | lr | wd | batch | augment "
             "| teacher |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['error']} | | | | | | | | | |")
            continue
        flag = "" if r["test_auc"] >= TARGET else " (below 0.85)"
        rec = r["recipe"]
        lines.append(f"| {r['model']} | {r['test_auc']:.3f} [{r['test_auc_lo']:.3f}, {r['test_auc_hi']:.3f}]{flag} "
                     f"| {r['val_auc']:.3f} | {r['best_epoch']} | {r['train_seconds']:.0f} | {rec['epochs']} "
                     f"| {rec['lr']:g} | {rec['weight_decay']:g} | {rec['batch_size']} | {rec.get('augment', 'light')} "
                     f"| {rec.get('distill') or '-'} |")
    return "\n".join(lines)


def main() -> None:
    """Measure, print the table, and record it under --label in benchmarks/results/model_auc.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="registered model names (default: all)")
    parser.add_argument("--store", type=Path, default=Path(tempfile.gettempdir()) / "model_auc_store")
    parser.add_argument("--label", default="current", help="key under which the rows are recorded")
    parser.add_argument("--quick", action="store_true", help="smoke run: 120 images, 2 epochs, nothing written")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--train", nargs="*", default=[], metavar="KEY=VALUE",
                        help="recipe keys for every measured model, TOML values: augment='\"strong\"' epochs=60")
    args = parser.parse_args()
    models = args.models or [e.name for e in list_components("models")]
    train = {k: tomllib.loads(f"v = {v}")["v"] for k, v in (item.split("=", 1) for item in args.train)}
    rows, setup = measure(models, args.store, args.quick, train)
    setup["train_overrides"] = train
    print(table(rows))
    print(f"wall {setup['wall_seconds']} s (data, training, one FGSM cell per model, scoring)")
    if args.quick or args.no_write:
        return
    recorded = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    recorded[args.label] = {"setup": setup, "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(recorded, indent=1) + "\n")
    print(f"wrote {RESULTS} [{args.label}]")


if __name__ == "__main__":
    main()
