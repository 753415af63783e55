"""A real Ray cluster for tests: a head and one-CPU worker nodes, each a `ray start` process on loopback."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

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
