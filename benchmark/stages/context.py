"""What every stage may use besides its params and inputs: the StageContext an executor hands it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["StageContext"]


@dataclass
class StageContext:
    """What every stage may use besides its params: device, batch sizes, memory cap, progress, caches."""

    device: torch.device
    attack_batch_size: int = 64
    progress: bool = True
    cache_dir: Path | None = None  # caches shared by runs (e.g. preprocessed DICOMs); not part of any artifact key
    secrets_dir: Path | None = None  # the store's private folder (the id key); never in an artifact or a leaderboard
    max_memory: int | None = None  # run.max_memory in bytes: batches are fitted to it (benchmark/memory_fit.py)
