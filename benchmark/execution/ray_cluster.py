"""Run a plan on a Ray cluster: one task per stage, submitted once its inputs are stored, retried when a worker dies.

The contract is the local executor's (`run_plan`): the DAG loop is the same (`scheduler.schedule`), and so are the
outcomes, statuses, failure containment and `force` semantics. Tasks get store keys, never artifacts: every node
must see the store at the same path (a local disk for a one-machine instance, a network file system for a cluster).
Ray is imported only here, and only when asked for.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import BenchmarkError
from benchmark.execution.planner import Plan, Stage
from benchmark.execution.scheduler import BY_ANOTHER_RUN, StageOutcome, execute_stage, schedule
from benchmark.execution.store import Store
from benchmark.stages import StageContext

__all__ = ["RayOptions", "cluster_device", "connect", "disconnect", "run_plan_ray"]

_GPU_KINDS = ("train", "gan", "fakes", "attack")  # data and score never touch the model's device
_BASE_MEMORY = {"data": 1024, "train": 2048, "gan": 2048, "fakes": 2048, "attack": 1024, "score": 512}  # MiB
_INPUT_FACTOR = 3  # inputs are read whole (images as float32 and a copy or two): memory hint per input byte
_started_here = False  # this process started the Ray instance it is connected to (and so shuts it down)


@dataclass(frozen=True)
class RayOptions:
    """Where and how to run: cluster address (None starts a local instance), its workers, CPUs per task, retries."""

    address: str | None = None
    workers: int | None = None  # CPUs of a local instance (default: this machine's); ignored with an address
    cpus_per_task: int = 1  # also the torch threads of each task
    max_retries: int = 3  # re-runs of a task whose worker or node died; an exception in a stage is never retried


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BenchmarkError("--backend ray needs Ray, which is not installed: pip install '.[ray]'") from None
    return ray


def connect(options: RayOptions) -> None:
    """Join the cluster at options.address ('auto' or host:port), or start a local instance; no-op if connected."""
    global _started_here
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local run phones nowhere unless asked to
    if not options.address:  # before Ray is imported, which reads it: a local instance stays on 127.0.0.1
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = _ray()
    if ray.is_initialized():
        return
    quiet = {"logging_level": "WARNING", "log_to_driver": False}  # task output goes to per-stage logs instead
    if options.address:
        try:
            ray.init(address=options.address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BenchmarkError(f"--address {options.address}: cannot join the Ray cluster ({first}); start one "
                                 "with `ray start --head` (with token authentication on, set RAY_AUTH_MODE=token "
                                 "and the cluster's token here too), or omit --address for a local instance"
                                 ) from None
        return
    workers = options.workers or os.cpu_count() or 1
    # "local": a new instance even where `ray start` runs on this machine (plain ray.init() would join that one)
    ray.init(address="local", num_cpus=workers, include_dashboard=False, **quiet)
    _started_here = True


def disconnect() -> None:
    """Shut down the Ray instance this process started; leave a cluster it joined (or a caller's session) alone."""
    global _started_here
    ray = _ray()
    if _started_here and ray.is_initialized():
        ray.shutdown()
    _started_here = False


def cluster_device(name: str, options: RayOptions) -> torch.device:
    """run.device resolved against the cluster's GPUs rather than this machine's: 'auto' is CUDA when it has any."""
    connect(options)
    gpus = _ray().cluster_resources().get("GPU", 0)
    if name == "auto":
        return torch.device("cuda" if gpus else "cpu")
    if name == "cuda" and not gpus:
        raise BenchmarkError("run.device = \"cuda\" but the Ray cluster has no GPU; start GPU nodes with "
                             "`ray start --num-gpus N`, or use \"auto\" or \"cpu\"")
    return torch.device(name)


def _largest_node() -> dict[str, float]:
    nodes = [n["Resources"] for n in _ray().nodes() if n.get("Alive")]
    return {r: max((n.get(r, 0.0) for n in nodes), default=0.0) for r in ("CPU", "GPU", "memory")}


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _resources(stage: Stage, store: Store, ctx: StageContext, options: RayOptions,
               largest: dict[str, float]) -> dict[str, float]:
    """Ray resource request of one stage: CPUs, a GPU for the model stages on CUDA, a memory hint from its inputs.
    Capped at the largest node, so that no request is unschedulable (Ray would wait for it forever)."""
    cpus = float(options.cpus_per_task)
    if largest["CPU"]:
        cpus = min(cpus, largest["CPU"])
    memory = _BASE_MEMORY.get(stage.kind, 1024) * 2**20 + _INPUT_FACTOR * sum(
        _folder_bytes(store.path(k)) for k in stage.deps.values())
    if largest["memory"]:
        memory = min(memory, int(0.9 * largest["memory"]))
    gpus = 1.0 if ctx.device.type == "cuda" and stage.kind in _GPU_KINDS else 0.0
    return {"num_cpus": cpus, "num_gpus": gpus, "memory": int(memory)}


@contextmanager
def _captured(log: Path, header: str) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so C libraries too) to log, appending."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log, "a") as sink:
        sink.write(header)
        sink.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _stored_by(store: Store, key: str, run_id: str) -> bool:
    """True when the stored artifact for key was computed by the run run_id (its record names the run)."""
    return store.info(key).get("run_id") == run_id


def _run_stage(stage: Stage, store_root: str, ctx: StageContext, must: bool, log: str, run_id: str,
               threads: int) -> StageOutcome:
    """The Ray task: compute one stage into the shared store unless it is there, output into its log file.
    The stage itself runs through the scheduler's `execute_stage`: one definition of how a stage fails."""
    import ray  # a task runs inside a Ray worker

    store = Store(store_root)
    if store.has(stage.key):
        if _stored_by(store, stage.key, run_id):  # by an attempt whose worker died after storing it
            return StageOutcome(stage.key, stage.kind, stage.label, "done", store.info(stage.key)["seconds"],
                                detail=["stored by an earlier attempt of this run"])
        if not must:  # stored meanwhile by another run (the store's lock covers the race)
            return StageOutcome(stage.key, stage.kind, stage.label, "cached", detail=[BY_ANOTHER_RUN])
    log_path, run = Path(log), f"(run {run_id})"  # a log folder may be shared by runs
    attempt = 1 + (log_path.read_text().count(run) if log_path.is_file() else 0)
    torch.set_num_threads(threads)
    where = f"node {ray.util.get_node_ip_address()} pid {os.getpid()}"
    header = f"=== attempt {attempt}: {stage.label} on {where} at {time.strftime('%H:%M:%S')} {run}\n"
    with _captured(log_path, header):
        outcome = execute_stage(stage, store, ctx, must, run_id)
        if outcome.status == "failed":
            print(f"failed: {outcome.error}", *outcome.detail, sep="\n")
    if attempt > 1:
        outcome.detail.append(f"attempt {attempt}: an earlier worker died")
    if outcome.status == "failed":
        outcome.detail.append(f"log: {log_path}")
    return outcome


def _run_gpu_stage(*args: Any) -> StageOutcome:
    """_run_stage in a worker process of its own (max_calls=1): CUDA fixes its visible GPUs once per process, and
    Ray assigns a task's GPU through CUDA_VISIBLE_DEVICES (ray-project/ray#29624). Its memory goes with it."""
    return _run_stage(*args)


def _lost(ray: Any, exc: Exception, stage: Stage, seconds: float, retries: int) -> StageOutcome:
    """The outcome of a task that never returned: its worker or node died more often than it may be retried."""
    if isinstance(exc, ray.exceptions.RayTaskError):  # an exception outside the stage itself (e.g. unpicklable)
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        return StageOutcome(stage.key, stage.kind, stage.label, "failed", seconds,
                            f"{type(cause).__name__}: {first}")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return StageOutcome(stage.key, stage.kind, stage.label, "failed", seconds,
                        f"worker lost {retries + 1} times ({type(exc).__name__}); {first}"[:300])


def run_plan_ray(plan: Plan, store: Store, ctx: StageContext, force: set[str] = frozenset(), progress: bool = True,
                 options: RayOptions | None = None, log_dir: Path | None = None,
                 run_id: str | None = None) -> dict[str, StageOutcome]:
    """Execute every stage not yet stored as a Ray task; same outcomes as the local `run_plan`."""
    options = options or RayOptions()
    ray = _ray()
    connect(options)
    run_id = run_id or f"ray-{time.time():.6f}-{os.getpid()}"  # names this run in artifact records and logs
    try:
        return _schedule(ray, plan, store, ctx, force, progress, options, log_dir or store.root / "logs", run_id)
    finally:
        disconnect()


class _RayPool:
    """The `StagePool` of a Ray cluster: every stage submitted becomes a task at once (Ray queues what does not fit),
    with the resources its kind and inputs need; a task whose worker or node died is retried by Ray."""

    def __init__(self, ray: Any, store: Store, ctx: StageContext, options: RayOptions, log_dir: Path,
                 run_id: str) -> None:
        self.ray, self.store, self.ctx, self.options, self.run_id = ray, store, ctx, options, run_id
        self.root, self.log_dir = store.root.resolve(), log_dir.resolve()  # workers may start in another folder
        self.remote_ctx = replace(ctx, progress=False, cache_dir=ctx.cache_dir.resolve() if ctx.cache_dir else None,
                                  secrets_dir=ctx.secrets_dir.resolve() if ctx.secrets_dir else None)
        self.cpu_task = ray.remote(_run_stage)
        self.gpu_task = ray.remote(num_gpus=1, max_calls=1)(_run_gpu_stage)
        self.largest = _largest_node()
        if not self.largest["CPU"]:
            print("warning: the Ray cluster has no CPUs yet; stages wait until worker nodes join", file=sys.stderr)
        self.refs: dict[Any, tuple[Stage, float]] = {}  # object ref -> (stage, submitted at)

    def free(self) -> int:
        return sys.maxsize  # Ray holds what the cluster cannot start yet

    def running(self) -> int:
        return len(self.refs)

    def submit(self, stage: Stage, must: bool) -> None:
        need = _resources(stage, self.store, self.ctx, self.options, self.largest)
        task = self.gpu_task if need["num_gpus"] else self.cpu_task
        ref = task.options(**need, max_retries=self.options.max_retries, retry_exceptions=False,
                           name=stage.label[:100]).remote(
            stage, str(self.root), self.remote_ctx, must, str(self.log_dir / f"{stage.key}.log"), self.run_id,
            max(1, int(need["num_cpus"])))
        self.refs[ref] = (stage, time.perf_counter())

    def wait(self) -> list[StageOutcome]:
        done, _ = self.ray.wait(list(self.refs), num_returns=1)
        outcomes = []
        for ref in done:
            stage, submitted = self.refs.pop(ref)
            try:
                outcomes.append(self.ray.get(ref))
            except self.ray.exceptions.RayError as exc:
                outcomes.append(_lost(self.ray, exc, stage, time.perf_counter() - submitted,
                                      self.options.max_retries))
        return outcomes

    def cancel(self) -> None:
        for ref in self.refs:
            self.ray.cancel(ref, force=True)
        self.refs.clear()


def _schedule(ray: Any, plan: Plan, store: Store, ctx: StageContext, force: set[str], progress: bool,
              options: RayOptions, log_dir: Path, run_id: str) -> dict[str, StageOutcome]:
    return schedule(plan, store, _RayPool(ray, store, ctx, options, log_dir, run_id), force, progress)
