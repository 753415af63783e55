"""The Ray backend against a real cluster: a head and two worker nodes, each a `ray start` process on loopback."""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import tiny_config, tiny_raw, write_toml

from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.execution.ray_cluster import RayOptions, _resources
from benchmark.execution.planner import Stage
from benchmark.execution.matrix import run
from benchmark.stages import StageContext
from benchmark.execution.store import Store

ray = pytest.importorskip("ray")

TIMING = ["attack_seconds", "images_per_s", "train_seconds"]
RUN_SPECIFIC = {"run_id", "date", "git_commit", "versions", "config_digest", "cost", "attack_seconds",
                "images_per_s", "train_seconds", "seconds"}
HEAD = "127.0.0.2"  # Ray resolves 127.0.0.1 to the machine's outward address; other loopback ones stay loopback
# a killed node is declared dead after about 1.5 s instead of 15 s
FAST_HEALTH = {"RAY_health_check_initial_delay_ms": "0", "RAY_health_check_period_ms": "500",
               "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "3"}


class RayCluster:
    """A head with no CPUs and worker nodes with one CPU each; every node a `ray start --block` process group."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
        # token authentication with a token of its own (not ~/.ray/auth_token): nodes and driver share the env
        self.auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **FAST_HEALTH, **self.auth}
        self.nodes: dict[str, subprocess.Popen] = {}
        self.address = ""

    def _start(self, ip: str, *args: str) -> None:
        with open(self.root / f"{ip}.log", "w") as log:  # the child keeps its own copy of the descriptor
            self.nodes[ip] = subprocess.Popen(
                [str(Path(sys.executable).with_name("ray")), "start", "--block", "--disable-usage-stats",
                 "--node-ip-address", ip, "--temp-dir", str(self.root / ip), "--object-store-memory", "100000000",
             *args],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)

    def start(self, workers: int) -> None:
        """Start the head, join the workers, connect this process as the driver once all CPUs are there."""
        self._start(HEAD, "--head", "--port", "0", "--num-cpus", "0", "--include-dashboard", "false")
        pointer = self.root / HEAD / "ray_current_cluster"
        self._until(pointer.is_file, "the head to write its address")
        self.address = pointer.read_text().strip()
        for i in range(workers):
            self._start(f"127.0.0.{3 + i}", "--address", self.address, "--num-cpus", "1")
        ray.init(address=self.address, logging_level="WARNING", log_to_driver=False)
        self._until(lambda: ray.cluster_resources().get("CPU", 0) >= workers, f"{workers} worker CPUs")

    def _until(self, ready: object, what: str, timeout: float = 90) -> None:
        end = time.time() + timeout
        while not ready():
            dead = [ip for ip, p in self.nodes.items() if p.poll() is not None]
            if dead or time.time() > end:
                tail = (self.root / f"{(dead or [HEAD])[0]}.log").read_text()[-2000:]
                raise RuntimeError(f"Ray cluster: no {what} ({'node died' if dead else 'timeout'}):\n{tail}")
            time.sleep(0.2)

    def kill(self, ip: str) -> None:
        """SIGKILL a node's process group: `ray start` and its raylet (workers run in sessions of their own)."""
        os.killpg(self.nodes[ip].pid, signal.SIGKILL)
        self.nodes.pop(ip).wait()

    def close(self) -> None:
        """Disconnect, stop every node (TERM, then KILL), remove the temp folder."""
        if ray.is_initialized():
            ray.shutdown()
        for proc in self.nodes.values():
            os.killpg(proc.pid, signal.SIGTERM)
        end = time.time() + 5
        for proc in self.nodes.values():
            try:
                proc.wait(timeout=max(0.1, end - time.time()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.nodes.values():  # what did not stop in time, and raylets or workers left behind
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> RayCluster:
    """A head and two one-CPU workers on loopback, shared by this module's tests, torn down even on failure."""
    c = RayCluster()
    saved = {k: os.environ.get(k) for k in c.auth}
    os.environ.update(c.auth)  # the driver (this process) and the local instances it starts
    _reload_auth()
    try:
        c.start(workers=2)
        yield c
    finally:
        c.close()
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        _reload_auth()


def _reload_auth() -> None:
    """Make this process read RAY_AUTH_* again (Ray reads them once; ray.init does the same when it enables auth)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _options(c: RayCluster) -> RayOptions:
    return RayOptions(address=c.address, max_retries=3)


def _numbers(obj: object) -> object:
    """An entry without what legitimately differs between two runs: timings, dates, run ids, config digest."""
    if isinstance(obj, dict):
        return {k: _numbers(v) for k, v in obj.items() if k not in RUN_SPECIFIC}
    if isinstance(obj, list):
        return [_numbers(v) for v in obj]
    return obj


def _metrics(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=TIMING).sort_values(["attack", "budget"]).reset_index(drop=True)


@pytest.mark.slow
def test_ray_gives_the_local_results_and_honours_the_cache(cluster: RayCluster, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray task runs: the same kernels, so bit-identical numbers
    try:
        local = run(tiny_config(tmp_path / "local"), progress=False)
    finally:
        torch.set_num_threads(threads)
    config = tiny_config(tmp_path / "ray")
    remote = run(config, progress=False, backend="ray", ray_options=_options(cluster))
    assert {o.status for o in remote.outcomes.values()} == {"done"}
    assert list(remote.outcomes) == list(local.outcomes)  # same stages, same keys, plan order
    pd.testing.assert_frame_equal(_metrics(local.table), _metrics(remote.table))
    entries = sorted((local.leaderboard.parent / "entries").rglob("*.json"))
    assert entries
    for path in entries:
        twin = remote.leaderboard.parent / "entries" / path.relative_to(local.leaderboard.parent / "entries")
        assert _numbers(json.loads(path.read_text())) == _numbers(json.loads(twin.read_text())), path.name
    train = next(s for s in local.plan.stages if s.kind == "train")
    a = torch.load(Store(tmp_path / "local" / "runs").path(train.key) / "model.pt", weights_only=True)
    b = torch.load(Store(tmp_path / "ray" / "runs").path(train.key) / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    logs = remote.run_dir / "logs"
    assert {p.stem for p in logs.glob("*.log")} == set(remote.outcomes)  # one log per computed stage
    assert "=== attempt 1: train resnet10t+none on node 127.0.0." in (logs / f"{train.key}.log").read_text()

    again = run(config, progress=False, backend="ray", ray_options=_options(cluster))
    assert {o.status for o in again.outcomes.values()} == {"cached"}
    assert not (again.run_dir / "logs").exists()  # nothing was submitted
    forced = run(config, ("score",), progress=False, backend="ray", ray_options=_options(cluster))
    assert {o.kind: o.status for o in forced.outcomes.values()} == {
        "data": "cached", "train": "cached", "attack": "cached", "score": "done"}
    pd.testing.assert_frame_equal(_metrics(remote.table), _metrics(forced.table))


@pytest.mark.slow
def test_a_failing_cell_fails_only_its_cells_on_ray(cluster: RayCluster, tmp_path: Path) -> None:
    config = tiny_config(tmp_path, attacks=[{"name": "fgsm", "budgets": ["2/255"]},
                                            {"name": "broken", "budgets": ["2/255"]}])
    result = run(config, progress=False, backend="ray", ray_options=_options(cluster))
    status = {o.label: (o.status, o.error) for o in result.outcomes.values()}
    assert status["attack broken@2/255 vs resnet10t+none"] == (
        "failed", "RuntimeError: this attack is broken on purpose")
    assert status["score broken@2/255 vs resnet10t+none"] == (
        "skipped", "input failed: attack broken@2/255 vs resnet10t+none")
    assert status["score fgsm@2/255 vs resnet10t+none"] == ("done", None)
    assert list(result.table["attack"]) == ["fgsm"]
    broken = next(o for o in result.outcomes.values() if o.label.startswith("attack broken"))
    log = (result.run_dir / "logs" / f"{broken.key}.log").read_text()
    assert log.count("=== attempt ") == 1  # an exception in a stage is a failed cell, never retried
    assert "RuntimeError: this attack is broken on purpose" in log
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"done": 4, "cached": 0, "failed": 1, "skipped": 1}


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
