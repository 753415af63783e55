"""Stage functions: each a pure function of (params, input artifacts) that writes one artifact folder.

A stage computes and writes; it reads its inputs through benchmark.execution.artifacts and imports no other stage,
so that its code version (in its cache key) covers what it computes and nothing else.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from benchmark.stages.context import StageContext

__all__ = ["StageContext", "STAGE_FUNCTIONS", "stage_closure", "stage_version"]

StageFunction = Callable[[dict, dict[str, Path], Path, StageContext], None]


def _stage_functions() -> dict[str, StageFunction]:
    from benchmark.stages import attack, data, fakes, gan, score, train

    return {"data": data.run, "train": train.run, "gan": gan.run, "fakes": fakes.run, "attack": attack.run,
            "score": score.run}


STAGE_FUNCTIONS = _stage_functions()


def stage_closure(kind: str) -> list[str]:
    """The modules whose sources make up a stage's code version."""
    from benchmark.execution.code_version import module_closure

    return module_closure(sys.modules[STAGE_FUNCTIONS[kind].__module__])


def stage_version(kind: str) -> str:
    """A hash of the stage module and the engine modules it uses: changing how a stage computes changes its keys."""
    from benchmark.execution.code_version import module_version

    return module_version(sys.modules[STAGE_FUNCTIONS[kind].__module__])
