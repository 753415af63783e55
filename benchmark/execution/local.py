"""Run a plan on this machine: dependency order, cached stages skipped, failures contained to their cells.

One worker computes the stages in this process, in plan order; several compute independent stages side by side in
worker processes (`benchmark.execution.worker_pool`). Either way every stage runs with one torch thread on the CPU,
so the numbers do not depend on the number of workers. The DAG loop is `benchmark.execution.scheduler.schedule`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from benchmark.execution.planner import Plan
from benchmark.execution.scheduler import BY_ANOTHER_RUN, InlinePool, StageOutcome, execute_stage, schedule
from benchmark.execution.store import Store
from benchmark.stages import StageContext

__all__ = ["BY_ANOTHER_RUN", "StageOutcome", "run_plan"]

_execute = execute_stage  # the name the Ray executor and older callers import


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to n for the block (None: left as they are), then restored."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_plan(plan: Plan, store: Store, ctx: StageContext, force: set[str] = frozenset(),
             progress: bool = True, run_id: str | None = None, workers: int = 1) -> dict[str, StageOutcome]:
    """Execute every stage not yet stored; `force` names stage kinds to recompute (and the dependents of those
    this process recomputed); run_id goes into each computed artifact's record and the store's stage log.
    workers: stages computed at once (one torch thread each on the CPU); 1 computes them in this process.
    On CUDA there is one worker, in this process, with torch's threads left as they are."""
    cpu = ctx.device.type != "cuda"
    if workers <= 1 or not cpu:
        with _torch_threads(1 if cpu else None):
            return schedule(plan, store, InlinePool(store, ctx, run_id), force, progress)
    from benchmark.execution.worker_pool import WorkerPool

    with WorkerPool(workers, store.root, ctx, run_id, threads=1) as pool:
        return schedule(plan, store, pool, force, progress)
