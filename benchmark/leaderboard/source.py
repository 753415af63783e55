"""Leaderboards from recorded runs: read a run's manifest, load its stored score artifacts, write the boards.

A run and `python -m benchmark leaderboard` go through the same function, so regenerating a leaderboard from the
store gives the same files as the run that made it, without recomputing anything.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import (
    read_attack,
    read_clean_scores,
    read_data,
    read_score,
    read_train_record,
    stored_gallery,
)
from benchmark.execution.store import Store
from benchmark.leaderboard.board import build_entries, write_leaderboard
from benchmark.leaderboard.entry import cell_name
from benchmark.leaderboard.gallery import save_attack_gallery
from benchmark.metrics import classification_metrics, to_jsonable
from benchmark.registry import get_component

__all__ = ["RunCells", "latest_run", "load_run", "publish_run"]


class RunCells:
    """A recorded run's scored cells: (row, flags) pairs, each board cell's score key, and provenance."""

    def __init__(self, cells: list[tuple[dict, dict[str, np.ndarray]]], keys: dict[tuple[str, str, str], str],
                 provenance: dict, dataset: str, store: Store, failed: list[dict] | None = None,
                 versions: dict[tuple[str, str], dict] | None = None) -> None:
        self.cells, self.keys, self.provenance, self.dataset = cells, keys, provenance, dataset
        self.store, self.failed, self.versions = store, failed or [], versions or {}

    def entries(self) -> list[dict]:
        """The run's overall leaderboard entries."""
        return build_entries(self.cells, self.dataset, self.provenance, self.failed, self.versions)

    def galleries(self, entries: list[dict], workdir: Path) -> dict[str, Path]:
        """Leaderboard gallery file -> PNG, drawn into workdir from the stored artifacts (or an older score's own)."""
        out, data_cache = {}, {}
        for e in entries:
            semantic = {a["cell"]: a for a in e.get("attacks", []) if a.get("threat") == "semantic"}
            for g in e.get("galleries", []):
                key = self.keys.get((e["model"], e["defense"], g["cell"]))
                if key is None:
                    continue
                # a GAN cell's gallery keeps the title it had when its attack stage drew it
                title = (f"{semantic[g['cell']]['attack']} vs {e['model']}+{e['defense']}" if g["cell"] in semantic
                         else g["title"])
                if (own := stored_gallery(self.store.path(key))) is not None:
                    out[g["file"]] = own
                elif (drawn := _draw(key, self.store, workdir / Path(g["file"]).name, title, data_cache)):
                    out[g["file"]] = drawn
        return out

    def write(self, entries: list[dict], folder: Path) -> Path:
        """Write these entries (normally `entries()`) as the leaderboard in folder, galleries included."""
        with tempfile.TemporaryDirectory(prefix="galleries-") as workdir:
            return write_leaderboard(folder, entries, self.dataset, self.galleries(entries, Path(workdir)))


def _draw(score_key: str, store: Store, path: Path, title: str, data_cache: dict) -> Path | None:
    """Original, adversarial and difference of a cell, from its stored attack, data and train artifacts."""
    deps = store.info(score_key).get("deps") or {}
    if not all(role in deps and store.has(deps[role]) for role in ("data", "train", "attack")):
        return None
    if deps["data"] not in data_cache:
        data_cache[deps["data"]] = read_data(store.path(deps["data"])).subset("test")
    test = data_cache[deps["data"]]
    adv_images, adv_scores, _ = read_attack(store.path(deps["attack"]))
    before = read_clean_scores(store.path(deps["train"]))
    threshold = read_score(store.path(score_key))[0]["threshold"]
    return save_attack_gallery(test.images, adv_images, test.labels, before, adv_scores, threshold, path, title)


def _versions(store: Store, key: str, memo: dict[str, dict]) -> dict:
    """The code versions of a stored artifact and of every artifact it was computed from (its stage record)."""
    if key not in memo:
        info = store.info(key) if store.has(key) else {}
        out = dict(info.get("versions") or {})
        for dep in (info.get("deps") or {}).values():
            out.update(_versions(store, dep, memo))
        memo[key] = out
    return memo[key]


def _cause(stage: dict, by_key: dict[str, dict]) -> str:
    """The error of a failed stage, or of the input that made it skip."""
    if stage["status"] == "failed":
        return stage.get("error") or "failed"
    for dep in (stage.get("deps") or {}).values():
        if dep in by_key and by_key[dep]["status"] in ("failed", "skipped"):
            return _cause(by_key[dep], by_key)
    return stage.get("error") or stage["status"]


def _failed_cell(stage: dict, by_key: dict[str, dict]) -> dict:
    cell = stage["cell"]
    try:
        threat = get_component("attacks", cell["attack"]).card.threat
    except BenchmarkError:
        threat = "linf"
    name = cell_name({"attack": cell["attack"], "budget": cell["budget"], "threat": threat})
    return {"model": cell["model"], "defense": cell["defense"], "attack": cell["attack"], "threat": threat,
            "cell": name + (" (sanity)" if cell.get("role") == "sanity" else ""), "error": _cause(stage, by_key)}


def _clean_only(stage: dict, store: Store) -> tuple[dict, dict] | None:
    """A (row, flags) pair with the clean metrics of an entry none of whose cells was scored, from its stored
    train and data artifacts; None when those are not stored (the train stage itself failed)."""
    deps, cell = stage.get("deps") or {}, stage["cell"]
    if not all(role in deps and store.has(deps[role]) for role in ("data", "train")):
        return None
    test = read_data(store.path(deps["data"])).subset("test")
    info = read_train_record(store.path(deps["train"]))
    scores = read_clean_scores(store.path(deps["train"]))
    threshold = float(info["threshold"])
    correct = (scores >= threshold).astype(int) == test.labels
    row = {"model": cell["model"], "defense": cell["defense"], "role": "clean", "attack": "-", "budget": 0.0,
           "clean": classification_metrics(test.labels, scores, threshold), "val_auc": info["val_auc"],
           "threshold": threshold, "train_seconds": info["seconds"], "n_test": len(test),
           "defense_info": info.get("defense_info"), "teacher": info.get("teacher"),
           "masking_probe": info.get("masking_probe"), "eot_samples": info.get("eot_samples", 1),
           "detection": info.get("detection"),
           **({"pretrained": info["pretrained"]} if info.get("pretrained") else {})}
    return to_jsonable(row), {"ids": test.ids.astype(str), "labels": test.labels, "clean_correct": correct}


def load_run(run_dir: Path, store_root: Path) -> RunCells:
    """Every scored cell of a recorded run, read from the store (fails with the key when an artifact is gone), the
    cells that failed, and the code version of every stage behind each entry."""
    manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    store = Store(store_root)
    cells, keys, failed, versions, memo = [], {}, [], {}, {}
    by_key = {s["key"]: s for s in manifest["stages"]}
    for stage in manifest["stages"]:
        if stage["kind"] != "score":
            continue
        if stage["status"] not in ("done", "cached"):
            if stage.get("cell"):  # runs recorded before cells were in the manifest cannot name their failures
                failed.append(_failed_cell(stage, by_key))
            continue
        if not store.has(stage["key"]):
            raise BenchmarkError(f"run {manifest['run_id']}: score artifact {stage['key'][:12]} ({stage['label']}) "
                                 f"is no longer in {store_root}; rerun the matrix")
        row, flags = read_score(store.path(stage["key"]))
        cells.append((row, flags))
        versions.setdefault((row["model"], row["defense"]), {}).update(_versions(store, stage["key"], memo))
        if row.get("role", "board") == "board":
            keys[(row["model"], row["defense"], cell_name(row))] = stage["key"]
    scored = {(r["model"], r["defense"]) for r, _ in cells}
    for stage in manifest["stages"]:  # entries none of whose cells was scored keep their place, with the reason
        cell = stage.get("cell")
        if stage["kind"] == "score" and cell and (cell["model"], cell["defense"]) not in scored:
            clean = _clean_only(stage, store)
            if clean is not None:
                cells.append(clean)
                scored.add((cell["model"], cell["defense"]))
                versions[(cell["model"], cell["defense"])] = _versions(store, stage["deps"]["train"], memo)
    config = manifest.get("config") or {}
    provenance = {"config_digest": manifest["config_digest"], "seed": manifest["seed"], "device": manifest["device"],
                  "date": str(manifest.get("started", ""))[:10], "git_commit": manifest["git_commit"],
                  "versions": manifest["versions"], "run_id": manifest["run_id"],
                  "image_size": (config.get("dataset") or {}).get("image_size")}
    return RunCells(cells, keys, provenance, (config.get("dataset") or {}).get("name", "unknown"), store,
                    failed, versions)


def latest_run(store_root: Path, digest: str) -> Path | None:
    """The newest recorded run of the config with this digest (a matrix run, not a single cell), or None."""
    records = Path(store_root) / "records"
    for run_dir in sorted((p for p in records.glob("*") if p.is_dir()), key=lambda p: p.name, reverse=True):
        try:
            manifest = json.loads((run_dir / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if manifest.get("config_digest") == digest:
            return run_dir
    return None


def publish_run(run_dir: Path, store_root: Path, folder: Path) -> Path | None:
    """Write the leaderboard of a recorded run into folder; None when the run scored no cell."""
    run = load_run(run_dir, store_root)
    if not run.cells:
        return None
    return run.write(run.entries(), folder)
