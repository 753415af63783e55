"""What every executor must do, written once: the local one with 1 worker (in-process) and 2 worker processes, and
Ray (a head and two one-CPU worker nodes on loopback). Caching, force, failures contained to their cells, growing
a matrix, and the same per-image numbers whichever executor computed them."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_config

from benchmark.execution.local import run_plan
from benchmark.execution.matrix import RunResult, run
from benchmark.execution.planner import plan_matrix
from benchmark.execution.scheduler import schedule
from benchmark.execution.store import STAGE_LOG, Store
from benchmark.execution.worker_pool import WorkerPool
from benchmark.stages import StageContext

try:  # the Ray executor's cluster fixture; without Ray its cases are skipped
    from ray_helpers import RayCluster, cluster  # noqa: F401
except pytest.skip.Exception:
    RayCluster = None

TIMING = ["attack_seconds", "images_per_s", "train_seconds"]
RUN_SPECIFIC = {"run_id", "date", "git_commit", "versions", "config_digest", "cost", "attack_seconds",
                "images_per_s", "train_seconds", "seconds"}
EXECUTORS = ["local-1", "local-2", "ray"]
Runner = Callable[..., RunResult]


def _runner(name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Runner:
    """run(config, ...) on the named executor."""
    if name == "ray":
        if RayCluster is None:
            pytest.skip("Ray is not installed")
        from benchmark.execution.ray_cluster import RayOptions

        address = request.getfixturevalue("cluster").address
        return lambda config, *a, **kw: run(config, *a, progress=False, backend="ray",
                                            ray_options=RayOptions(address=address, max_retries=3), **kw)
    workers = int(name.split("-")[1])
    monkeypatch.setenv("BENCHMARK_WORKERS", str(workers))  # explicit here; conftest's default is 1
    return lambda config, *a, **kw: run(config, *a, progress=False, **kw)


@pytest.fixture(params=EXECUTORS)
def execute(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Runner:
    return _runner(request.param, request, monkeypatch)


def _metrics(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=TIMING).sort_values(["attack", "budget"]).reset_index(drop=True)


def _numbers(obj: object) -> object:
    """An entry without what legitimately differs between two runs: timings, dates, run ids, config digest."""
    if isinstance(obj, dict):
        return {k: _numbers(v) for k, v in obj.items() if k not in RUN_SPECIFIC}
    if isinstance(obj, list):
        return [_numbers(v) for v in obj]
    return obj


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    """Every array of an artifact: each .npz member and .npy file, each tensor of a .pt state dict."""
    out: dict[str, np.ndarray] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                out.update({f"{name}:{k}": z[k] for k in z.files})
        elif path.suffix == ".npy":
            out[name] = np.load(path, allow_pickle=False)
        elif path.suffix == ".pt":
            state = torch.load(path, weights_only=True)
            out.update({f"{name}:{k}": v.numpy() for k, v in state.items() if isinstance(v, torch.Tensor)})
    return out


def assert_same_artifacts(a: Store, b: Store, keys: list[str]) -> int:
    """Every array of every artifact in keys is bit-identical in stores a and b; returns how many were compared."""
    compared = 0
    for key in keys:
        left, right = _arrays(a.path(key)), _arrays(b.path(key))
        assert left.keys() == right.keys(), key
        for name, value in left.items():
            nan = value.dtype.kind in "fc"
            assert value.dtype == right[name].dtype and np.array_equal(value, right[name], equal_nan=nan), \
                f"{a.info(key)['label']}: {name} differs"
            compared += 1
    return compared


# --- the contract, once per executor --------------------------------------------------------------------------

def test_rerun_does_no_work_and_force_recomputes_a_kind_and_its_dependents(execute: Runner, tiny: object) -> None:
    first = execute(tiny)
    assert {o.status for o in first.outcomes.values()} == {"done"}
    row = first.table.set_index("budget").sort_index()
    assert row["clean_accuracy"].iloc[0] >= 0.75  # the tiny set is easy (2 epochs; chance is 0.5)
    # a bigger budget fools at least as many images as a smaller one
    assert row["attack_outcome_robust_accuracy"].iloc[1] <= row["attack_outcome_robust_accuracy"].iloc[0]
    second = execute(tiny)
    assert {o.status for o in second.outcomes.values()} == {"cached"}
    assert list(second.outcomes) == list(first.outcomes)  # plan order
    pd.testing.assert_frame_equal(first.table, second.table)
    forced = execute(tiny, ("train",))
    by_kind: dict[str, set[str]] = {}
    for o in forced.outcomes.values():
        by_kind.setdefault(o.kind, set()).add(o.status)
    assert by_kind == {"data": {"cached"}, "train": {"done"}, "attack": {"done"}, "score": {"done"}}
    pd.testing.assert_frame_equal(_metrics(first.table), _metrics(forced.table))
    scored = execute(tiny, ("score",))
    assert {o.kind: o.status for o in scored.outcomes.values()} == {
        "data": "cached", "train": "cached", "attack": "cached", "score": "done"}


def test_failing_cells_are_contained(execute: Runner, tmp_path: Path) -> None:
    config = tiny_config(tmp_path, attacks=[{"name": "fgsm", "budgets": ["2/255"]},
                                            {"name": "broken", "budgets": ["2/255"]},
                                            {"name": "wrong-shape", "budgets": ["2/255"]}])
    result = execute(config)
    status = {o.label: (o.status, o.error) for o in result.outcomes.values()}
    assert status["attack broken@2/255 vs resnet10t+none"] == (
        "failed", "RuntimeError: this attack is broken on purpose")
    assert status["score broken@2/255 vs resnet10t+none"] == (
        "skipped", "input failed: attack broken@2/255 vs resnet10t+none")
    assert "attack wrong-shape returned (20, 1, 31, 32), expected a tensor of shape (20, 1, 32, 32)" in \
        status["attack wrong-shape@2/255 vs resnet10t+none"][1]
    assert status["score fgsm@2/255 vs resnet10t+none"] == ("done", None)
    assert list(result.table["attack"]) == ["fgsm"]
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"done": 4, "cached": 0, "failed": 2, "skipped": 2}


def test_growing_a_matrix_computes_only_new_cells(execute: Runner, tmp_path: Path) -> None:
    execute(tiny_config(tmp_path))
    grown = execute(tiny_config(tmp_path, attacks=[{"name": "fgsm", "budgets": ["2/255", "8/255", "4/255"]}]))
    done = sorted(o.label for o in grown.outcomes.values() if o.status == "done")
    assert done == ["attack fgsm@4/255 vs resnet10t+none", "score fgsm@4/255 vs resnet10t+none"]


# --- the same numbers whatever computed them, and in parallel where there are workers -------------------------

@pytest.mark.slow
def test_every_executor_gives_bit_identical_per_image_results(request: pytest.FixtureRequest,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    results = {name: _runner(name, request, monkeypatch)(tiny_config(tmp_path / name)) for name in EXECUTORS}
    base = results["local-1"]
    keys = [s.key for s in base.plan.stages]
    for name, result in results.items():
        assert {o.status for o in result.outcomes.values()} == {"done"}, name
        assert list(result.outcomes) == keys, name  # same stages, same keys, plan order
        pd.testing.assert_frame_equal(_metrics(base.table), _metrics(result.table))
        compared = assert_same_artifacts(Store(tmp_path / "local-1" / "runs"), Store(tmp_path / name / "runs"), keys)
        assert compared >= 10  # images, model weights, predictions, adversarial images, per-image flags
        entries = sorted((base.leaderboard.parent / "entries").rglob("*.json"))
        assert entries
        for path in entries:
            twin = result.leaderboard.parent / "entries" / path.relative_to(base.leaderboard.parent / "entries")
            assert _numbers(json.loads(path.read_text())) == _numbers(json.loads(twin.read_text())), path.name


def _two_trainings(tmp_path: Path) -> object:
    """Two independent trainings of a second or two each (two defenses), then their fgsm cells."""
    return tiny_config(tmp_path, training={"epochs": 6, "batch_size": 16, "lr": 0.003},
                       defenses=["none", "feature-squeezing"],
                       attacks=[{"name": "fgsm", "budgets": ["2/255", "8/255"]}])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["local-2", "ray"])
def test_independent_stages_overlap_in_time_with_two_workers(name: str, request: pytest.FixtureRequest,
                                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = _runner(name, request, monkeypatch)(_two_trainings(tmp_path))
    assert {o.status for o in result.outcomes.values()} == {"done"}
    a, b = [o for o in result.outcomes.values() if o.kind == "train"]
    assert a.started is not None and b.started is not None
    assert a.started < b.started + b.seconds and b.started < a.started + a.seconds, (
        f"the trainings did not overlap: {a.started:.2f}+{a.seconds:.2f} s and {b.started:.2f}+{b.seconds:.2f} s")
    log = [json.loads(line) for line in (tmp_path / "runs" / STAGE_LOG).read_text().splitlines()]
    pids = {e["pid"] for e in log if e["key"] in (a.key, b.key)}
    assert len(pids) == 2  # computed by two processes


@pytest.mark.slow
def test_a_dead_worker_fails_only_its_stage_and_is_replaced(tmp_path: Path) -> None:
    config = _two_trainings(tmp_path)
    plan, store = plan_matrix(config), Store(config.run.store)
    ctx = StageContext(torch.device("cpu"), config.attack_batch_size, False)
    victim: dict[str, int | str] = {}
    stop = threading.Event()
    with WorkerPool(2, store.root, ctx, run_id="dead-worker") as pool:
        original: set[int] = set()

        def kill_a_training_worker() -> None:
            trains = {s.key for s in plan.stages if s.kind == "train"}
            while not stop.is_set():
                busy = pool.busy()
                running = [k for k in busy if k in trains]
                if running:
                    original.update(pool.pids())
                    time.sleep(0.3)  # mid-training (each takes a second or more)
                    victim.update(key=running[0], pid=busy[running[0]])
                    os.kill(busy[running[0]], signal.SIGKILL)
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=kill_a_training_worker, daemon=True)
        watcher.start()
        try:
            outcomes = schedule(plan, store, pool, progress=False)
        finally:
            stop.set()
            watcher.join()
        started = pool.started
    assert victim, "no training was seen running: nothing was killed"
    killed = outcomes[victim["key"]]
    assert killed.status == "failed" and not store.has(victim["key"])
    assert killed.error == (f"worker process {victim['pid']} died while computing this stage "
                            "(killed by SIGKILL, e.g. by the out-of-memory killer)")
    downstream = [s for s in plan.stages if victim["key"] in s.deps.values()]
    assert downstream and all(outcomes[s.key].status == "skipped" for s in downstream)
    assert all(outcomes[s.key].error == f"input failed: {killed.label}" for s in downstream if s.kind == "attack")
    rest = [o for k, o in outcomes.items() if k != victim["key"] and o.status != "skipped"]
    assert len(rest) == 1 + 1 + 4 and {o.status for o in rest} == {"done"}  # data, the other training, its cells
    assert started == 3  # the dead worker was replaced
    log = [json.loads(line) for line in (store.root / STAGE_LOG).read_text().splitlines()]
    assert {e["pid"] for e in log} - original  # the replacement computed stages
    again = run_plan(plan, store, ctx, progress=False, workers=1)  # resume: the killed stage and its cells only
    assert sorted(o.label for o in again.values() if o.status == "done") == sorted(
        [killed.label] + [s.label for s in downstream])



# --- how a run asks for workers --------------------------------------------------------------------------------

def test_the_workers_flag(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import tiny_raw, write_toml

    from benchmark.cli import main

    monkeypatch.setenv("BENCHMARK_WORKERS", "1")  # the flag wins over the environment
    path = write_toml(tmp_path / "tiny.toml", tiny_raw(tmp_path))
    assert main(["run", "--config", str(path), "--workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --workers must be at least 1"
    assert main(["run", "--config", str(path), "--backend", "ray", "--workers", "2"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --workers is for --backend local")
    assert main(["run", "--config", str(path), "--no-progress", "--workers", "2"]) == 0
    log = [json.loads(line) for line in (tmp_path / "runs" / STAGE_LOG).read_text().splitlines()]
    pids = {e["pid"] for e in log}
    assert len(log) == 6 and len(pids) == 2 and os.getpid() not in pids  # two worker processes computed them
    monkeypatch.setenv("BENCHMARK_WORKERS", "many")
    assert main(["run", "--config", str(path)]) == 2
    assert capsys.readouterr().err.strip() == ("error: BENCHMARK_WORKERS='many': expected a whole number of worker "
                                               "processes, at least 1")
