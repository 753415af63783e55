"""Code versions for cache keys: a module's source plus the sources of the benchmark modules it uses."""
from __future__ import annotations

import hashlib
import inspect
import sys
from types import ModuleType

__all__ = ["module_closure", "module_version", "object_version"]

_NEUTRAL = {"benchmark.registry", "benchmark.errors", "benchmark.execution.code_version"}  # naming, not computing
# Readers of stored artifacts: their own source counts (how an input is read), but not the modules they use to read
# it, whose code the writer's key already covers (the artifact was computed by the stage that wrote it).
_READERS = {"benchmark.execution.artifacts"}


def _source(module: ModuleType) -> str:
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):
        return module.__name__


def _uses(module: ModuleType) -> list[ModuleType]:
    if module.__name__ in _READERS:
        return []
    out = []
    for value in vars(module).values():
        other = value if isinstance(value, ModuleType) else sys.modules.get(getattr(value, "__module__", "") or "")
        if other is not None and other.__name__.startswith("benchmark.") and other.__name__ not in _NEUTRAL:
            out.append(other)
    return out


def _closure(module: ModuleType) -> dict[str, ModuleType]:
    used, todo = {module.__name__: module}, [module]
    while todo:
        for other in _uses(todo.pop()):
            if other.__name__ not in used:
                used[other.__name__] = other
                todo.append(other)
    return used


def module_closure(module: ModuleType) -> list[str]:
    """The sorted names of the modules whose sources make up module_version(module)."""
    return sorted(_closure(module))


def module_version(module: ModuleType) -> str:
    """Hash of a module's source and of every benchmark.* module it uses, transitively (a reader's imports aside)."""
    used = _closure(module)
    digest = hashlib.sha256()
    for name in sorted(used):
        digest.update(name.encode() + b"\0" + _source(used[name]).encode() + b"\0")
    return digest.hexdigest()[:12]


def object_version(obj: object) -> str:
    """The version of the module that defines obj (its own source when it has no module)."""
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    if module is None:
        try:
            return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:12]
        except (OSError, TypeError):
            return hashlib.sha256(repr(obj).encode()).hexdigest()[:12]
    return module_version(module)
