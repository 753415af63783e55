"""Batch sizes that fit: the device's free memory (or run.max_memory), one probe image's peak, shrink on OOM.

The configured batch size stays the ceiling (and, where memory is ample, the batch actually used), so the default
config's numbers do not move. CUDA measures the probe's peak with max_memory_allocated; the CPU has no allocator
statistics, so there the probe counts every byte any operation allocates, as if nothing were freed: an upper bound.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmark.errors import BenchmarkError

__all__ = ["MEMORY_SAFETY", "BatchFit", "available_bytes", "probe_bytes", "fit_batch", "micro_batches",
           "out_of_memory", "memory_error"]

MEMORY_SAFETY = 0.8  # plan batches for this share of the free memory: allocator slack, fragmentation, other tensors
_MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class BatchFit:
    """A stage's batch choice: the configured ceiling, the size used, and the numbers it was chosen from."""

    configured: int
    used: int
    per_image_bytes: int
    available_bytes: int
    source: str  # where available_bytes came from: run.max_memory, cuda free memory, MemAvailable

    def record(self) -> dict:
        """The choice as a stage record field."""
        return {**asdict(self), "adapted": self.used < self.configured}


def available_bytes(device: torch.device, max_memory: int | None) -> tuple[int, str]:
    """Bytes a stage may fill on device, and where the number comes from (run.max_memory caps the free memory)."""
    free, source = None, "unknown"
    if device.type == "cuda":
        free, source = torch.cuda.mem_get_info(device)[0], "cuda free memory"
    elif _MEMINFO.is_file():
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free, source = int(line.split()[1]) * 1024, "MemAvailable"
    if max_memory is not None and (free is None or max_memory <= free):
        return max_memory, "run.max_memory"
    return (free if free is not None else 2**62), source


class _AllocationCounter(TorchDispatchMode):
    """Sums the bytes of every storage any operation returns, each once (views and in-place results share one)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self._seen: set[int] = set()
        self._held: list = []  # counted storages stay alive until the probe ends: a freed address is never reused

    def __torch_dispatch__(self, func: object, types: object, args: tuple = (), kwargs: dict | None = None) -> object:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                if storage.data_ptr() not in self._seen:
                    self._seen.add(storage.data_ptr())
                    self._held.append(storage)
                    self.total += storage.nbytes()
        return out


def probe_bytes(probe: Callable[[], object], device: torch.device) -> int:
    """Peak bytes one call of probe adds on device (CUDA: measured; CPU: every allocation summed, an upper bound).
    The random state is restored afterwards: a random defense probed draws nothing from the stage's streams."""
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        return _probe_bytes(probe, device)


def _probe_bytes(probe: Callable[[], object], device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        probe()
        torch.cuda.synchronize(device)
        return max(1, torch.cuda.max_memory_allocated(device) - base)
    with _AllocationCounter() as counter:
        probe()
    return max(1, counter.total)


def fit_batch(stage: str, configured: int, probe_one: Callable[[], object], device: torch.device,
              max_memory: int | None) -> BatchFit:
    """The largest batch up to `configured` whose probed per-image peak fits in MEMORY_SAFETY of the free memory;
    a BenchmarkError naming the stage and the settings to change when not even one image fits."""
    available, source = available_bytes(device, max_memory)
    per_image = probe_bytes(probe_one, device)
    used = min(configured, math.floor(available * MEMORY_SAFETY / per_image))
    if used < 1:
        raise memory_error(stage, per_image, available, source)
    return BatchFit(configured, used, per_image, available, source)


def micro_batches(n: int, size: int) -> list[slice]:
    """Slices of size <= `size` covering n rows, never a lone row when n > 1 (a batch of 2 takes 3 then).

    CPU convolutions take another path for a batch of one whose last bits differ; any two batch sizes above one give
    every image the same bits, so an adapted batch changes no result."""
    bounds = [[i, min(i + size, n)] for i in range(0, n, max(1, size))]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1 and size > 1:
        if size > 2:  # the last two pieces become size - 1 and 2
            bounds[-2][1] -= 1
            bounds[-1][0] -= 1
        else:
            bounds[-2][1] = n
            bounds.pop()
    return [slice(a, b) for a, b in bounds]


def out_of_memory(exc: BaseException) -> bool:
    """True for the errors a smaller batch may cure: torch.OutOfMemoryError and the CPU allocator's failure."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(exc))


def memory_error(stage: str, per_image: int, available: int, source: str, ran_out: bool = False) -> BenchmarkError:
    """The one line for a stage that cannot fit even one image (ran_out: the probe fitted, the device did not)."""
    if ran_out:
        what = (f"ran out of memory at a batch of one image (about {per_image / 1e9:.3g} GB probed, "
                f"{available / 1e9:.3g} GB free by {source})")
    else:
        what = (f"one image needs about {per_image / 1e9:.3g} GB but only {available * MEMORY_SAFETY / 1e9:.3g} GB "
                f"of {available / 1e9:.3g} GB ({source}) may be used")
    return BenchmarkError(f"stage {stage}: {what}; raise run.max_memory, free device memory, or lower "
                          "dataset.image_size")
