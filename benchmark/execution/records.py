"""Run records: one row per cell as CSV and Parquet, and a manifest of config, versions, commit and timings."""
from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config import MatrixConfig
from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import read_score
from benchmark.execution.local import StageOutcome
from benchmark.execution.planner import Plan
from benchmark.execution.store import Store

__all__ = ["collect_cells", "flatten_row", "write_run", "read_run", "versions", "git_commit", "resolve_run"]

_PACKAGES = ("mammo-robustness-bench", "torch", "torchvision", "timm", "adversarial-robustness-toolbox",
             "numpy", "pydicom", "pandas", "scikit-learn")


def versions() -> dict[str, str]:
    """Versions of Python and the packages that decide results."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(root: Path | None = None) -> str | None:
    """The checkout's commit (with '+dirty' when files changed), or None outside git."""
    root = root or Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        # the committed leaderboards are outputs: rewriting them does not make the code that produced them dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)leaderboards"], cwd=root, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def collect_cells(plan: Plan, store: Store, outcomes: dict[str, StageOutcome]
                  ) -> list[tuple[dict, dict[str, np.ndarray]]]:
    """(row, per-image flags) of every cell whose score is stored, in plan order."""
    out = []
    for stage in plan.cells:
        if outcomes.get(stage.key) and outcomes[stage.key].status in ("done", "cached"):
            out.append(read_score(store.path(stage.key)))
    return out


def flatten_row(row: dict, prefix: str = "") -> dict:
    """Nested metric dicts as flat columns: a rate {value, lo, hi} becomes name, name_lo, name_hi."""
    flat: dict = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and "value" in value:
            flat[name] = value["value"]
            for extra in ("lo", "hi", "successes", "n"):
                if extra in value:
                    flat[f"{name}_{extra}"] = value[extra]
        elif isinstance(value, dict):
            flat.update(flatten_row(value, f"{name}_"))
        elif not isinstance(value, (list, tuple)):
            flat[name] = value
    return flat


def _stage_record(outcome: StageOutcome, stage: object | None) -> dict:
    """A stage's outcome for the manifest, with its deps and (score stages) its cell, so that a leaderboard can
    name a cell that failed and keep its entry."""
    record = asdict(outcome)
    if stage is not None:
        record["deps"] = dict(stage.deps)
        if stage.cell is not None:
            record["cell"] = {"model": stage.cell[0], "defense": stage.cell[1], "attack": stage.cell[2],
                              "budget": stage.cell[3], "role": stage.params["cell"].get("role", "board")}
    return record


def write_run(run_dir: Path, config: MatrixConfig, outcomes: dict[str, StageOutcome],
              cells: list[tuple[dict, dict]], device: str, started: float, plan: Plan | None = None) -> pd.DataFrame:
    """Save results.csv, results.parquet and manifest.json for a run; return the results table."""
    run_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([flatten_row(row) for row, _ in cells])
    table.to_csv(run_dir / "results.csv", index=False)
    table.to_parquet(run_dir / "results.parquet", index=False)
    counts = {s: sum(o.status == s for o in outcomes.values()) for s in ("done", "cached", "failed", "skipped")}
    by_key = plan.by_key() if plan is not None else {}
    manifest = {
        "run_id": run_dir.name, "config_source": config.source, "config_digest": config.digest(),
        "config": json.loads(json.dumps(asdict(config), default=str)), "seed": config.run.seed,
        "device": device, "versions": versions(), "git_commit": git_commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 3), "counts": counts,
        "stages": [_stage_record(o, by_key.get(o.key)) for o in outcomes.values()],
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
    return table


def resolve_run(store_root: Path, run: str) -> Path:
    """A run folder from an id, 'latest', or a path."""
    candidates = [Path(run), store_root / "records" / run]
    if run == "latest":
        pointer = store_root / "records" / "LATEST"
        if not pointer.is_file():
            raise BenchmarkError(f"no runs recorded under {store_root}/records yet; run `python -m benchmark run`")
        candidates = [store_root / "records" / pointer.read_text().strip()]
    for path in candidates:
        if (path / "manifest.json").is_file():
            return path
    known = sorted(p.name for p in (store_root / "records").glob("*") if p.is_dir())[-5:]
    raise BenchmarkError(f"no run '{run}' under {store_root}/records (latest ids: {', '.join(known) or 'none'})")


def read_run(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    """Manifest and results table of a recorded run."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    table = pd.read_csv(run_dir / "results.csv") if (run_dir / "results.csv").stat().st_size > 1 else pd.DataFrame()
    return manifest, table
