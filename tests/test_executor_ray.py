"""The Ray backend against a real cluster: a head and two worker nodes, each a `ray start` process on loopback."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_config, tiny_raw, write_toml
from ray_helpers import RayCluster, cluster  # noqa: F401  (cluster: the module's fixture)

from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.execution.matrix import run
from benchmark.execution.planner import Stage
from benchmark.execution.ray_cluster import RayOptions, _resources
from benchmark.execution.store import Store
from benchmark.stages import StageContext

ray = pytest.importorskip("ray")


def _options(c: RayCluster) -> RayOptions:
    return RayOptions(address=c.address, max_retries=3)


@pytest.mark.slow
def test_ray_logs_each_computed_stage_and_never_retries_an_exception(cluster: RayCluster, tmp_path: Path) -> None:
    # what failing cells do to the matrix is the executor contract (tests/test_executor_contract.py); here: logs
    config = tiny_config(tmp_path, attacks=[{"name": "fgsm", "budgets": ["2/255"]},
                                            {"name": "broken", "budgets": ["2/255"]}])
    result = run(config, progress=False, backend="ray", ray_options=_options(cluster))
    logs = result.run_dir / "logs"
    computed = {o.key for o in result.outcomes.values() if o.status in ("done", "failed")}
    assert {p.stem for p in logs.glob("*.log")} == computed  # one log per computed stage
    train = next(o for o in result.outcomes.values() if o.kind == "train")
    assert "=== attempt 1: train resnet10t+none on node 127.0.0." in (logs / f"{train.key}.log").read_text()
    broken = next(o for o in result.outcomes.values() if o.label.startswith("attack broken"))
    assert broken.status == "failed" and f"log: {logs / broken.key}.log" in broken.detail
    log = (logs / f"{broken.key}.log").read_text()
    assert log.count("=== attempt ") == 1  # an exception in a stage is a failed cell, never retried
    assert "RuntimeError: this attack is broken on purpose" in log
    again = run(config, progress=False, backend="ray", ray_options=_options(cluster))
    assert {o.status for o in again.outcomes.values() if o.key != broken.key} <= {"cached", "skipped"}
    assert {p.stem for p in (again.run_dir / "logs").glob("*.log")} == {broken.key}  # only it was submitted


def _cli(tmp_path: Path, *flags: str) -> tuple[str, str]:
    """Run `python -m benchmark run --backend ray` on the tiny config in a fresh process; (stdout, all stage logs)."""
    raw = tiny_raw(tmp_path)
    raw["attacks"] = [{"name": "fgsm", "budgets": ["2/255"]}]
    path = write_toml(tmp_path / "tiny.toml", raw)
    done = subprocess.run([sys.executable, "-m", "benchmark", "run", "--matrix", "--config", str(path),
                           "--no-progress", "--backend", "ray", *flags],
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, "".join(p.read_text() for p in tmp_path.glob("runs/records/*/logs/*.log"))


@pytest.mark.slow
def test_the_cli_joins_a_cluster_or_starts_a_local_instance(cluster: RayCluster, tmp_path: Path) -> None:
    out, logs = _cli(tmp_path, "--address", cluster.address)
    assert re.search(r"│ train\s+│\s+1 │\s+0 │\s+0 │\s+0 │", out), out  # the local backend's summary
    assert re.search(r"train resnet10t\+none on node 127\.0\.0\.[34] ", logs), logs  # ran on a worker node
    out, logs = _cli(tmp_path, "--ray-workers", "1", "--force", "score")
    assert re.search(r"│ train\s+│\s+0 │\s+1 │\s+0 │\s+0 │", out), out
    assert re.search(r"│ score\s+│\s+1 │\s+0 │\s+0 │\s+0 │", out), out
    assert "score fgsm@2/255 vs resnet10t+none on node 127.0.0.1 " in logs  # a local instance stays on loopback


def test_ray_flags_need_the_ray_backend(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_toml(tmp_path / "tiny.toml", tiny_raw(tmp_path))
    assert main(["run", "--config", str(path), "--address", "auto"]) == 2
    assert capsys.readouterr().err.strip() == "error: --address needs --backend ray"


def test_resources_follow_the_stage_kind_and_fit_the_largest_node(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.compute("d" * 64, lambda out: (out / "images.npy").write_bytes(bytes(2**20)))
    inputs = sum(f.stat().st_size for f in store.path("d" * 64).iterdir())
    attack = Stage("attack", "a" * 64, "attack", {}, {"data": "d" * 64})
    score = Stage("score", "s" * 64, "score", {}, {"data": "d" * 64})
    cuda, big = StageContext(torch.device("cuda")), {"CPU": 2.0, "GPU": 1.0, "memory": 2.0**40}
    assert _resources(attack, store, cuda, RayOptions(cpus_per_task=4), big) == {
        "num_cpus": 2.0, "num_gpus": 1.0, "memory": 2**30 + 3 * inputs}  # CPUs capped at the largest node
    assert _resources(score, store, cuda, RayOptions(), big)["num_gpus"] == 0.0  # score never uses the model
    cpu = StageContext(torch.device("cpu"))
    assert _resources(attack, store, cpu, RayOptions(), {"CPU": 1.0, "GPU": 0.0, "memory": 2.0**30}) == {
        "num_cpus": 1.0, "num_gpus": 0.0, "memory": int(0.9 * 2**30)}  # memory capped: never unschedulable


def test_missing_ray_is_one_line_saying_what_to_install(monkeypatch: pytest.MonkeyPatch, tiny: object) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(BenchmarkError, match=r"pip install '\.\[ray\]'"):
        run(tiny, progress=False, backend="ray")


@pytest.mark.slow
def test_a_killed_worker_node_is_survived_and_nothing_is_computed_twice(cluster: RayCluster,
                                                                         tmp_path: Path) -> None:
    # two trainings long enough (a few seconds) to kill a node in the middle of one
    config = tiny_config(tmp_path, training={"epochs": 6, "batch_size": 16, "lr": 0.003},
                         defenses=["none", "feature-squeezing"],
                         attacks=[{"name": "fgsm", "budgets": ["2/255", "8/255"]}])
    store = Store(config.run.store)
    stamps: dict[str, float] = {}
    victim: dict[str, str] = {}
    stop = threading.Event()

    def kill_a_node_mid_training() -> None:
        while not stop.is_set() and not victim:
            for log in store.root.glob("records/*/logs/*.log"):
                text = log.read_text()
                match = re.search(r"=== attempt 1: train .* on node (127\.0\.0\.\d+) pid (\d+) ", text)
                if match and not store.has(log.stem) and match.group(1) in cluster.nodes:
                    stamps.update({k.name: (k / "_artifact.json").stat().st_mtime
                                   for k in store.objects.glob("*/*") if store.has(k.name)})
                    # the worker first: Ray starts workers in sessions of their own, so killing the node's process
                    # group alone leaves a running task to finish and report straight to the driver
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(match.group(2)), signal.SIGKILL)
                    cluster.kill(match.group(1))
                    victim.update(key=log.stem, ip=match.group(1))
                    return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_a_node_mid_training, daemon=True)
    watcher.start()
    try:
        result = run(config, progress=False, backend="ray", ray_options=_options(cluster))
    finally:
        stop.set()
        watcher.join()
    assert victim, "no training was seen running: nothing was killed"
    assert {o.status for o in result.outcomes.values()} == {"done"}, [
        (o.label, o.status, o.error) for o in result.outcomes.values() if o.status != "done"]
    assert len(result.table) == 4
    killed = result.outcomes[victim["key"]]
    assert "attempt 2: an earlier worker died" in killed.detail
    log = (result.run_dir / "logs" / f"{victim['key']}.log").read_text()
    assert log.count("=== attempt ") == 2 and f"attempt 1: {killed.label} on node {victim['ip']}" in log
    assert stamps and victim["key"] not in stamps  # the data stage at least was stored before the kill
    for key, mtime in stamps.items():  # stored before the kill: never recomputed, never retried
        assert (store.path(key) / "_artifact.json").stat().st_mtime == mtime
        assert result.outcomes[key].status == "done" and not result.outcomes[key].detail
