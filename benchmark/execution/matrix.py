"""The one front door for running: validate, plan, execute, record, and write the leaderboard."""
from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from benchmark.atomic_file import atomic_write
from benchmark.compatibility import CompatibilityWarning
from benchmark.config import MatrixConfig
from benchmark.device import resolve_device
from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import DATA, read_data_summary
from benchmark.execution.local import StageOutcome, run_plan
from benchmark.execution.planner import STAGE_KINDS, Plan, plan_matrix
from benchmark.execution.records import collect_cells, write_run
from benchmark.execution.store import Store
from benchmark.execution.worker_pool import worker_count
from benchmark.leaderboard.source import publish_run
from benchmark.stages import StageContext

if TYPE_CHECKING:
    from benchmark.execution.ray_cluster import RayOptions

__all__ = ["RunResult", "check_writable", "run"]


@dataclass
class RunResult:
    """What a run produced: its record folder, every stage's outcome, the results table, the leaderboard path."""

    run_dir: Path
    plan: Plan
    outcomes: dict[str, StageOutcome]
    table: pd.DataFrame
    leaderboard: Path | None
    seconds: float

    @property
    def failed(self) -> list[StageOutcome]:
        """Stages that failed or were skipped because an input failed."""
        return [o for o in self.outcomes.values() if o.status in ("failed", "skipped")]


def check_writable(path: Path, what: str) -> None:
    """Fail before any work when path cannot be created or written (probe, then remove the probe)."""
    probe_at = path
    while not probe_at.exists():
        probe_at = probe_at.parent
    if not probe_at.is_dir():
        raise BenchmarkError(f"{what} folder {path} cannot be created: {probe_at} is a file, not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".write-probe-", dir=probe_at)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise BenchmarkError(f"{what} folder {path} is not writable ({exc.strerror}); "
                             f"choose another with run.{what} in the config") from None


def _warn_skipped(plan: Plan, store: Store, outcomes: dict[str, StageOutcome]) -> None:
    """One line on stderr per data stage that skipped unreadable files (dataset.skip_bad), saying where the list is."""
    for stage in plan.stages:
        if stage.kind != "data" or outcomes[stage.key].status not in ("done", "cached"):
            continue
        skipped = read_data_summary(store.path(stage.key)).get("meta", {}).get("skipped") or []
        if skipped:
            summary = store.path(stage.key) / DATA.summary
            print(f"warning: {stage.label}: {len(skipped)} unreadable files skipped (dataset.skip_bad); "
                  f"list with reasons: {summary} (meta.skipped)", file=sys.stderr)


def _new_run_dir(records: Path, started: float, digest: str) -> Path:
    """Create this run's record folder: start time, config digest and a random suffix, so runs never share one."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    run_dir = records / f"{stamp}-{digest[:8]}-{secrets.token_hex(3)}"
    records.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(exist_ok=False)  # a clash (1 in 16 million per second and config) fails rather than merges
    return run_dir


def _write_latest(records: Path, run_id: str) -> None:
    """Point records/LATEST at run_id atomically: a reader never sees half a name."""
    atomic_write(records / "LATEST", lambda fh: fh.write(f"{run_id}\n".encode()))


def run(config: MatrixConfig, force: tuple[str, ...] = (), progress: bool = True,
        leaderboard: bool = True, backend: str = "local", ray_options: RayOptions | None = None,
        workers: int | None = None) -> RunResult:
    """Run every cell of config not already stored; write run records and (for matrices) the leaderboard.
    backend "ray" runs each stage as a Ray task (benchmark/execution/ray_cluster.py), configured by ray_options.
    workers: with the local backend, stages computed at once in worker processes (default $BENCHMARK_WORKERS, else
    this machine's CPU count; 1 on CUDA); each stage runs with one torch thread, so results do not depend on it."""
    started = time.time()
    for kind in force:
        if kind not in STAGE_KINDS:
            raise BenchmarkError(f"--force {kind}: unknown stage; choose from {', '.join(STAGE_KINDS)}")
    with warnings.catch_warnings(record=True) as caught:  # compatibility warnings: one line each on stderr
        warnings.simplefilter("always", CompatibilityWarning)
        plan = plan_matrix(config)  # unknown names, bad budgets, incompatible cells fail here, before any work
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, CompatibilityWarning)):
        print(f"warning: {message}", file=sys.stderr)
    for w in caught:  # any other warning goes on as it came
        if not issubclass(w.category, CompatibilityWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if backend == "ray":  # imported only when asked for: Ray is an optional extra
        from benchmark.execution.ray_cluster import RayOptions, cluster_device, run_plan_ray

        ray_options = ray_options or RayOptions()
        device = cluster_device(config.run.device, ray_options)  # the cluster's GPUs count, not this machine's
    elif backend == "local":
        device = resolve_device(config.run.device)
        workers = worker_count(workers, device)
    else:
        raise BenchmarkError(f"--backend {backend}: unknown backend; choose local or ray")
    check_writable(config.run.store, "store")
    if leaderboard:
        check_writable(config.run.leaderboards, "leaderboards")
    if device.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    store = Store(config.run.store)
    ctx = StageContext(device, config.attack_batch_size, progress, cache_dir=config.run.store / "cache",
                       secrets_dir=config.run.store / "secrets", max_memory=config.run.max_memory)
    run_dir = _new_run_dir(config.run.store / "records", started, config.digest())
    run_id = run_dir.name
    if backend == "ray":  # each computed stage's output goes to run_dir/logs/<key>.log
        outcomes = run_plan_ray(plan, store, ctx, set(force), progress, ray_options, run_dir / "logs", run_id)
    else:
        outcomes = run_plan(plan, store, ctx, set(force), progress, run_id, workers)
    _warn_skipped(plan, store, outcomes)
    cells = collect_cells(plan, store, outcomes)
    table = write_run(run_dir, config, outcomes, cells, str(device), started, plan)
    _write_latest(config.run.store / "records", run_id)
    board = None
    if leaderboard and cells:  # the same path as `python -m benchmark leaderboard`: from the run's record
        board = publish_run(run_dir, config.run.store, config.run.leaderboards / config.dataset.name)
    return RunResult(run_dir, plan, outcomes, table, board, time.time() - started)
