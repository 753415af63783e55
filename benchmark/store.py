"""Content-addressed artifact store: one folder per key, written atomically, computed once under a lock."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from filelock import FileLock

__all__ = ["Store", "stage_key"]

_DONE = "_artifact.json"  # written last inside the temp folder; a folder without it is never trusted


def stage_key(kind: str, params: dict, deps: list[str], versions: dict[str, str]) -> str:
    """The hash that names a stage's artifact: its kind, config, inputs' keys and code versions."""
    blob = json.dumps({"kind": kind, "params": params, "deps": sorted(deps), "versions": versions},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Store:
    """Artifacts under root/objects/<key[:2]>/<key>/, built in root/tmp and renamed into place."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        self.locks = self.root / "locks"

    def path(self, key: str) -> Path:
        """Where the artifact for key lives (whether or not it exists yet)."""
        return self.objects / key[:2] / key

    def has(self, key: str) -> bool:
        """True when a complete artifact is stored for key."""
        return (self.path(key) / _DONE).is_file()

    def info(self, key: str) -> dict:
        """The record written with an artifact: kind, label, seconds, created."""
        return json.loads((self.path(key) / _DONE).read_text())

    @contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        self.locks.mkdir(parents=True, exist_ok=True)
        # flock-based: the OS releases it when a process dies, so a SIGKILLed run never leaves a stale lock
        with FileLock(str(self.locks / f"{key}.lock")):
            yield

    def compute(self, key: str, build: Callable[[Path], Any], record: dict | None = None,
                force: bool = False) -> tuple[Path, bool]:
        """Return (path, computed): build into a temp folder and rename it to its key unless already stored."""
        final = self.path(key)
        if self.has(key) and not force:
            return final, False
        with self._lock(key):
            if self.has(key) and not force:  # another process finished it while we waited
                return final, False
            self._sweep(key)
            self.tmp.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=self.tmp))
            try:
                start = time.perf_counter()
                build(work)
                meta = dict(record or {}, key=key, seconds=round(time.perf_counter() - start, 3),
                            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
                (work / _DONE).write_text(json.dumps(meta, indent=1, default=str))
                final.parent.mkdir(parents=True, exist_ok=True)
                if final.exists():  # forced recompute: move the old artifact aside, then swap
                    trash = Path(tempfile.mkdtemp(prefix=f"{key}.old.", dir=self.tmp))
                    os.replace(final, trash / "old")
                    shutil.rmtree(trash, ignore_errors=True)
                os.replace(work, final)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
        return final, True

    def _sweep(self, key: str) -> None:
        """Remove temp folders a killed run left for this key (safe: we hold its lock)."""
        if self.tmp.is_dir():
            for stale in self.tmp.glob(f"{key}.*"):
                shutil.rmtree(stale, ignore_errors=True)
        final = self.path(key)
        if final.exists() and not self.has(key):  # should not happen with rename, but never trust half a folder
            shutil.rmtree(final, ignore_errors=True)
