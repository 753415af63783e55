"""The one DAG loop every executor runs: stages start once their inputs are settled, cached stages are skipped,
a failed stage skips only its dependents, and `force` recomputes a stage kind and what this run recomputed from it.

Where a stage runs is a `StagePool`'s business: this process (`InlinePool`), worker processes
(`benchmark.execution.worker_pool.WorkerPool`) or Ray tasks (`benchmark.execution.ray_cluster`). The semantics
live here, once.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Protocol

from tqdm.auto import tqdm

from benchmark.errors import BenchmarkError
from benchmark.execution.planner import Plan, Stage
from benchmark.execution.store import Store
from benchmark.stages import STAGE_FUNCTIONS, StageContext

__all__ = ["BY_ANOTHER_RUN", "InlinePool", "StageOutcome", "StagePool", "execute_stage", "schedule"]

BY_ANOTHER_RUN = "computed by another run while this one waited"


@dataclass
class StageOutcome:
    """What happened to one stage: done (computed now), cached (stored before, or by another run while this one
    waited for it), failed or skipped (an input failed). started: when its computation began (time.time(), on the
    machine that ran it), None when nothing was computed."""

    key: str
    kind: str
    label: str
    status: str
    seconds: float = 0.0
    error: str | None = None
    detail: list[str] = field(default_factory=list)
    started: float | None = None


def execute_stage(stage: Stage, store: Store, ctx: StageContext, force: bool,
                  run_id: str | None = None) -> StageOutcome:
    """Compute one stage into the store: done, cached (another run stored it while this one waited) or failed.
    The one definition of how a stage fails, wherever it runs."""
    inputs = {role: store.path(key) for role, key in stage.deps.items()}
    started, start = time.time(), time.perf_counter()
    record = {"kind": stage.kind, "label": stage.label, "params": stage.params, "deps": stage.deps,
              "versions": stage.versions, "run_id": run_id}
    try:
        _, computed = store.compute(stage.key, lambda out: STAGE_FUNCTIONS[stage.kind](stage.params, inputs, out, ctx),
                                    record, force)
    except KeyboardInterrupt:
        raise
    except BenchmarkError as exc:  # a user-fixable problem inside one cell: say it in one line, go on
        return StageOutcome(stage.key, stage.kind, stage.label, "failed", time.perf_counter() - start, str(exc),
                            started=started)
    except Exception as exc:  # an entry's bug: keep the traceback for the run record, go on with the matrix
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return StageOutcome(stage.key, stage.kind, stage.label, "failed", time.perf_counter() - start,
                            f"{type(exc).__name__}: {first}", traceback.format_exc().splitlines()[-12:],
                            started=started)
    if not computed:
        return StageOutcome(stage.key, stage.kind, stage.label, "cached", time.perf_counter() - start,
                            detail=[BY_ANOTHER_RUN], started=started)
    return StageOutcome(stage.key, stage.kind, stage.label, "done", time.perf_counter() - start, started=started)


class StagePool(Protocol):
    """Somewhere to compute stages. `schedule` submits a stage only when `free()` is positive, and only stages whose
    inputs are stored; `wait` blocks until at least one submitted stage has finished and returns the outcomes of
    all that have (each submitted stage's outcome comes back exactly once, failed if it could not be computed)."""

    def free(self) -> int:
        """How many more stages may be submitted now."""

    def running(self) -> int:
        """Stages submitted whose outcome has not been returned yet."""

    def submit(self, stage: Stage, must: bool) -> None:
        """Start computing stage (must: recompute even if stored, as execute_stage's force)."""

    def wait(self) -> list[StageOutcome]:
        """Outcomes of finished stages: at least one, blocking until then."""

    def cancel(self) -> None:
        """Stop whatever is running (Ctrl-C, or a lost driver); stored stages stay stored."""


class InlinePool:
    """One stage at a time in this process: `wait` computes the submitted stage."""

    def __init__(self, store: Store, ctx: StageContext, run_id: str | None = None) -> None:
        self.store, self.ctx, self.run_id = store, ctx, run_id
        self._pending: tuple[Stage, bool] | None = None

    def free(self) -> int:
        return 0 if self._pending else 1

    def running(self) -> int:
        return 1 if self._pending else 0

    def submit(self, stage: Stage, must: bool) -> None:
        assert self._pending is None, "InlinePool computes one stage at a time"
        self._pending = (stage, must)

    def wait(self) -> list[StageOutcome]:
        (stage, must), self._pending = self._pending, None
        return [execute_stage(stage, self.store, self.ctx, must, self.run_id)]

    def cancel(self) -> None:
        self._pending = None


def schedule(plan: Plan, store: Store, pool: StagePool, force: set[str] = frozenset(),
             progress: bool = True) -> dict[str, StageOutcome]:
    """Execute every stage of plan not yet stored on pool; outcomes by key, in plan order.

    A stage is settled as skipped when an input failed or was skipped, as cached when stored and not forced, and
    is otherwise submitted, with must (recompute even if stored) when its kind is in force or an input was
    recomputed by this run. Stages are submitted in plan order as pool slots free up, so one slot computes the plan
    exactly in order."""
    outcomes: dict[str, StageOutcome] = {}
    recomputed: set[str] = set()  # stages this run recomputed though stored (forced): their dependents are stale
    forced: set[str] = set()  # stages submitted with must
    waiting = list(plan.stages)  # dependency order: a stage's inputs come before it
    bar = tqdm(total=len(plan.stages), desc="matrix", unit="stage", disable=not progress, dynamic_ncols=True)

    def settle(outcome: StageOutcome) -> None:
        outcomes[outcome.key] = outcome
        if outcome.status == "done" and outcome.key in forced:
            recomputed.add(outcome.key)
        bar.update(1)
        bar.set_postfix_str(f"{pool.running()} running; {outcome.label[:50]}", refresh=False)

    try:
        while waiting or pool.running():
            blocked = []
            for stage in waiting:
                if any(k not in outcomes for k in stage.deps.values()):
                    blocked.append(stage)
                    continue
                failed = [k for k in stage.deps.values() if outcomes[k].status in ("failed", "skipped")]
                must = stage.kind in force or any(k in recomputed for k in stage.deps.values())
                if failed:
                    settle(StageOutcome(stage.key, stage.kind, stage.label, "skipped",
                                        error=f"input failed: {outcomes[failed[0]].label}"))
                elif store.has(stage.key) and not must:
                    settle(StageOutcome(stage.key, stage.kind, stage.label, "cached"))
                elif pool.free() > 0:
                    pool.submit(stage, must)
                    if must:
                        forced.add(stage.key)
                    bar.set_postfix_str(f"{pool.running()} running; {stage.label[:50]}")
                else:
                    blocked.append(stage)
            if len(blocked) == len(waiting) and not pool.running() and waiting:
                raise RuntimeError(f"plan is not in dependency order at {blocked[0].label}")
            waiting = blocked
            if pool.running():
                for outcome in pool.wait():
                    settle(outcome)
    except BaseException:  # Ctrl-C or a lost driver: stop what runs; stored stages stay stored
        pool.cancel()
        raise
    finally:
        bar.close()
    return {s.key: outcomes[s.key] for s in plan.stages}
