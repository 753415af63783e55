"""Worker processes for the local executor: N processes (spawned, not forked), each computing one stage at a time
with one torch thread, so that a stage's numbers do not depend on how many workers run beside it.

A stage that raises fails its cell inside the worker (`execute_stage`), as in-process. A worker that dies (killed,
out of memory, a C extension crashing) fails only the stage it was computing, with the reason; the next stage gets a
new worker process. The store's locks are flocks, which the OS releases with the dead process, and what it left in
the store's tmp folder is swept when that stage is computed again.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import BenchmarkError
from benchmark.execution.planner import Stage
from benchmark.execution.scheduler import StageOutcome, execute_stage
from benchmark.execution.store import Store
from benchmark.stages import StageContext

__all__ = ["WORKERS_ENV", "WorkerPool", "worker_count"]

WORKERS_ENV = "BENCHMARK_WORKERS"
# thread pools a worker's libraries would otherwise size to the machine: one thread each
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_STOP_SECONDS = 10.0  # how long close() waits for an idle worker to exit before terminating it

Execute = Callable[[Stage, Store, StageContext, bool, "str | None"], StageOutcome]


def worker_count(requested: int | None, device: torch.device) -> int:
    """How many stages the local executor computes at once: `requested` (--workers), else $BENCHMARK_WORKERS,
    else this machine's CPU count; always 1 on CUDA (one GPU, and CUDA does not survive being shared that way)."""
    if requested is None:
        text = os.environ.get(WORKERS_ENV, "").strip()
        if text:
            try:
                requested = int(text)
            except ValueError:
                requested = 0
            if requested < 1:
                raise BenchmarkError(f"{WORKERS_ENV}={text!r}: expected a whole number of worker processes, "
                                     "at least 1")
        else:
            requested = os.cpu_count() or 1
    elif requested < 1:
        raise BenchmarkError("--workers must be at least 1")
    return 1 if device.type == "cuda" else requested


def _serve(conn: Connection, store_root: str, ctx: StageContext, run_id: str | None, threads: int,
           execute: Execute) -> None:
    """A worker process: receive (stage, must), compute it, send its outcome back; stop on None or a closed pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers itself
    parent = multiprocessing.parent_process()
    if parent is not None:  # a parent killed outright takes its workers with it, mid-stage or not (as in-process)
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already started (only when something ran torch before this point)
        pass
    store = Store(store_root)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if job is None:
            return
        stage, must = job
        conn.send(execute(stage, store, ctx, must, run_id))


def _exit_with(sentinel: int) -> None:
    """Exit this worker as soon as its parent process has gone."""
    wait([sentinel])
    os._exit(3)


@contextmanager
def _thread_env(threads: int) -> Iterator[None]:
    """The environment a spawned worker starts with: its libraries' thread pools sized to `threads`."""
    saved = {k: os.environ.get(k) for k in _THREAD_ENV}
    os.environ.update({k: str(threads) for k in _THREAD_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class _Worker:
    process: Any  # multiprocessing's SpawnProcess
    conn: Connection
    job: tuple[Stage, float, float] | None = None  # stage, submitted at (time.time(), time.perf_counter())


def _death(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}" + (", e.g. by the out-of-memory killer" if name == "SIGKILL" else "")
    return f"exit code {exitcode}"


class WorkerPool:
    """A `StagePool` of `size` spawned worker processes on one store, all started when the first stage is submitted
    (none when everything is cached); one that died is replaced when the next stage needs it.

    Use as a context manager (or call close()): the workers stop when it exits. `busy()` says which process
    computes which stage; `started` counts worker processes started, replacements included."""

    def __init__(self, size: int, store_root: Path | str, ctx: StageContext, run_id: str | None = None,
                 threads: int = 1, execute: Execute = execute_stage) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least one worker, not {size}")
        self.size, self.threads = size, threads
        # workers may start elsewhere and never draw progress bars (several would fight over one terminal)
        remote_ctx = replace(ctx, progress=False, cache_dir=ctx.cache_dir.resolve() if ctx.cache_dir else None,
                             secrets_dir=ctx.secrets_dir.resolve() if ctx.secrets_dir else None)
        self._args = (str(Path(store_root).resolve()), remote_ctx, run_id, threads, execute)
        self._mp = multiprocessing.get_context("spawn")  # fork would copy the parent's threads and locks
        self._workers: list[_Worker] = []
        self.started = 0

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.cancel()

    def free(self) -> int:
        return self.size - self.running()

    def running(self) -> int:
        return sum(w.job is not None for w in self._workers)

    def busy(self) -> dict[str, int]:
        """Key of each stage being computed -> pid of the worker process computing it."""
        return {w.job[0].key: w.process.pid for w in list(self._workers) if w.job is not None}

    def pids(self) -> list[int]:
        """Process ids of the worker processes started and not yet known to be dead."""
        return [w.process.pid for w in self._workers]

    def submit(self, stage: Stage, must: bool) -> None:
        if not self.free():
            raise RuntimeError(f"all {self.size} workers are busy")
        if not self._workers:  # the first stage to compute: start them all, so they import the stage code together
            for _ in range(self.size):
                self._spawn()
        worker = next((w for w in self._workers if w.job is None), None) or self._spawn()
        worker.job = (stage, time.time(), time.perf_counter())
        try:
            worker.conn.send((stage, must))
        except (BrokenPipeError, ConnectionError, OSError):  # died while idle: wait() reports it for this stage
            pass

    def _spawn(self) -> _Worker:
        parent, child = self._mp.Pipe()
        process = self._mp.Process(target=_serve, args=(child, *self._args),
                                   name=f"benchmark-worker-{self.started + 1}")
        with _thread_env(self.threads):
            process.start()
        child.close()  # the worker holds the other end: when it dies, recv() in this process sees EOF
        self.started += 1
        worker = _Worker(process, parent)
        self._workers.append(worker)
        return worker

    def wait(self) -> list[StageOutcome]:
        busy = [w for w in self._workers if w.job is not None]
        if not busy:
            return []
        wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
        outcomes = []
        for worker in busy:
            outcome = self._collect(worker)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _collect(self, worker: _Worker) -> StageOutcome | None:
        """The outcome of a worker's stage if it has finished, or its failure if the worker died; else None."""
        try:
            if worker.conn.poll():
                outcome = worker.conn.recv()
                worker.job = None
                return outcome
        except (EOFError, OSError):
            pass  # the pipe closed: the worker died
        else:
            if worker.process.is_alive():
                return None
        stage, started, submitted = worker.job
        worker.process.join(timeout=5)
        self._drop(worker)
        return StageOutcome(stage.key, stage.kind, stage.label, "failed", time.perf_counter() - submitted,
                            f"worker process {worker.process.pid} died while computing this stage "
                            f"({_death(worker.process.exitcode)})",
                            ["a new worker process computes the next stage; run again to retry this one"],
                            started=started)

    def _drop(self, worker: _Worker) -> None:
        worker.conn.close()
        self._workers.remove(worker)

    def close(self) -> None:
        """Stop every worker: idle ones are asked to exit, what has not exited within a few seconds is
        terminated."""
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except (BrokenPipeError, ConnectionError, OSError):
                pass
        end = time.monotonic() + _STOP_SECONDS
        for worker in self._workers:
            worker.process.join(timeout=max(0.0, end - time.monotonic()))
        self.cancel()

    def cancel(self) -> None:
        """Terminate every worker now (SIGTERM, then SIGKILL); what they stored stays stored."""
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.terminate()
        end = time.monotonic() + 5
        for worker in self._workers:
            worker.process.join(timeout=max(0.0, end - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self._workers.clear()
