"""Device choice and the per-device settings that make each one fast: AMP and channels-last on CUDA."""
from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from benchmark.errors import BenchmarkError

__all__ = ["resolve_device", "seed_everything", "autocast", "prepare_model"]


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present, else CPU; asking for CUDA without one is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("run.device = \"cuda\" but no CUDA device is visible; use \"auto\" or \"cpu\"")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, and ask torch for deterministic kernels (CPU results repeat exactly)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """bfloat16 mixed precision on CUDA; full float32 on CPU."""
    if device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to its device, channels-last on CUDA where convolutions are faster that way."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model
