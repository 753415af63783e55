"""A shared on-disk cache of preprocessed mammograms: read each DICOM once per (file, size, options, reader code)."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.atomic_file import atomic_write
from benchmark.data import dicom_io
from benchmark.execution.code_version import module_version

__all__ = ["CacheStats", "active", "cache_key", "cached_read", "using"]


@dataclass
class CacheStats:
    """Counts of one `using` block: images served from the cache, read from DICOM, and cache files not written."""

    folder: Path
    hits: int = 0
    misses: int = 0
    write_errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for summaries."""
        return {"folder": str(self.folder), "hits": self.hits, "misses": self.misses,
                "write_errors": self.write_errors}


_ACTIVE: ContextVar[CacheStats | None] = ContextVar("preprocess_cache", default=None)


@contextmanager
def using(folder: Path | None) -> Iterator[CacheStats | None]:
    """Within this block `cached_read` caches under folder (None: no caching); yields the block's hit counts."""
    stats = CacheStats(Path(folder)) if folder is not None else None
    token = _ACTIVE.set(stats)
    try:
        yield stats
    finally:
        _ACTIVE.reset(token)


def active() -> Path | None:
    """The cache folder in use, or None."""
    stats = _ACTIVE.get()
    return stats.folder if stats is not None else None


@lru_cache(maxsize=1)
def _reader_version() -> str:
    return module_version(dicom_io)


def _normal(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple, list)):
        items = [_normal(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    return value


def cache_key(path: Path, size: int, read_kwargs: dict[str, Any]) -> str | None:
    """The cache key of one read (None when the file cannot be stat'ed: then the reader reports the problem)."""
    try:
        resolved = Path(path).resolve()
        st = resolved.stat()
    except OSError:
        return None
    if "allowed_modalities" in read_kwargs and read_kwargs["allowed_modalities"] is not None:
        allowed = sorted(m.upper() for m in read_kwargs["allowed_modalities"])
        read_kwargs = {**read_kwargs, "allowed_modalities": allowed}
    blob = json.dumps({"path": str(resolved), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "size": int(size),
                       "kwargs": {k: _normal(v) for k, v in sorted(read_kwargs.items())},
                       "reader": _reader_version()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _encode(value: Any) -> Any:
    """JSON form that keeps tuples as tuples (info holds shapes and boxes as tuples)."""
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_decode(v) for v in value["__tuple__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _load(base: Path, size: int) -> tuple[np.ndarray, dict[str, Any]] | None:
    try:
        info = _decode(json.loads(base.with_suffix(".json").read_text()))
        arr = np.load(base.with_suffix(".npy"), allow_pickle=False)
    except (OSError, ValueError):
        return None
    if arr.dtype != np.float32 or arr.shape != (size, size):
        return None
    return arr, info


def _store(base: Path, arr: np.ndarray, info: dict[str, Any]) -> None:
    base.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(base.with_suffix(".npy"), lambda fh: np.save(fh, arr, allow_pickle=False))
    text = json.dumps(_encode(info), sort_keys=True).encode()
    atomic_write(base.with_suffix(".json"), lambda fh: fh.write(text))  # written last: marks the entry complete


def cached_read(path: Path, size: int, **read_kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """`dicom_io.read_mammogram` through the active cache: same array and info, the DICOM opened only on a miss."""
    stats = _ACTIVE.get()
    key = cache_key(path, size, read_kwargs) if stats is not None else None
    if stats is None or key is None:
        return dicom_io.read_mammogram(path, size, **read_kwargs)
    base = stats.folder / key[:2] / key
    found = _load(base, size) if base.with_suffix(".json").is_file() else None
    if found is not None:
        stats.hits += 1
        return found
    arr, info = dicom_io.read_mammogram(path, size, **read_kwargs)
    stats.misses += 1
    try:
        _store(base, arr, info)
    except OSError:  # a full or read-only cache disk slows later runs down but must not fail this one
        stats.write_errors += 1
    return arr, info
