"""The local executor's worker processes: one torch thread each, outcomes back, exceptions contained, dead workers
reported and replaced, nothing left running. Stage functions here stand in for real stages (the pool takes any
module-level `execute`); tests/test_executor_contract.py runs real matrices on it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from benchmark.errors import BenchmarkError
from benchmark.execution.planner import Stage
from benchmark.execution.scheduler import StageOutcome
from benchmark.execution.store import Store
from benchmark.execution.worker_pool import WorkerPool, worker_count
from benchmark.stages import StageContext

CPU = StageContext(torch.device("cpu"), progress=True)


def _stage(i: int, kind: str = "test", **params: object) -> Stage:
    return Stage(kind, f"{i:064x}", f"{kind} {i}", dict(params), {})


def _report(stage: Stage, store: Store, ctx: StageContext, must: bool, run_id: str | None) -> StageOutcome:
    """Say where and how this stage ran; sleep or die when its params ask for it."""
    started = time.time()
    if stage.params.get("sleep"):
        time.sleep(stage.params["sleep"])
    if stage.params.get("exit") is not None:
        os._exit(stage.params["exit"])
    if stage.params.get("signal"):
        os.kill(os.getpid(), stage.params["signal"])
    where = {"pid": os.getpid(), "threads": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
             "omp": os.environ.get("OMP_NUM_THREADS"), "progress": ctx.progress, "must": must, "run_id": run_id,
             "store": str(store.root)}
    return StageOutcome(stage.key, stage.kind, stage.label, "done", time.time() - started,
                        detail=[repr(where)], started=started)


def _where(outcome: StageOutcome) -> dict:
    return eval(outcome.detail[0])


def _drain(pool: WorkerPool) -> list[StageOutcome]:
    out = []
    while pool.running():
        out += pool.wait()
    return out


def test_worker_count_flag_env_cpus_and_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("BENCHMARK_WORKERS", raising=False)
    assert worker_count(None, cpu) == (os.cpu_count() or 1)
    monkeypatch.setenv("BENCHMARK_WORKERS", "3")
    assert worker_count(None, cpu) == 3
    assert worker_count(2, cpu) == 2  # the flag wins over the environment
    assert worker_count(None, cuda) == worker_count(4, cuda) == 1
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("BENCHMARK_WORKERS", bad)
        with pytest.raises(BenchmarkError, match=f"BENCHMARK_WORKERS='{bad}': expected a whole number"):
            worker_count(None, cpu)
    with pytest.raises(BenchmarkError, match="--workers must be at least 1"):
        worker_count(0, cpu)


def test_workers_compute_side_by_side_with_one_thread_each(tmp_path: Path) -> None:
    omp = os.environ.get("OMP_NUM_THREADS")
    with WorkerPool(2, tmp_path, CPU, run_id="r1", execute=_report) as pool:
        assert pool.started == 0 and pool.free() == 2
        pool.submit(_stage(1, sleep=1.0), must=True)
        pool.submit(_stage(2, sleep=1.0), must=False)
        assert pool.free() == 0 and pool.running() == 2 and len(pool.busy()) == 2
        with pytest.raises(RuntimeError, match="all 2 workers are busy"):
            pool.submit(_stage(3), must=False)
        outcomes = sorted(_drain(pool), key=lambda o: o.label)
        assert pool.started == 2 and len(pool.pids()) == 2
    assert [o.label for o in outcomes] == ["test 1", "test 2"]
    a, b = outcomes
    assert a.started < b.started + b.seconds and b.started < a.started + a.seconds  # they overlapped
    where = [_where(o) for o in outcomes]
    assert where[0]["pid"] != where[1]["pid"] and os.getpid() not in (where[0]["pid"], where[1]["pid"])
    for w in where:
        assert (w["threads"], w["interop"], w["omp"]) == (1, 1, "1")
        assert w["progress"] is False and w["run_id"] == "r1" and w["store"] == str(tmp_path.resolve())
    assert [w["must"] for w in where] == [True, False]
    assert os.environ.get("OMP_NUM_THREADS") == omp  # the workers' setting is theirs alone


def test_an_exception_fails_its_stage_and_the_worker_goes_on(tmp_path: Path) -> None:
    with WorkerPool(1, tmp_path, CPU) as pool:
        pool.submit(_stage(1, kind="no-such-kind"), must=False)  # execute_stage: STAGE_FUNCTIONS has no such kind
        (failed,) = _drain(pool)
        pool.submit(_stage(2, kind="no-such-kind"), must=False)
        (again,) = _drain(pool)
        assert pool.started == 1  # the same worker
    assert failed.status == "failed" and failed.error == "KeyError: 'no-such-kind'" and failed.detail
    assert again.status == "failed"


@pytest.mark.parametrize("how, said", [({"exit": 7}, "exit code 7"),
                                       ({"signal": signal.SIGKILL},
                                        "killed by SIGKILL, e.g. by the out-of-memory killer")])
def test_a_dead_worker_fails_only_its_stage_and_a_new_one_takes_the_next(tmp_path: Path, how: dict,
                                                                          said: str) -> None:
    with WorkerPool(2, tmp_path, CPU, execute=_report) as pool:
        pool.submit(_stage(1, sleep=0.5), must=False)
        pool.submit(_stage(2, **how), must=False)
        by_label = {o.label: o for o in _drain(pool)}
        assert by_label["test 1"].status == "done"
        dead = by_label["test 2"]
        assert dead.status == "failed" and dead.started is not None
        assert dead.error.startswith("worker process ") and dead.error.endswith(f"died while computing this stage "
                                                                                 f"({said})")
        assert pool.free() == 2 and len(pool.pids()) == 1
        pool.submit(_stage(3), must=False)
        pool.submit(_stage(4), must=False)
        later = _drain(pool)
        assert pool.started == 3 and {o.status for o in later} == {"done"}
        assert len({_where(o)["pid"] for o in later}) == 2


def test_nothing_submitted_starts_nothing_and_cancel_stops_a_busy_worker(tmp_path: Path) -> None:
    with WorkerPool(4, tmp_path, CPU) as pool:
        pass
    assert pool.started == 0
    pool = WorkerPool(1, tmp_path, CPU, execute=_report)
    pool.submit(_stage(1, sleep=60), must=False)
    (pid,) = pool.pids()
    time.sleep(0.5)
    t0 = time.monotonic()
    pool.cancel()
    assert time.monotonic() - t0 < 6 and pool.running() == 0 and not pool.pids()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path[:0] = {[str(Path(__file__).parent)]!r}
        import torch
        from benchmark.execution.worker_pool import WorkerPool
        from benchmark.stages import StageContext
        from test_worker_pool import _report, _stage
        if __name__ == "__main__":
            pool = WorkerPool(2, {str(tmp_path)!r}, StageContext(torch.device("cpu")), execute=_report)
            pool.submit(_stage(1, sleep=120), must=False)
            pool.submit(_stage(2, sleep=120), must=False)
            time.sleep(1.0)
            print(*pool.pids(), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2
    end = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < end:
        alive = [p for p in pids if _alive(p)]
        time.sleep(0.1)
    assert not alive, f"workers {alive} outlived their killed parent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False

