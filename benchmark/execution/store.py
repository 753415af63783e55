"""Content-addressed artifact store: one folder per key, written atomically, computed once under a lock."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

__all__ = ["Store", "stage_key"]

_DONE = "_artifact.json"  # written last inside the temp folder; a folder without it is never trusted
STAGE_LOG = "stage-log.jsonl"  # one line per artifact computed, appended by the process that computed it


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
        """The record written with an artifact: kind, label, params, deps (role -> key), versions, seconds, created."""
        return json.loads((self.path(key) / _DONE).read_text())

    def _stamp(self, key: str) -> tuple[int, int, int] | None:
        """Identity of the stored artifact (device, inode, mtime of its record), None when none is stored."""
        try:
            st = (self.path(key) / _DONE).stat()
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino, st.st_mtime_ns

    def log_stage(self, meta: dict) -> None:
        """Append one JSON line for an artifact just computed to root/stage-log.jsonl (one O_APPEND write)."""
        line = {"key": meta["key"], "kind": meta.get("kind"), "label": meta.get("label"), "pid": os.getpid(),
                "run_id": meta.get("run_id"), "seconds": meta.get("seconds"), "time": meta.get("created")}
        data = (json.dumps(line, default=str) + "\n").encode()
        fd = os.open(self.root / STAGE_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)  # unbuffered: one write call, so lines of concurrent runs never interleave
        finally:
            os.close(fd)

    @contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        self.locks.mkdir(parents=True, exist_ok=True)
        # flock-based: the OS releases it when a process dies, so a SIGKILLed run never leaves a stale lock
        with FileLock(str(self.locks / f"{key}.lock")):
            yield

    def compute(self, key: str, build: Callable[[Path], Any], record: dict | None = None,
                force: bool = False) -> tuple[Path, bool]:
        """Return (path, computed): build into a temp folder and rename it to its key unless already stored.

        force rebuilds the artifact stored when the call began, never one another process stored while this one
        waited for the lock: that one is returned as it is, with computed False."""
        final = self.path(key)
        seen = self._stamp(key)
        if seen is not None and not force:
            return final, False
        with self._lock(key):
            now = self._stamp(key)
            if now is not None and (not force or now != seen):  # another process stored it while we waited
                return final, False
            self._sweep(key)
            self.tmp.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=self.tmp))
            try:
                start = time.perf_counter()
                build(work)
                meta = dict(record or {}, key=key, pid=os.getpid(), seconds=round(time.perf_counter() - start, 3),
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
            self.log_stage(meta)
        return final, True

    def _sweep(self, key: str) -> None:
        """Remove temp folders a killed run left for this key (safe: we hold its lock)."""
        if self.tmp.is_dir():
            for stale in self.tmp.glob(f"{key}.*"):
                shutil.rmtree(stale, ignore_errors=True)
        final = self.path(key)
        if final.exists() and not self.has(key):  # should not happen with rename, but never trust half a folder
            shutil.rmtree(final, ignore_errors=True)
