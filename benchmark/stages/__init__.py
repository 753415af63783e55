"""Stage functions: each a pure function of (params, input artifacts) that writes one artifact folder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

__all__ = ["StageContext", "STAGE_FUNCTIONS", "stage_version"]


@dataclass
class StageContext:
    """What every stage may use besides its params: device, attack batch size, progress bars, a shared cache folder."""

    device: torch.device
    attack_batch_size: int = 64
    progress: bool = True
    cache_dir: Path | None = None  # caches shared by runs (e.g. preprocessed DICOMs); not part of any artifact key
    secrets_dir: Path | None = None  # the store's private folder (the id key); never in an artifact or a leaderboard


StageFunction = Callable[[dict, dict[str, Path], Path, StageContext], None]


def _stage_functions() -> dict[str, StageFunction]:
    from benchmark.stages import attack, data, fakes, gan, score, train

    return {"data": data.run, "train": train.run, "gan": gan.run, "fakes": fakes.run, "attack": attack.run,
            "score": score.run}


STAGE_FUNCTIONS = _stage_functions()


def stage_version(kind: str) -> str:
    """A hash of the stage module and the engine modules it uses: changing how a stage computes changes its keys."""
    import sys

    from benchmark.execution.code_version import module_version

    return module_version(sys.modules[STAGE_FUNCTIONS[kind].__module__])
