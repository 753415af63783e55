"""Robustness benchmark for mammography AI: run model x defense x attack matrices and write leaderboards."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["run", "list_components", "load_config"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from benchmark.config import MatrixConfig
    from benchmark.execution.matrix import RunResult
    from benchmark.registry import Component


def run(config: MatrixConfig | str | None = None, **kwargs: Any) -> RunResult:
    """Run a matrix config (object, TOML path, or None for the default) and return its results."""
    from benchmark.config import MatrixConfig, load_config
    from benchmark.execution.matrix import run as _run

    return _run(config if isinstance(config, MatrixConfig) else load_config(config), **kwargs)


def list_components(kind: str) -> list[Component]:
    """Registered entries of one kind: models, attacks, defenses or datasets."""
    from benchmark.registry import list_components as _list

    return _list(kind)


def load_config(path: Any = None) -> MatrixConfig:
    """Read and validate a TOML matrix config."""
    from benchmark.config import load_config as _load

    return _load(path)
