"""Run a plan in this process: dependency order, cached stages skipped, failures contained to their cells."""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from benchmark.errors import BenchmarkError
from benchmark.execution.planner import Plan, Stage
from benchmark.stages import STAGE_FUNCTIONS, StageContext
from benchmark.execution.store import Store

__all__ = ["StageOutcome", "run_plan"]

BY_ANOTHER_RUN = "computed by another run while this one waited"


@dataclass
class StageOutcome:
    """What happened to one stage: done (computed now), cached (stored before, or by another run while this one
    waited for it), failed or skipped (an input failed)."""

    key: str
    kind: str
    label: str
    status: str
    seconds: float = 0.0
    error: str | None = None
    detail: list[str] = field(default_factory=list)


def run_plan(plan: Plan, store: Store, ctx: StageContext, force: set[str] = frozenset(),
             progress: bool = True, run_id: str | None = None) -> dict[str, StageOutcome]:
    """Execute every stage not yet stored; `force` names stage kinds to recompute (and the dependents of those
    this process recomputed); run_id goes into each computed artifact's record and the store's stage log."""
    outcomes: dict[str, StageOutcome] = {}
    recomputed: set[str] = set()
    bar = tqdm(plan.stages, desc="matrix", unit="stage", disable=not progress, dynamic_ncols=True)
    for stage in bar:
        bar.set_postfix_str(stage.label[:60])
        failed_inputs = [k for k in stage.deps.values() if outcomes[k].status in ("failed", "skipped")]
        if failed_inputs:
            outcomes[stage.key] = StageOutcome(stage.key, stage.kind, stage.label, "skipped",
                                               error=f"input failed: {outcomes[failed_inputs[0]].label}")
            continue
        must = stage.kind in force or any(k in recomputed for k in stage.deps.values())
        if store.has(stage.key) and not must:
            outcomes[stage.key] = StageOutcome(stage.key, stage.kind, stage.label, "cached")
            continue
        outcomes[stage.key] = _execute(stage, store, ctx, must, run_id)
        if must and outcomes[stage.key].status == "done":  # replaced here, so its dependents are stale
            recomputed.add(stage.key)
    bar.close()
    return outcomes


def _execute(stage: Stage, store: Store, ctx: StageContext, force: bool, run_id: str | None = None) -> StageOutcome:
    """Compute one stage into the store: done, cached (another run stored it while this one waited) or failed."""
    inputs = {role: store.path(key) for role, key in stage.deps.items()}
    start = time.perf_counter()
    record = {"kind": stage.kind, "label": stage.label, "params": stage.params, "deps": stage.deps,
              "versions": stage.versions, "run_id": run_id}
    try:
        _, computed = store.compute(stage.key, lambda out: STAGE_FUNCTIONS[stage.kind](stage.params, inputs, out, ctx),
                                    record, force)
    except KeyboardInterrupt:
        raise
    except BenchmarkError as exc:  # a user-fixable problem inside one cell: say it in one line, go on
        return StageOutcome(stage.key, stage.kind, stage.label, "failed", time.perf_counter() - start, str(exc))
    except Exception as exc:  # an entry's bug: keep the traceback for the run record, go on with the matrix
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return StageOutcome(stage.key, stage.kind, stage.label, "failed", time.perf_counter() - start,
                            f"{type(exc).__name__}: {first}", traceback.format_exc().splitlines()[-12:])
    if not computed:
        return StageOutcome(stage.key, stage.kind, stage.label, "cached", time.perf_counter() - start,
                            detail=[BY_ANOTHER_RUN])
    return StageOutcome(stage.key, stage.kind, stage.label, "done", time.perf_counter() - start)
